"""What marks text as held-out evaluation material, of any held-out split.

The tests assert that no training text contains it, and training's real-text filler
(training/real_text.py) drops every passage that does: held-out material must reach the model
only at evaluation. A marker is the longest fixed stretch of a held-out template, a few units of
each held-out filler source, or a literal that only a held-out filler writes; held-out words
are matched as whole words.
"""
import random
import re
from functools import cache

from . import words
from .fillers import FILLERS
from .layouts import BLIND, BLIND2, BLIND3, BLIND4, BLIND5, BLIND6, BLIND7, HELDOUT

HELD_OUT_SPLITS = (HELDOUT, BLIND, BLIND2, BLIND3, BLIND4, BLIND5, BLIND6, BLIND7)
# Held-out filler sources whose units are fixed enough to recognise by a few of them.
_RECOGNISED_BY_UNITS = {"weather": 5, "bells": 6, "platform": 6, "legal": 6, "leaflet": 6,
                        "knitting": 6, "breathing": 6, "planetarium": 6}
# Literals only held-out fillers write (log levels, recipe units, markers of their formats).
_LITERALS = ("[INFO]", "[WARN]", "[DEBUG]", '{"name": ', " g flour", " | ", "release notes",
             "Local officials said", " (#", "Fans of the", " @ ", "; }",
             "Apologies were received from", " · ", ":~/", "command not found",
             "found this review helpful", "  dep  ", "timeout_seconds = ", "path = /srv/",
             "Attendance this term: ", " (illus.)", "; see also ", "ALTER TABLE ",
             "CREATE INDEX idx_", " Across. ", " Down. ", " THEN GOTO ", ": GOSUB ",
             "miles since yesterday noon", " in the small saleroom", "knocked down last spring to",
             ", Bd ", "\\begin{itemize}", "\\linewidth]{figures/", "\\textsc{")


def fixed_text(template: str) -> str:
    """The longest stretch of a template without a slot: what any rendering of it contains."""
    return max(re.split(r"\{\w+\}", template), key=len).strip()


@cache
def held_out_markers() -> tuple[str, ...]:
    markers = ([fixed_text(x) for pools in HELD_OUT_SPLITS
                for x in pools.instructions + pools.needles + pools.questions]
               + [FILLERS[source].unit(random.Random(0), i)
                  for source, count in _RECOGNISED_BY_UNITS.items() for i in range(count)]
               + list(_LITERALS)
               + [f" {attribute}" for pools in HELD_OUT_SPLITS for attribute, _ in pools.attributes])
    assert all(len(m) >= 3 for m in markers), "a marker this short would match ordinary text"
    return tuple(markers)


@cache
def _marker_pattern() -> re.Pattern:
    return re.compile("|".join(re.escape(m) for m in sorted(held_out_markers(), key=len,
                                                              reverse=True)))


def held_out_material(text: str) -> list[str]:
    """The held-out markers and words `text` contains; empty for text training may read."""
    found = [m for m in held_out_markers() if m in text] if _marker_pattern().search(text) else []
    return found + sorted(words.HELD_OUT_WORDS & set(re.findall(r"[A-Za-z]+", text)))
