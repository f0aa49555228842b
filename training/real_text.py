"""Real text as filler: the Python standard library the trainer runs on, read as documents.

Every filler before this one was written by a grammar of ours, and the model learned to find
needles in those grammars' text and nowhere else: on the blind splits (docs/accuracy.md), in
shell sessions, calendar lines and legal clauses, it mostly did not find the needle at all. No
corpus can be downloaded here, but every machine that trains has one on disk: the standard
library's source (code, comments, docstrings, doctest sessions, tables, licence text) and its
reference manual (`pydoc_data.topics`, the language reference as plain prose). Text nobody wrote
for us, of several genres, with numbers of every size and words of every kind in it: the needle
is no longer the only odd sentence, and the model must find it by what the question names.

The passages depend on the Python version (3.12 on the GPU machine): `source()` names it, and the
training summary records it. Passages holding held-out material (eval/held_out_material.py) are
dropped, as the stream test demands. `units(n)` is a prefix of `units(n + 1)`, like every filler.
"""
import random
import re
import sys
import sysconfig
from functools import cache
from pathlib import Path

from shadowkv_engine.eval.held_out_material import held_out_material

# Not read: the test suites (generated and adversarial data), the IDE and demo packages (few
# words, much GUI code) and anything installed on top of the standard library.
SKIPPED_DIRECTORIES = {"test", "tests", "idlelib", "turtledemo", "site-packages", "__pycache__"}
MAX_UNIT_CHARS = 800  # a longer paragraph is cut at line ends: a needle may go between the parts
SEPARATOR = "\n\n"


def _paragraphs(document: str):
    for block in re.split(r"\n[ \t]*\n", document):
        block = block.strip("\n").rstrip()
        if not block.strip() or not block.isascii():
            continue
        piece: list[str] = []
        size = 0  # characters in `piece`, a newline after each line
        for line in block.split("\n"):
            if piece and size + len(line) > MAX_UNIT_CHARS:
                yield "\n".join(piece)
                piece, size = [], 0
            piece.append(line[:MAX_UNIT_CHARS])
            size += len(piece[-1]) + 1
        yield "\n".join(piece)


def _documents():
    from pydoc_data.topics import topics  # the language reference, topic by topic

    for name in sorted(topics):
        yield topics[name]
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(stdlib.rglob("*.py")):
        if not SKIPPED_DIRECTORIES & set(path.relative_to(stdlib).parts):
            yield path.read_text(encoding="utf-8", errors="replace")


@cache
def passages() -> tuple[str, ...]:
    """Every paragraph of the standard library free of held-out material, in document order."""
    found = tuple(p for document in _documents() for p in _paragraphs(document)
                  if not held_out_material(p))
    if not found:
        raise RuntimeError(f"no real text found under {sysconfig.get_paths()['stdlib']}")
    return found


def source() -> str:
    """What the real text is, for the training summary: the data depends on it."""
    return (f"Python {sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro} "
            f"standard library and reference manual, {len(passages()):,} passages")


class RealTextFiller:
    """Consecutive passages from a point drawn from `seed`, wrapping around the end."""

    separator = SEPARATOR

    def __init__(self, seed: str):
        self._start = random.Random(f"real-text/{seed}").randrange(len(passages()))

    def units(self, n: int) -> list[str]:
        every = passages()
        return [every[(self._start + i) % len(every)] for i in range(n)]
