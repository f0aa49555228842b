"""The benchmark scripts end to end on the CPU: benchmarks/throughput.py (the subcommand as a
script) with the profiler and the transformers peer, and the hit rate of the shipped model."""
import json
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
