"""Haystacks: the filler that needles hide in, produced one sentence ("unit") at a time.

A sample is sized to a token length by searching for the number of units that fits, so unit i
must not depend on how many units are finally taken: each stream draws from its own random
generator, in order, and remembers what it drew.

- noise:  RULER's repeated "The grass is green. ..." sentences (cheap, no information).
- prose:  sentences from a small grammar over the built-in word lists; varied like real text, which
          matters for key spectra (a haystack of five sentences has trivially low-rank keys) and
          stands in for RULER's essay haystack, which would be a download.
- needle: distractor needles with other keys and values (RULER's needle haystack).
- every other filler source of fillers.py (lists, code-like text, ...), for the layout splits.

Frequent-word extraction has no sentences: its context is coded words counted by `zipf_counts`.
"""
import random
from collections.abc import Iterable

from . import templates, words
from .fillers import FILLERS

HAYSTACKS = ("needle", *FILLERS)


class Haystack:
    """Units of one haystack kind; `units(n)` is always a prefix of `units(n + 1)`."""

    def __init__(self, kind: str, seed: str, exclude_keys: Iterable[str] = ()):
        if kind not in HAYSTACKS:
            raise ValueError(f"unknown haystack {kind!r}; known: {HAYSTACKS}")
        self.kind = kind
        self._rng = random.Random(f"haystack/{kind}/{seed}")
        self._units: list[str] = []
        self._used_keys = set(exclude_keys)  # needle haystack: never reuse a key that is asked about

    def units(self, n: int) -> list[str]:
        while len(self._units) < n:
            self._units.append(self._next_unit())
        return self._units[:n]

    def _next_unit(self) -> str:
        if self.kind == "needle":
            return self._distractor_needle()
        return FILLERS[self.kind].unit(self._rng, len(self._units))

    def _distractor_needle(self) -> str:
        if len(self._used_keys) >= words.NUM_KEYS:
            raise ValueError(f"needle haystack exhausted its {words.NUM_KEYS} distinct keys")
        while (key := words.key(self._rng.randrange(words.NUM_KEYS))) in self._used_keys:
            pass
        self._used_keys.add(key)
        return templates.magic_needle(key, words.number(self._rng, 7))


def zipf_counts(vocabulary_size: int, total: int, alpha: float = 2.0) -> list[int]:
    """How often each word of a ranked vocabulary appears among about `total` words (Zipf's law).

    Counts are set, not sampled, so the top three always stand clear of the fourth (RULER samples
    them and can tie at short lengths). They never decrease as `total` grows, which keeps the
    token length monotone in `total` for the length search.
    """
    weights = [1.0 / (rank + 1) ** alpha for rank in range(vocabulary_size)]
    scale = total / sum(weights)
    counts = [int(w * scale) for w in weights]
    for rank in (2, 1, 0):
        counts[rank] = max(counts[rank], counts[rank + 1] + 1)
    return counts
