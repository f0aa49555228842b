"""`shadowkv bench throughput` end to end on the CPU: the tiny shape through both attention
modes, every row with its equivalent bandwidth, the JSON and the summary."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from shadowkv_engine.bench import engine_steps
from shadowkv_engine.bench.roofline import ModelShape
from shadowkv_engine.bench.shapes import SHAPES
from shadowkv_engine.cli import main

TINY = ModelShape.from_config(SHAPES["tiny"])


def test_tiny_shape_dense_and_shadowkv(tmp_path, capsys):
    out = tmp_path / "results.json"
    assert main(["bench", "throughput", "--shape", "tiny", "--device", "cpu", "--context", "1100",
                 "--batches", "1", "--new-tokens", "2", "--warmup", "1", "--budget", "64",
                 "--project-hit-rates", "0.5", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["meta"]["shape"] == "tiny" and results["meta"]["load_format"] == "dummy"
    rows = {r["mode"]: r for r in results["rows"]}
    assert set(rows) == {"dense", "shadowkv"}
    for row in rows.values():
        assert row["tokens"] == 2 and row["batch_intact"] and row["decode_tok_s"] > 0
        assert 0 < row["roofline_fraction"] and row["roofline"]["hbm_bytes"] > 0
        # a dense step's KV (float32 on the CPU) at the mean length of the timed steps
        assert row["dense_kv_bytes"] == 1 * (1100 + 1 + 1 + 1) * TINY.kv_bytes_per_token(4)
        assert row["equivalent_gbs"] == pytest.approx(
            row["dense_kv_bytes"] / (row["step_ms"] / 1e3) / 1e9)
    assert rows["dense"]["hit_rate"] is None and 0 <= rows["shadowkv"]["hit_rate"] <= 1
    assert rows["shadowkv"]["roofline"]["pcie_bytes"] > 0
    assert results["projections"][0]["ratio"] > 0
    printed = capsys.readouterr().out
    assert "== context 1100" in printed and "equiv GB/s" in printed
    assert printed.count("equivalent bandwidth") == 2


@pytest.mark.parametrize("argv", [["--model", "x", "--shape", "tiny"],
                                  ["--shape", "tiny", "--load-format", "safetensors"],
                                  ["--shape", "tiny", "--batches", "two"]])
def test_contradictory_options_are_refused(argv, capsys):
    assert main(["bench", "throughput", *argv]) == 2
    assert "bench throughput:" in capsys.readouterr().err


def test_the_command_imports_neither_transformers_nor_matplotlib():
    # transformers only for --peer hf, matplotlib only for `bench serve --plot`
    probe = ("import sys; from shadowkv_engine.cli import build_parser; build_parser(); "
             "import shadowkv_engine.bench.throughput; "
             "print('transformers' in sys.modules, 'matplotlib' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert result.stdout.split() == ["False", "False"], result.stderr


def test_max_batch_follows_the_pinned_pool_cap(tmp_path):
    """--cpu-offload-gb with --batches max: the largest batch is what the capped pool holds (the
    side-by-side 122K call caps the pool on a host with twice the RAM)."""
    def largest(cap: str) -> tuple[int, dict]:
        out = tmp_path / f"cap{cap}.json"
        assert main(["bench", "throughput", "--shape", "tiny", "--device", "cpu", "--context",
                     "1100", "--batches", "max", "--attention", "shadowkv", "--max-num-seqs", "4",
                     "--cpu-offload-gb", cap, "--new-tokens", "2", "--warmup", "1", "--budget",
                     "64", "--project-hit-rates", "0.5", "--out", str(out)]) == 0
        results = json.loads(out.read_text())
        (row,) = results["rows"]
        assert row["label"] == "max" and row["batch_intact"]
        assert row["pinned_cpu_gib"] == pytest.approx(float(cap), rel=0.01)
        return results["largest_batch"]["shadowkv"]["1100"], row

    small, row = largest("0.004")  # a few sequences' values of 1100 tokens at most
    assert 1 <= small < 4 and row["batch"] == small
    assert largest("1")[0] == 4  # the engine's cap, max_num_seqs


def test_host_values_mode_alone_with_two_batch_overlap(tmp_path, capsys):
    """A run of the shadowkv-host mode alone (no dense row to pair it with) prints its summary;
    the engine option it ran with is in the JSON."""
    out = tmp_path / "results.json"
    assert main(["bench", "throughput", "--shape", "tiny", "--device", "cpu", "--context", "1100",
                 "--batches", "2", "--new-tokens", "2", "--warmup", "1", "--budget", "64",
                 "--attention", "shadowkv-host", "--two-batch-overlap", "on",
                 "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert [r["mode"] for r in results["rows"]] == ["shadowkv-host"]
    assert results["meta"]["two_batch_overlap"] == "on"
    assert "2 host" in capsys.readouterr().out


def test_minmax_landmarks_run_and_their_bytes_count_twice(tmp_path, capsys):
    """--landmark minmax reaches the engine (its roofline counts two landmark rows a chunk) and
    the JSON and the printed header say which landmarks ran."""
    rows = {}
    for landmark in ("mean", "minmax"):
        out = tmp_path / f"{landmark}.json"
        assert main(["bench", "throughput", "--shape", "tiny", "--device", "cpu", "--context",
                     "1100", "--batches", "1", "--new-tokens", "2", "--warmup", "1", "--budget",
                     "64", "--attention", "shadowkv", "--landmark", landmark,
                     "--out", str(out)]) == 0
        results = json.loads(out.read_text())
        assert results["meta"]["landmark"] == landmark
        assert f"{landmark} landmarks" in capsys.readouterr().out
        rows[landmark] = results["rows"][0]
    parts = {name: row["roofline"]["parts"]["landmarks"] for name, row in rows.items()}
    assert parts["minmax"] == 2 * parts["mean"] > 0


def test_a_long_prefill_reports_its_progress(monkeypatch, capsys):
    """A run its time limit stops must still show how far it got: the engine's build time and,
    during a prefill of several steps, how many sequences have their first token."""
    monkeypatch.setattr(engine_steps, "PROGRESS_EVERY_S", 0.0)
    # 2 x 5000 tokens take two steps of the 8192-token budget: the first step finishes one prompt
    assert main(["bench", "throughput", "--shape", "tiny", "--device", "cpu", "--context", "5000",
                 "--batches", "2", "--attention", "dense", "--new-tokens", "1",
                 "--warmup", "0"]) == 0
    printed = capsys.readouterr().out
    assert "   dense engine built in" in printed and "pinned value pool 0.00 GiB" in printed
    assert "prefill ctx 5000 batch 2: 1 of 2 sequences have their first token after" in printed
