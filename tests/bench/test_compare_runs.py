"""compare_runs: two `bench throughput` JSON files (one attention mode each, as the side-by-side
call writes them) in one table, with ShadowKV's tok/s over dense's at the same context and label."""
import json

from shadowkv_engine.bench.compare_runs import main

COMMAND = "benchmarks/throughput.py --context 122880 --batches max"


def row(mode: str, batch: int, tok_s: float, roof_tok_s: float, label: str = "max",
        tokens: int | None = None, hit_rate: float | None = None) -> dict:
    return {"mode": mode, "context": 122880, "batch": batch, "label": label,
            "decode_tok_s": tok_s, "roofline": {"tok_s": roof_tok_s,
                                                "bound": "HBM" if mode == "dense" else "PCIe"},
            "roofline_fraction": tok_s / roof_tok_s, "hit_rate": hit_rate, "steps": 16,
            "tokens": batch * 16 if tokens is None else tokens,
            "batch_intact": tokens is None, "preemptions": 0}


def write(path, rows: list[dict], commit: str = "abc1234",
          date: str = "2026-12-01T10:00:00+00:00") -> str:
    meta = {"device": "NVIDIA H200", "commit": commit, "date": date, "host_ram_gib": 251.5,
            "command": COMMAND}
    path.write_text(json.dumps({"meta": meta, "rows": rows}))
    return str(path)


def rows_of(lines: list[str], mode: str) -> list[str]:
    """The table's lines of one mode (each begins with the context, 122880 here, and the mode)."""
    return [line for line in lines if line.split()[:2] == ["122880", mode]]


def test_ratio_at_the_same_context_and_label(tmp_path, capsys):
    sparse = write(tmp_path / "gpu0.json", [row("shadowkv", 19, 287.6, 635.0, hit_rate=0.023)])
    dense = write(tmp_path / "gpu1.json", [row("dense", 7, 206.8, 234.0)],
                  date="2026-12-01T10:00:02+00:00")
    assert main([sparse, dense, "--title", "one call, side by side"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "one call, side by side"
    assert lines[1].startswith(f"A: {sparse}: NVIDIA H200, commit abc1234") and COMMAND in lines[1]
    assert "same commit abc1234; started 2 s apart" in lines
    dense_line, = rows_of(lines, "dense")
    sparse_line, = rows_of(lines, "shadowkv")
    assert lines.index(dense_line) < lines.index(sparse_line)  # dense first at each context
    assert dense_line.split()[-2:] == ["-", "B"]
    # 287.6 / 206.8 = 1.39; 19 (max), roofline 635 (PCIe), 45.3% of it
    assert sparse_line.split() == ["122880", "shadowkv", "19", "(max)", "287.6", "635", "(PCIe)",
                                   "45.3%", "0.023", "1.39", "A"]


def test_numeric_batches_pair_by_label_and_short_batches_are_flagged(tmp_path, capsys):
    sparse = write(tmp_path / "a.json", [row("shadowkv", 8, 400.0, 800.0, label="8"),
                                         row("shadowkv", 19, 250.0, 635.0, tokens=256)])
    dense = write(tmp_path / "b.json", [row("dense", 8, 500.0, 600.0, label="8"),
                                        row("dense", 7, 200.0, 234.0)])
    assert main([sparse, dense]) == 0
    lines = capsys.readouterr().out.splitlines()
    by_batch = {line.split()[2]: line for line in rows_of(lines, "shadowkv")}
    assert by_batch["8"].split()[-2:] == ["0.80", "A"]  # 400 / 500, batch 8 against batch 8
    assert "1.25 A  WARNING: 16.0 of 19 decoding a step" in by_batch["19"]  # 250 / 200


def test_different_commits_and_a_missing_file(tmp_path, capsys):
    a = write(tmp_path / "a.json", [row("dense", 7, 200.0, 234.0)], commit="abc1234")
    b = write(tmp_path / "b.json", [row("shadowkv", 19, 300.0, 635.0)], commit="def5678")
    assert main([a, b]) == 0
    assert "WARNING: different commits (abc1234, def5678)" in capsys.readouterr().out
    assert main([a, str(tmp_path / "gone.json")]) == 1
    printed = capsys.readouterr().out
    assert f"{tmp_path / 'gone.json'}: no results" in printed
    assert len(rows_of(printed.splitlines(), "dense")) == 1
