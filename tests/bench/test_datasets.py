"""Prompts of the random, long-context and synthetic datasets."""
import pytest

from shadowkv_engine.bench.datasets import (CHARS_PER_TOKEN, TEMPLATE_SLACK, load_tokenizer,
                                            long_context_requests, random_requests,
                                            synthetic_requests)
from shadowkv_engine.default_model import DEFAULT_MODEL_DIR


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(DEFAULT_MODEL_DIR)


def test_random_prompts_have_exact_lengths_in_range(tokenizer):
    requests = random_requests(tokenizer, 20, input_len=200, output_len=50, range_ratio=0.5,
                               seed=0)
    for r in requests:
        assert 100 <= r.prompt_len <= 300 and 25 <= r.output_len <= 75
        assert len(tokenizer.encode(r.prompt, add_special_tokens=False)) == r.prompt_len
    assert len({r.prompt for r in requests}) == 20
    assert len({r.prompt_len for r in requests}) > 1
    again = random_requests(tokenizer, 20, 200, 50, 0.5, seed=0)
    assert [r.prompt for r in again] == [r.prompt for r in requests]


def test_random_prompts_without_a_tokenizer_are_sized_by_characters():
    (request,) = random_requests(load_tokenizer(None), 1, 300, 8, 0.0, seed=1)
    assert request.prompt_len == 300 and len(request.prompt) == 300 * CHARS_PER_TOKEN
    assert request.output_len == 8


def test_bad_range_ratio():
    with pytest.raises(ValueError, match="range-ratio"):
        random_requests(load_tokenizer(None), 1, 100, 10, 1.0, seed=0)


def test_synthetic_requests_cycle_tasks_and_score_exact_match(tokenizer):
    requests = synthetic_requests(tokenizer, ["passkey", "vt"], 1024, 4, token_ids=True)
    assert [r.sample.task for r in requests] == ["passkey", "vt", "passkey", "vt"]
    assert requests[0].sample.seed != requests[2].sample.seed
    for r in requests:
        assert isinstance(r.prompt, list) and r.prompt_len + r.output_len <= 1024
        assert r.score(r.sample.answer_text) and not r.score("I do not know.")


def test_synthetic_requests_for_chat_are_plain_text(tokenizer):
    (request,) = synthetic_requests(tokenizer, ["passkey"], 1024, 1, token_ids=False)
    assert isinstance(request.prompt, str) and "<|start_header_id|>" not in request.prompt
    assert request.score(request.sample.answer_text)


def test_long_context_presets_fill_the_context_with_their_output(tokenizer):
    requests = long_context_requests(tokenizer, "long-32k", 2, output_len=100, range_ratio=0.5,
                                     seed=0)
    for r in requests:
        assert r.prompt_len == 32768 - 150 - TEMPLATE_SLACK and 50 <= r.output_len <= 150
    with pytest.raises(ValueError, match="no room"):
        long_context_requests(tokenizer, "long-32k", 1, 40000, 0.0, seed=0)
