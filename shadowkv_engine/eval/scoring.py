"""Exact-match scoring of a model's output against a sample's answers.

One rule for both answer modes: the answer items are the matches of the task's answer pattern on
the output's first line, the first len(answers) of them, and they must be exactly the answers (in
any order for lists). The varied layouts' pattern (KEY) takes whole tokens only: "4821" is not
found in "48210" or "K4821", and a code counts only in full.

In the free mode the model writes its own opening ("The pass key is 4821."). Where that opening
contains the task's answer prefix, items are read after it (its first occurrence), so words of
the prefix itself never count as items (the frequent-word task's items are plain words); else
the whole first line is read. An answer that lists several candidates still fails: only the
first items count.
"""
import re

from .sample import Sample


def answer_region(output: str, sample: Sample) -> str:
    """The text the answer items are read from: the first line, after an echoed answer prefix."""
    first_line = output.strip().split("\n", 1)[0]
    if sample.mode == "free" and sample.answer_prefix:
        at = first_line.lower().find(sample.answer_prefix.lower())
        if at >= 0:
            return first_line[at + len(sample.answer_prefix):]
    return first_line


def answer_items(output: str, sample: Sample) -> list[str]:
    """The answer items the output gives: pattern matches, as many as expected.

    Only the first line counts and only the first len(answers) items, so an output that lists
    every number of the context does not pass by luck.
    """
    return re.findall(sample.answer_pattern, answer_region(output, sample))[:len(sample.answers)]


def is_correct(output: str, sample: Sample) -> bool:
    """Exact match: the items given are exactly the answers (any order for lists)."""
    return sorted(answer_items(output, sample)) == sorted(sample.answers)
