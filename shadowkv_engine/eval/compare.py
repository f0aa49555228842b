"""Compare two `shadowkv eval --output` files sample for sample (a reference, e.g. dense attention,
and a candidate, e.g. ShadowKV at some budget):

    python -m shadowkv_engine.eval.compare dense.json shadowkv.json [--digits-only] [--lost FILE]

Both runs draw the same samples for the same seeds, so each cell (task, length, split, answer
mode) present in both is compared on the seeds both hold: each run's accuracy, the samples whose
outputs are the same text, and how many of the reference's right answers the candidate keeps.
`--digits-only` counts only the samples whose key is a number (layout format `digits*`, issue 16's
targets); classic-split samples carry no layout and always count. `--lost FILE` writes the
samples right under the reference and wrong under the candidate as [[task, seed], ...], the input
of benchmarks/replay_samples.py.
"""
import argparse
import json
from dataclasses import dataclass
from pathlib import Path

CellKey = tuple[str, int, str, str]  # task, length, split, mode


@dataclass(frozen=True)
class CellComparison:
    key: CellKey
    samples: int
    reference_correct: int
    candidate_correct: int
    same_output: int
    kept: int  # right under both

    @property
    def label(self) -> str:
        task, length, split, mode = self.key
        return f"{task} @{length // 1024}K ({split}, {mode})"


def load_cells(path: str | Path) -> dict[CellKey, dict[int, dict]]:
    """cell -> seed -> record, from one eval JSON."""
    data = json.loads(Path(path).read_text())
    if "results" not in data:
        raise ValueError(f"{path}: not an eval output (no 'results'); write one with shadowkv eval --output")
    return {(r["task"], r["length"], r.get("split", "classic"), r.get("mode", "prefixed")):
            {record["seed"]: record for record in r["records"]} for r in data["results"]}


def has_numeric_key(layout: dict) -> bool:
    """Whether a sample's key is a number (layout format "digits5"; "alnum7" is not). Classic
    samples carry no layout and count as numeric."""
    return layout.get("format", "digits").startswith("digits")


def is_numeric_key(record: dict) -> bool:
    return has_numeric_key(record.get("layout", {}))


def compare(reference: dict[CellKey, dict[int, dict]], candidate: dict[CellKey, dict[int, dict]],
            digits_only: bool = False) -> list[CellComparison]:
    comparisons = []
    for key in sorted(reference.keys() & candidate.keys()):
        seeds = sorted(reference[key].keys() & candidate[key].keys())
        pairs = [(reference[key][s], candidate[key][s]) for s in seeds]
        if digits_only:
            pairs = [(a, b) for a, b in pairs if is_numeric_key(a)]
        comparisons.append(CellComparison(
            key, len(pairs), sum(a["correct"] for a, _ in pairs), sum(b["correct"] for _, b in pairs),
            sum(a["output"] == b["output"] for a, b in pairs),
            sum(a["correct"] and b["correct"] for a, b in pairs)))
    return comparisons


def lost_samples(reference: dict[CellKey, dict[int, dict]],
                 candidate: dict[CellKey, dict[int, dict]]) -> list[tuple[str, int]]:
    """(task, seed) of every sample, in any common cell, that the candidate got wrong and the
    reference right."""
    return [(key[0], seed) for key in sorted(reference.keys() & candidate.keys())
            for seed in sorted(reference[key].keys() & candidate[key].keys())
            if reference[key][seed]["correct"] and not candidate[key][seed]["correct"]]


def format_comparisons(comparisons: list[CellComparison]) -> str:
    header = f"{'cell':<36} | samples | reference | candidate | same output | right under both / reference"
    lines = [header, "-" * len(header)]
    for c in comparisons:
        lines.append(f"{c.label:<36} | {c.samples:7d} | {c.reference_correct:9d} | {c.candidate_correct:9d} "
                     f"| {c.same_output:11d} | {c.kept} / {c.reference_correct}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("reference", help="eval JSON of the reference run (e.g. dense attention)")
    p.add_argument("candidate", help="eval JSON of the run compared with it (e.g. ShadowKV)")
    p.add_argument("--digits-only", action="store_true",
                   help="count only samples whose key is a number (issue 16's targets)")
    p.add_argument("--lost", metavar="FILE",
                   help="write [[task, seed], ...] of the samples the candidate lost")
    args = p.parse_args(argv)
    reference, candidate = load_cells(args.reference), load_cells(args.candidate)
    comparisons = compare(reference, candidate, args.digits_only)
    if not comparisons:
        raise SystemExit("no cell (task, length, split, answer mode) is in both files")
    print(format_comparisons(comparisons))
    if args.lost:
        lost = lost_samples(reference, candidate)
        Path(args.lost).write_text(json.dumps(lost))
        print(f"wrote {len(lost)} lost samples to {args.lost}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
