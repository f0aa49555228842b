"""A task instance with its random draws made (Problem), a task (Task), and how needles are hidden.

Shared by the classic tasks (tasks.py) and the layout tasks (layout_tasks.py), which build the
same Problem from different pools of wording and filler.
"""
import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Problem:
    """A task instance with its random draws made; only the haystack size is left open."""

    pieces: Callable[[int], list[str]]  # haystack size -> the context's sentences (or words)
    preamble: str  # the instruction before the context; "" for none
    question: str
    answer_prefix: str  # how the answer starts: the needle's own words, up to the value
    answers: list[str]
    answer_text: str  # the rest of a perfect answer, after the prefix
    separator: str = " "  # between pieces: a space for sentences, a newline for lines
    layout: dict = field(default_factory=dict)  # what was drawn, for the per-sample record

    def context(self, n: int) -> str:
        return self.separator.join(self.pieces(n))


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    max_new_tokens: int  # for the answer after the prefix
    answer_pattern: str
    make: Callable[[random.Random, str], Problem]  # (rng, seed label) -> Problem


def hide(units: list[str], needles: list[str], depths: list[float]) -> list[str]:
    """Insert each needle at its relative depth; needles at the same place keep their order."""
    pieces = list(units)
    placed = sorted(zip(depths, range(len(needles)), needles), reverse=True)
    for depth, _, needle in placed:
        pieces.insert(round(depth * len(units)), needle)
    return pieces
