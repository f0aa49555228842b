r"""`bench throughput` results of separate processes in one table: for each context and attention
mode, the batch, decode tok/s, the roofline and the share of it reached, and each ShadowKV mode's
tok/s over dense's at the same context and batch label (for 'max', each mode at its own largest
batch). Made for the two halves of one call that ran side by side, dense on one GPU and ShadowKV
on the other (benchmarks/gpu_engine_check.sh with SIDE_BY_SIDE); it says which commit, device and
start time each file records, and warns where the commits differ.

    python -m shadowkv_engine.bench.compare_runs engine_logs/throughput_gpu0.json \
        engine_logs/throughput_gpu1.json
"""
import argparse
import datetime
import json
import sys
from string import ascii_uppercase
from pathlib import Path

from .throughput_report import fmt


def load(paths: list[str]) -> tuple[list[tuple[str, dict]], list[str]]:
    """(name, results) of each readable file, and a line for each that is not."""
    runs, problems = [], []
    for path in paths:
        try:
            runs.append((path, json.loads(Path(path).read_text())))
        except (OSError, ValueError) as e:
            why = getattr(e, "strerror", None) or e
            problems.append(f"{path}: no results ({why}); see its log")
    return runs, problems


def describe(runs: list[tuple[str, dict]]) -> list[str]:
    """A line per run (its letter, file, device, commit, start), then whether they agree."""
    lines = []
    for letter, (path, results) in zip(ascii_uppercase, runs):
        meta = results["meta"]
        lines.append(f"{letter}: {path}: {meta['device']}, commit {meta['commit']}, started "
                     f"{meta['date']}, host RAM {fmt(meta.get('host_ram_gib'), '.1f')} GiB; "
                     f"{meta['command']}")
    commits = sorted({results["meta"]["commit"] for _, results in runs})
    starts = [datetime.datetime.fromisoformat(results["meta"]["date"]) for _, results in runs]
    if len(commits) > 1:
        lines.append(f"WARNING: different commits ({', '.join(commits)})")
    elif len(runs) > 1:
        apart = (max(starts) - min(starts)).total_seconds()
        lines.append(f"same commit {commits[0]}; started {apart:.0f} s apart")
    return lines


def decoding(row: dict) -> str:
    """'' where every sequence of the batch decoded in each timed step, else how many did."""
    if row["batch_intact"] and not row["preemptions"]:
        return ""
    return (f"{row['tokens'] / row['steps']:.1f} of {row['batch']} decoding a step, "
            f"{row['preemptions']} preemptions")


def table(runs: list[tuple[str, dict]]) -> list[str]:
    """A line per measured row of every run, dense first at each context."""
    rows = [dict(row, run=letter) for letter, (_, results) in zip(ascii_uppercase, runs)
            for row in results["rows"]]
    dense = {}
    for row in rows:
        if row["mode"] == "dense":
            dense.setdefault((row["context"], row["label"]), row)
    lines = [f"{'context':>8} {'mode':<13} {'batch':<9} {'decode tok/s':>12} "
             f"{'roofline (bound)':>17} {'reached':>7} {'hit rate':>8} {'vs dense':>8} run"]
    for row in sorted(rows, key=lambda r: (r["context"], r["mode"] != "dense", r["mode"],
                                           r["batch"])):
        base = dense.get((row["context"], row["label"])) if row["mode"] != "dense" else None
        ratio = base and row["decode_tok_s"] / base["decode_tok_s"]
        batch = f"{row['batch']}{' (max)' if row['label'] == 'max' else ''}"
        roof = f"{row['roofline']['tok_s']:.0f} ({row['roofline']['bound']})"
        reached = f"{100 * row['roofline_fraction']:.1f}%"
        note = decoding(row)
        lines.append(f"{row['context']:>8} {row['mode']:<13} {batch:<9} "
                     f"{row['decode_tok_s']:>12.1f} {roof:>17} {reached:>7} "
                     f"{fmt(row.get('hit_rate'), '.3f'):>8} {fmt(ratio, '.2f'):>8} {row['run']}"
                     + (f"  WARNING: {note}" if note else ""))
    return lines


def compare(paths: list[str], title: str | None = None) -> tuple[str, bool]:
    """The printed comparison, and whether every file had results."""
    runs, problems = load(paths)
    lines = ([title] if title else []) + describe(runs) + problems
    if runs:
        lines += table(runs)
    return "\n".join(lines), not problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shadowkv_engine.bench.compare_runs",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", help="`bench throughput --out` JSON files")
    parser.add_argument("--title", help="a first line (e.g. how the runs were made)")
    args = parser.parse_args(argv)
    text, complete = compare(args.results, args.title)
    print(text)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
