"""The prompts of a run: random text of given token lengths, long-context presets of it, or the
project's synthetic long-context tasks (shadowkv_engine/eval), which are scored for exact match.

Lengths are exact in the tokens of `--tokenizer` (a checkpoint folder with tokenizer.json: the
served model's). Without one they are approximated at CHARS_PER_TOKEN characters a token, and the
report's token counts come from the server's usage instead.
"""
import math
import random
from dataclasses import dataclass
from pathlib import Path

from ..eval import words
from ..eval.sample import Sample
from ..eval.scoring import is_correct
from ..eval.tasks import EVAL_SEED_OFFSET, TASKS, make_sample

CHARS_PER_TOKEN = 4  # the usual rule of thumb for English text and BPE vocabularies
# Context lengths (prompt + output): long-128k must fit a 131072-token model such as Llama 3.1.
LONG_PRESETS = {"long-32k": 32 * 1024, "long-64k": 64 * 1024, "long-128k": 128 * 1024}
TEMPLATE_SLACK = 16  # tokens a server may add to a prompt: BOS, a chat template's headers
DATASETS = ("random", *LONG_PRESETS, "synthetic")
VOCABULARY = words.ADJECTIVES + words.NOUNS


@dataclass
class BenchRequest:
    prompt: str | list[int]  # token ids only for completions with an exact tokenizer
    prompt_len: int  # tokens (estimated without a tokenizer)
    output_len: int
    sample: Sample | None = None  # synthetic task instance, for scoring

    def score(self, text: str) -> bool | None:
        return None if self.sample is None else is_correct(text, self.sample)


class ApproximateTokenizer:
    """Stands in for the served model's tokenizer: one token per CHARS_PER_TOKEN characters."""

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return [0] * math.ceil(len(text) / CHARS_PER_TOKEN)


class PlainPrompts:
    """A tokenizer seen without its chat template: synthetic prompts stay plain text, for the
    chat endpoint, whose server applies the template itself."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=add_special_tokens)


def load_tokenizer(path: str | Path | None):
    """The tokenizer of a checkpoint folder, else the character approximation."""
    if path is None:
        return ApproximateTokenizer()
    from ..model.tokenizer import Tokenizer

    return Tokenizer.from_pretrained(path)


def is_exact(tokenizer) -> bool:
    return not isinstance(tokenizer, ApproximateTokenizer)


def sample_length(rng: random.Random, length: int, range_ratio: float) -> int:
    """Uniform in [length * (1 - r), length * (1 + r)], at least 1 (vLLM's random dataset)."""
    low, high = math.floor(length * (1 - range_ratio)), math.ceil(length * (1 + range_ratio))
    return max(1, rng.randint(low, high))


def random_text(rng: random.Random, tokenizer, num_tokens: int) -> tuple[str, int]:
    """Random words cut to `num_tokens` tokens; (text, its token count)."""
    if not is_exact(tokenizer):
        text, size = [], 0
        while size < num_tokens * CHARS_PER_TOKEN:
            text.append(rng.choice(VOCABULARY))
            size += len(text[-1]) + 1
        return " ".join(text)[:num_tokens * CHARS_PER_TOKEN], num_tokens
    probe = " ".join(rng.choices(VOCABULARY, k=200))
    per_word = len(tokenizer.encode(probe, add_special_tokens=False)) / 200
    count = math.ceil(num_tokens / per_word * 1.1) + 8
    ids = tokenizer.encode(" ".join(rng.choices(VOCABULARY, k=count)), add_special_tokens=False)
    text = tokenizer.decode(ids[:num_tokens])
    return text, len(tokenizer.encode(text, add_special_tokens=False))


def random_requests(tokenizer, num: int, input_len: int, output_len: int, range_ratio: float,
                    seed: int, input_range_ratio: float | None = None) -> list[BenchRequest]:
    """Random prompts; lengths vary by range_ratio (the input's by input_range_ratio if given)."""
    input_ratio = range_ratio if input_range_ratio is None else input_range_ratio
    if not (0 <= range_ratio < 1 and 0 <= input_ratio < 1):
        raise ValueError("--random-range-ratio must be in [0, 1)")
    requests = []
    for i in range(num):
        rng = random.Random(f"{seed}/{i}")
        text, length = random_text(rng, tokenizer, sample_length(rng, input_len, input_ratio))
        requests.append(BenchRequest(text, length, sample_length(rng, output_len, range_ratio)))
    return requests


def long_context_requests(tokenizer, preset: str, num: int, output_len: int, range_ratio: float,
                          seed: int) -> list[BenchRequest]:
    """Prompts of one length that, with the longest output and TEMPLATE_SLACK, fill the
    preset's context; --random-range-ratio varies the outputs only."""
    longest_output = math.ceil(output_len * (1 + range_ratio))
    input_len = LONG_PRESETS[preset] - longest_output - TEMPLATE_SLACK
    if input_len < 1:
        raise ValueError(f"an output of {longest_output} tokens leaves no room in {preset}")
    return random_requests(tokenizer, num, input_len, output_len, range_ratio, seed,
                           input_range_ratio=0.0)


def synthetic_requests(tokenizer, tasks: list[str], length: int, num: int,
                       token_ids: bool) -> list[BenchRequest]:
    """Requests cycling through `tasks`, each an eval sample (seeds as `shadowkv eval` uses).

    token_ids: send the prompt as token ids (completions, exact tokenizer: the same ids as
    `shadowkv eval`); otherwise as plain text without the chat template, for the chat endpoint.
    """
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise ValueError(f"unknown task(s) {unknown}; known: {', '.join(TASKS)}")
    view = tokenizer if token_ids else PlainPrompts(tokenizer)
    requests = []
    for i in range(num):
        sample = make_sample(tasks[i % len(tasks)], view, length,
                             EVAL_SEED_OFFSET + i // len(tasks))
        prompt = sample.prompt_token_ids if token_ids else sample.prompt
        requests.append(BenchRequest(prompt, sample.num_prompt_tokens, sample.max_new_tokens,
                                     sample))
    return requests
