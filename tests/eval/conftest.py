"""Fixtures of the eval tests: a byte tokenizer (no template), a trained BPE with a template, and
the recogniser of held-out layout material."""
import pytest

from shadowkv_engine.eval import held_out_material as held_out

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


@pytest.fixture(scope="session")
def heldout_material():
    """text -> the held-out markers and words it contains (training text must contain none)."""
    return held_out.held_out_material


@pytest.fixture(scope="session")
def fixed_text():
    """template -> the longest stretch of it without a slot."""
    return held_out.fixed_text
