"""The benchmark scripts end to end on the CPU: benchmarks/throughput.py (the subcommand as a
script) with the profiler and the transformers peer, the hit rate of the shipped model, the two
diagnostics of lost samples (replay, selection coverage) and the needle-template probe."""
import json
import re
import runpy
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def run(script: str, monkeypatch, *argv):
    path = BENCHMARKS / script
    monkeypatch.setattr(sys, "argv", [str(path), *argv])
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as exit_:
        assert not exit_.code


@pytest.mark.slow
def test_throughput_script_profile_and_peer(monkeypatch, tmp_path, capsys):
    out = tmp_path / "results.json"
    run("throughput.py", monkeypatch, "--shape", "tiny", "--device", "cpu", "--context", "1100",
        "--batches", "2", "--new-tokens", "2", "--warmup", "1", "--budget", "64", "--profile",
        "--profile-steps", "1", "--peer", "hf", "--project-hit-rates", "0.5", "--out", str(out))
    results = json.loads(out.read_text())
    rows = {r["mode"]: r for r in results["rows"]}
    assert set(rows) == {"dense", "shadowkv"}
    for row in rows.values():
        assert row["tokens"] == 4 and row["equivalent_gbs"] > 0
        assert row["profile"]["phases_ms"]["GEMM"] > 0
        host = row["profile"]["host_ms"]  # the engine's host phases, named in the profile
        assert {"schedule", "metadata", "plan", "launch", "end_step", "outputs"} <= set(host)
        assert all(ms >= 0 for ms in host.values())
    (peer,) = results["peers"]
    assert peer["batch"] == 2 and (peer.get("decode_tok_s", 1) > 0 or "skipped" in peer)
    assert "roofline-projected" in capsys.readouterr().out


@pytest.mark.slow
def test_hit_rate_default_model(monkeypatch, tmp_path):
    out = tmp_path / "hits.json"
    run("hit_rate.py", monkeypatch, "--lengths", "2k", "--samples", "1", "--tasks", "passkey",
        "--small-budget", "0", "--out", str(out))
    (cell,) = json.loads(out.read_text())
    assert cell["length"] == 2048 and cell["selected"] > 0
    assert 0 < cell["hit_rate"] <= cell["warm_hit_rate"] <= 1


@pytest.mark.slow
def test_replay_samples_reruns_chosen_samples_under_each_setting(monkeypatch, tmp_path, capsys):
    samples = tmp_path / "lost.json"
    samples.write_text('[["passkey", 1000000000], ["niah_single", 1000000001]]')
    run("replay_samples.py", monkeypatch, str(samples), "--length", "2k", "--split", "classic",
        "--setting", "dense", "--setting", '{"landmark": "minmax", "min_context_len": 512}')
    lines = capsys.readouterr().out.splitlines()
    summaries = [line for line in lines if line.startswith("==")]
    assert len(summaries) == 2 and all(" 2/2 right in " in line for line in summaries), summaries
    assert sum(line.startswith('{"landmark": "minmax"') for line in lines) == 2


@pytest.mark.slow
def test_selection_coverage_reports_every_rule_for_every_head(monkeypatch, tmp_path, capsys):
    samples = tmp_path / "lost.json"
    samples.write_text('[["passkey", 1000000000]]')
    run("selection_coverage.py", monkeypatch, str(samples), "--length", "4k", "--split", "classic")
    lines = capsys.readouterr().out.splitlines()
    header = lines.index(next(line for line in lines if line.startswith("rule")))
    rows = {line.split()[0]: [float(x) for x in line.split()[1:]] for line in lines[header + 1:]}
    assert set(rows) == {"mean", "minmax", "best-key", "best-rank"}
    assert all(len(row) == 8 and all(0 < x <= 1.0 + 1e-6 for x in row) for row in rows.values())
    # the rank the engine runs on this checkpoint: its own recommendation
    from shadowkv_engine.default_model import DEFAULT_MODEL_DIR
    rank = json.loads((DEFAULT_MODEL_DIR / "config.json").read_text())["shadowkv_defaults"]["rank"]
    assert f"rank {rank}," in lines[header - 1], lines[header - 1]


def test_needle_variants_measures_each_variant_and_restores_the_split(monkeypatch, capsys):
    from shadowkv_engine.eval import layouts

    pools = layouts.SPLITS["heldout"]
    run("needle_variants.py", monkeypatch, "--split", "heldout", "--length", "2k", "--samples",
        "2", "--tasks", "passkey", "--variant", "plain={Subject} is {value}.",
        "--variant", "labelled={Subject} is ticket {value}.")
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["plain", "labelled"]
    assert all(" passkey " in line and "/2" in line for line in lines), lines
    for line in lines:  # the two samples' keys are split between numeric and alphanumeric
        numeric, alphanumeric = (int(re.search(rf" {kind} \d+/(\d+)", line).group(1))
                                 for kind in ("numeric", "alphanumeric"))
        assert numeric + alphanumeric == 2, line
    assert layouts.SPLITS["heldout"] is pools


def test_needle_variants_refuses_a_variant_without_a_value_slot(monkeypatch, capsys):
    with pytest.raises(AssertionError):  # run() asserts a clean exit; argparse exits with 2
        run("needle_variants.py", monkeypatch, "--split", "heldout",
            "--variant", "broken={subject} is unknown.")
    assert "{value}" in capsys.readouterr().err
