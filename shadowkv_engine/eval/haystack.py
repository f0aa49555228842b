"""Haystacks: the filler that needles hide in, produced one sentence ("unit") at a time.

A sample is sized to a token length by searching for the number of units that fits, so unit i
must not depend on how many units are finally taken: each stream draws from its own random
generator, in order, and remembers what it drew.

- noise:  RULER's repeated "The grass is green. ..." sentences (cheap, no information).
- prose:  sentences from a small grammar over the built-in word lists; varied like real text, which
          matters for key spectra (a haystack of five sentences has trivially low-rank keys) and
          stands in for RULER's essay haystack, which would be a download.
- needle: distractor needles with other keys and values (RULER's needle haystack).

Frequent-word extraction has no sentences: its context is coded words counted by `zipf_counts`.
"""
import random
from collections.abc import Iterable

from . import templates, words

NOISE_SENTENCES = ("The grass is green.", "The sky is blue.", "The sun is yellow.", "Here we go.",
                   "There and back again.")

_PROSE_PATTERNS = (
    "The {adj} {noun} {verb} the {adj2} {noun2}.",
    "{name} {verb} the {adj} {noun} near the {noun2}.",
    "A {adj} {noun} stood beside the {adj2} {noun2} all day.",
    "{name} and {name2} {adv} {verb} a {adj} {noun}.",
    "Nobody {verb} the {noun} that {name} had left by the {noun2}.",
    "Every morning the {adj} {noun} {adv} {verb} the {noun2}.",
    "In the {adj} {noun2}, {name} {verb} an old {noun}.",
    "The {noun} was {adj}, and the {noun2} was {adj2}.",
)

HAYSTACKS = ("noise", "prose", "needle")


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
        if self.kind == "noise":
            return NOISE_SENTENCES[len(self._units) % len(NOISE_SENTENCES)]
        if self.kind == "prose":
            return prose_sentence(self._rng)
        return self._distractor_needle()

    def _distractor_needle(self) -> str:
        if len(self._used_keys) >= words.NUM_KEYS:
            raise ValueError(f"needle haystack exhausted its {words.NUM_KEYS} distinct keys")
        while (key := words.key(self._rng.randrange(words.NUM_KEYS))) in self._used_keys:
            pass
        self._used_keys.add(key)
        return templates.magic_needle(key, words.number(self._rng, 7))


def prose_sentence(rng: random.Random) -> str:
    adj, adj2 = rng.sample(words.ADJECTIVES, 2)
    noun, noun2 = rng.sample(words.NOUNS, 2)
    name, name2 = rng.sample(words.NAMES, 2)
    return rng.choice(_PROSE_PATTERNS).format(
        adj=adj, adj2=adj2, noun=noun, noun2=noun2, name=name, name2=name2,
        verb=rng.choice(words.VERBS), adv=rng.choice(words.ADVERBS))


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
