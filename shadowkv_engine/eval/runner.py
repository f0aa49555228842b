"""Runs tasks × lengths through any greedy generator and tabulates exact-match accuracy.

The generator is a plain function (prompt token ids, max new tokens) -> output texts, so the same
samples and scoring serve our engine (`shadowkv eval`, dense or ShadowKV) and the transformers
reference used by the training script: their numbers are comparable by construction.
A cell is (task, length, answer mode) on one split; the table names a cell's split and mode after
the task when they are not the classic ones ("passkey (heldout, free)").
"""
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from .sample import Sample, TextTokenizer
from .scoring import answer_items, is_correct
from .tasks import eval_samples

Generate = Callable[[list[list[int]], int], list[str]]


@dataclass
class SampleRecord:
    seed: int
    prompt_tokens: int
    answers: list[str]
    output: str
    given: list[str]
    correct: bool
    layout: dict = field(default_factory=dict)


@dataclass
class CellResult:
    task: str
    length: int
    seconds: float
    records: list[SampleRecord] = field(default_factory=list)
    split: str = "classic"
    mode: str = "prefixed"

    @property
    def qualifiers(self) -> list[str]:
        """What sets the cell apart from the classic prefixed one, if anything."""
        return [x for x, usual in ((self.split, "classic"), (self.mode, "prefixed")) if x != usual]

    @property
    def label(self) -> str:
        return f"{self.task} ({', '.join(self.qualifiers)})" if self.qualifiers else self.task

    @property
    def key(self) -> str:
        """The cell's name in the JSON summary: 'passkey@4096', 'passkey@4096/heldout/free'."""
        return "/".join([f"{self.task}@{self.length}", *self.qualifiers])

    @property
    def correct(self) -> int:
        return sum(r.correct for r in self.records)

    @property
    def accuracy(self) -> float:
        return self.correct / len(self.records) if self.records else 0.0


def evaluate(generate: Generate, tokenizer: TextTokenizer, tasks: list[str], lengths: list[int],
             samples: int, batch_size: int = 8, progress: bool = True, split: str = "classic",
             modes: tuple[str, ...] = ("prefixed",)) -> list[CellResult]:
    """Accuracy of `generate` on `samples` eval samples per (task, length, mode), seeds fixed;
    every mode gets the same samples."""
    results = []
    with tqdm(total=len(tasks) * len(lengths) * len(modes) * samples, disable=not progress,
              unit="sample", dynamic_ncols=True) as bar:
        for task in tasks:
            for length in lengths:
                for mode in modes:
                    cell = CellResult(task, length, 0.0, split=split, mode=mode)
                    bar.set_description(f"{cell.label} @ {length}")
                    start = time.perf_counter()
                    cell_samples = eval_samples(task, tokenizer, length, samples, split, mode)
                    outputs = {}
                    for batch in _batches(cell_samples, batch_size):
                        texts = generate([cell_samples[i].prompt_token_ids for i in batch],
                                         cell_samples[batch[0]].max_new_tokens)
                        outputs.update(zip(batch, texts, strict=True))
                        bar.update(len(batch))
                    cell.records = [_record(s, outputs[i]) for i, s in enumerate(cell_samples)]
                    cell.seconds = time.perf_counter() - start
                    results.append(cell)
    return results


def _batches(samples: list[Sample], batch_size: int) -> list[list[int]]:
    """Indices of samples to generate together. One call has one answer budget, and a free
    answer's budget depends on its prefix's length, so a batch holds samples of equal budget."""
    batches = []
    for budget in sorted({s.max_new_tokens for s in samples}):
        same = [i for i, s in enumerate(samples) if s.max_new_tokens == budget]
        batches += [same[i:i + batch_size] for i in range(0, len(same), batch_size)]
    return batches


def _record(sample: Sample, output: str) -> SampleRecord:
    return SampleRecord(sample.seed, sample.num_prompt_tokens, sample.answers, output,
                        answer_items(output, sample), is_correct(output, sample), sample.layout)


def format_table(results: list[CellResult]) -> str:
    """Accuracy in percent, one row per task (and split and mode), one column per length, and the
    mean over rows."""
    rows = list(dict.fromkeys(r.label for r in results))
    lengths = sorted({r.length for r in results})
    cells = {(r.label, r.length): r for r in results}
    width = max([len("task"), len("mean")] + [len(row) for row in rows])
    header = f"{'task':<{width}} | " + " | ".join(f"{_length_label(n):>7}" for n in lengths)
    lines = [header, "-" * len(header)]
    for label in rows:
        row = [f"{100 * cells[label, n].accuracy:6.1f}%" if (label, n) in cells else "      -"
               for n in lengths]
        lines.append(f"{label:<{width}} | " + " | ".join(row))
    means = []
    for n in lengths:
        column = [r.accuracy for r in results if r.length == n]
        means.append(f"{100 * sum(column) / len(column):6.1f}%")
    lines.append(f"{'mean':<{width}} | " + " | ".join(means))
    return "\n".join(lines)


def write_json(path: str | Path, results: list[CellResult], meta: dict) -> None:
    data = {
        "meta": meta,
        "summary": {r.key: round(r.accuracy, 4) for r in results},
        "results": [{"task": r.task, "length": r.length, "split": r.split, "mode": r.mode,
                     "accuracy": r.accuracy, "correct": r.correct, "samples": len(r.records),
                     "seconds": round(r.seconds, 2), "records": [asdict(s) for s in r.records]}
                    for r in results],
    }
    Path(path).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def _length_label(n: int) -> str:
    return f"{n // 1024}k" if n % 1024 == 0 else str(n)
