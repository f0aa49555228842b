"""Fixtures of the eval tests: a byte tokenizer (no template), a trained BPE with a template, and
the recogniser of held-out layout material."""
import random
import re

import pytest

from shadowkv_engine.eval import words
from shadowkv_engine.eval.fillers import FILLERS
from shadowkv_engine.eval.layouts import BLIND, BLIND2, BLIND3, BLIND4, HELDOUT

from training.documents import tokenizer_corpus
from training.tokenizer import save_tokenizer, train_tokenizer


class ByteTokenizer:
    """One token per UTF-8 byte, BOS = 256: the simplest object the tasks accept."""

    chat_template = None

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return ([256] if add_special_tokens else []) + list(text.encode())


@pytest.fixture(scope="session")
def byte_tokenizer() -> ByteTokenizer:
    return ByteTokenizer()


@pytest.fixture(scope="session")
def bpe_backend():
    """The training script's tokenizer (a `tokenizers.Tokenizer`), trained on a small corpus."""
    return train_tokenizer(tokenizer_corpus(seed=0, count=150), vocab_size=512)


@pytest.fixture(scope="session")
def bpe_dir(tmp_path_factory, bpe_backend):
    directory = tmp_path_factory.mktemp("bpe")
    save_tokenizer(bpe_backend, directory, model_max_length=65536)
    return directory


@pytest.fixture(scope="session")
def chat_tokenizer(bpe_dir):
    """The engine's Tokenizer over those files: Llama 3 chat template, BOS written by it."""
    from shadowkv_engine.model.tokenizer import Tokenizer

    return Tokenizer.from_pretrained(bpe_dir)


def _fixed_text(template: str) -> str:
    """The longest stretch of a template without a slot: what any rendering of it contains."""
    return max(re.split(r"\{\w+\}", template), key=len).strip()


# What marks a held-out prompt, of any held-out split (heldout, blind, blind2, blind3, blind4).
HELDOUT_MARKERS = ([_fixed_text(x) for pools in (HELDOUT, BLIND, BLIND2, BLIND3, BLIND4)
                    for x in pools.instructions + pools.needles + pools.questions]
                   + list(FILLERS["weather"].unit(random.Random(0), i) for i in range(5))
                   + list(FILLERS["bells"].unit(random.Random(0), i) for i in range(6))
                   + list(FILLERS["platform"].unit(random.Random(0), i) for i in range(6))
                   + list(FILLERS["legal"].unit(random.Random(0), i) for i in range(6))
                   + list(FILLERS["leaflet"].unit(random.Random(0), i) for i in range(6))
                   + ["[INFO]", "[WARN]", "[DEBUG]", '{"name": ', " g flour", " | ",
                      "release notes", "Local officials said", " (#", "Fans of the", " @ ", "; }",
                      "Apologies were received from", " · ", ":~/", "command not found",
                      "found this review helpful", "  dep  ", "timeout_seconds = ", "path = /srv/"]
                   + [f" {attribute}" for pools in (HELDOUT, BLIND, BLIND2, BLIND3, BLIND4)
                      for attribute, _ in pools.attributes])
HELDOUT_WORDS = set(words.HELD_OUT_WORDS)


@pytest.fixture(scope="session")
def heldout_material():
    """text -> the held-out markers and words it contains (training text must contain none)."""
    assert all(len(m) >= 3 for m in HELDOUT_MARKERS)

    def found(text: str) -> list[str]:
        return ([m for m in HELDOUT_MARKERS if m in text]
                + sorted(HELDOUT_WORDS & set(re.findall(r"[A-Za-z]+", text))))
    return found


@pytest.fixture(scope="session")
def fixed_text():
    """template -> the longest stretch of it without a slot."""
    return _fixed_text
