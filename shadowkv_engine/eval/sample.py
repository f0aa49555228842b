"""One evaluation sample, and how a task's text becomes a prompt of an exact token length."""
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


class TextTokenizer(Protocol):
    """What the tasks need of a tokenizer: ours, a transformers one, or a test double."""

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]: ...


@dataclass(frozen=True)
class Sample:
    task: str
    length: int  # target: prompt tokens + max_new_tokens <= length
    seed: int
    prompt: str  # chat-templated when the tokenizer has a template; prefixed: ends with the answer prefix
    prompt_token_ids: list[int]
    answers: list[str]  # every item must be found (exact match; order free for lists)
    answer_pattern: str  # regex that picks answer items out of the model's output
    max_new_tokens: int
    answer_text: str  # what a perfect model writes after the prompt
    split: str = "classic"  # classic, train, heldout, blind, blind2, ..., blind7 (tasks.py)
    mode: str = "prefixed"  # prefixed: the prompt ends with answer_prefix; free: the model writes it
    answer_prefix: str = ""  # how a perfect answer starts, up to the answer items
    layout: dict = field(default_factory=dict)  # the layout's draws (varied layouts only)

    @property
    def num_prompt_tokens(self) -> int:
        return len(self.prompt_token_ids)


def render_prompt(tokenizer: TextTokenizer, user_text: str, answer_prefix: str) -> tuple[str, list[int]]:
    """The prompt text and its ids: the user turn in the chat template, then the answer prefix.

    A chat template writes its own BOS (Llama 3's does), so the rendered text is encoded without
    adding special tokens, as vLLM does for chat; without a template the text is a plain
    completion prompt and gets the tokenizer's usual special tokens.
    """
    if getattr(tokenizer, "chat_template", None):
        # tokenize=False makes a transformers tokenizer return text; ours returns text anyway
        # and merely passes the flag to the template, which ignores it.
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": user_text}], add_generation_prompt=True, tokenize=False)
        text += answer_prefix
        return text, list(tokenizer.encode(text, add_special_tokens=False))
    text = f"{user_text}\n\n{answer_prefix}"
    return text, list(tokenizer.encode(text, add_special_tokens=True))


def largest_fitting(num_tokens: Callable[[int], int], budget: int, guess: int = 1) -> int:
    """The largest n with num_tokens(n) <= budget, for num_tokens that never decreases in n.

    Steps of 1, 2, 4, ... away from `guess` bracket the answer, then bisection finds it: with a
    good guess, two or three calls of num_tokens (a tokenization of the whole prompt).
    """
    if num_tokens(0) > budget:
        raise ValueError(f"the task's fixed text alone is {num_tokens(0)} tokens, over the budget "
                         f"of {budget}")
    guess, step = max(guess, 0), 1
    if num_tokens(guess) <= budget:
        lo = guess
        while num_tokens(lo + step) <= budget:
            lo, step = lo + step, step * 2
        hi = lo + step
    else:
        hi = guess
        while hi - step > 0 and num_tokens(hi - step) > budget:
            hi, step = hi - step, step * 2
        lo = max(0, hi - step)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if num_tokens(mid) <= budget:
            lo = mid
        else:
            hi = mid
    return lo
