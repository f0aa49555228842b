"""Sequence length schedule: short first, longer once retrieval works, the full length by a deadline.

Retrieval appears at a few hundred tokens and then transfers to longer contexts, while learning
it from scratch at thousands of tokens is slow (training_probe.md). So a stage ends when the
model copies retrieval answers well (token accuracy over recent steps), and in any case by its
deadline, so that the final length always gets the second half of the run.
"""
from dataclasses import dataclass


@dataclass
class Curriculum:
    lengths: list[int]
    threshold: float = 0.95  # retrieval answer-token accuracy that ends a stage
    min_steps: int = 150  # per stage, before accuracy may end it
    final_by: float = 0.5  # fraction of the run by which the last stage starts
    stage: int = 0
    stage_start: int = 0
    _accuracy: float | None = None

    @property
    def length(self) -> int:
        return self.lengths[self.stage]

    def deadline(self) -> float:
        """Fraction of the run by which the current stage ends (stages share `final_by` evenly)."""
        return self.final_by * (self.stage + 1) / max(1, len(self.lengths) - 1)

    def update(self, step: int, progress: float, accuracy: float | None) -> bool:
        """Record one step's retrieval accuracy (None: no such answer in the batch); True if the
        stage advanced."""
        if accuracy is not None:
            self._accuracy = accuracy if self._accuracy is None else 0.9 * self._accuracy + 0.1 * accuracy
        if self.stage == len(self.lengths) - 1:
            return False
        learned = (step - self.stage_start >= self.min_steps and self._accuracy is not None
                   and self._accuracy >= self.threshold)
        if learned or progress >= self.deadline():
            self.stage, self.stage_start, self._accuracy = self.stage + 1, step, None
            return True
        return False

    @property
    def accuracy(self) -> float | None:
        return self._accuracy
