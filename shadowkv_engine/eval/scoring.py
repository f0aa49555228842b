"""Exact-match scoring of a model's output against a sample's answers."""
import re

from .sample import Sample


def answer_items(output: str, sample: Sample) -> list[str]:
    """The answer items the output gives: pattern matches on its first line, as many as expected.

    Only the first line counts and only the first len(answers) items, so an output that lists
    every number of the context does not pass by luck.
    """
    first_line = output.strip().split("\n", 1)[0]
    return re.findall(sample.answer_pattern, first_line)[:len(sample.answers)]


def is_correct(output: str, sample: Sample) -> bool:
    """Exact match: the items given are exactly the answers (any order for lists)."""
    return sorted(answer_items(output, sample)) == sorted(sample.answers)
