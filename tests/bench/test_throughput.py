"""The benchmark scripts end to end on the CPU: the tiny shape through both attention modes with
the profiler and the transformers peer, and the hit rate of the shipped model."""
import json
import sys

import pytest

import hit_rate
import throughput


def run(module, monkeypatch, *argv):
    monkeypatch.setattr(sys, "argv", [module.__file__, *argv])
    module.main()


@pytest.mark.slow
def test_throughput_tiny_cpu(monkeypatch, tmp_path, capsys):
    out = tmp_path / "results.json"
    run(throughput, monkeypatch, "--shape", "tiny", "--device", "cpu", "--context", "1100",
        "--batches", "2", "--new-tokens", "2", "--warmup", "1", "--budget", "64", "--profile",
        "--profile-steps", "1", "--peer", "hf", "--project-hit-rates", "0.5", "--out", str(out))
    results = json.loads(out.read_text())
    rows = {r["mode"]: r for r in results["rows"]}
    assert set(rows) == {"dense", "shadowkv"}
    for row in rows.values():
        assert row["tokens"] == 4 and row["batch_intact"] and row["decode_tok_s"] > 0
        assert 0 < row["roofline_fraction"] and row["roofline"]["hbm_bytes"] > 0
        assert row["profile"]["phases_ms"]["GEMM"] > 0
    assert rows["dense"]["hit_rate"] is None and 0 <= rows["shadowkv"]["hit_rate"] <= 1
    assert rows["shadowkv"]["roofline"]["pcie_bytes"] > 0 and rows["shadowkv"]["pinned_cpu_gib"] > 0
    (peer,) = results["peers"]
    assert peer["batch"] == 2 and (peer.get("decode_tok_s", 1) > 0 or "skipped" in peer)
    assert results["projections"][0]["ratio"] > 0
    printed = capsys.readouterr().out
    assert "== context 1100" in printed and "roofline-projected" in printed


@pytest.mark.slow
def test_hit_rate_default_model(monkeypatch, tmp_path):
    out = tmp_path / "hits.json"
    run(hit_rate, monkeypatch, "--lengths", "2k", "--samples", "1", "--tasks", "passkey",
        "--small-budget", "0", "--out", str(out))
    (cell,) = json.loads(out.read_text())
    assert cell["length"] == 2048 and cell["selected"] > 0
    assert 0 < cell["hit_rate"] <= cell["warm_hit_rate"] <= 1
