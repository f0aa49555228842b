"""Pieces both endpoints' responses are made of: usage, logprob values, streaming deltas."""
import time
from dataclasses import dataclass, field

from shadowkv_engine.outputs import CompletionOutput, Logprob, RequestOutput

# JSON has no -inf; OpenAI clients choke on `-Infinity`. vLLM clamps to the same value.
MIN_LOGPROB = -9999.0


def now() -> int:
    return int(time.time())


def usage(outputs: list[RequestOutput]) -> dict:
    """Summed over the requests of a batch; each prompt counts once, whatever `n`."""
    prompt = sum(len(output.prompt_token_ids) for output in outputs)
    completion = sum(len(choice.token_ids) for output in outputs for choice in output.outputs)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def finite(logprob: float) -> float:
    return max(logprob, MIN_LOGPROB)


def ranked(entry: dict[int, Logprob], top_n: int) -> list[Logprob]:
    """The top-`top_n` alternatives of one position, most likely first."""
    return sorted((lp for lp in entry.values() if lp.rank <= top_n), key=lambda lp: lp.rank)


@dataclass
class Delta:
    index: int
    text: str
    token_ids: list[int]
    logprobs: list[dict[int, Logprob]] | None
    finish_reason: str | None
    stop_reason: int | str | None
    first: bool  # the first delta of this choice (chat sends the role with it)


@dataclass
class DeltaTracker:
    """Turns the engine's cumulative outputs into what is new since the last chunk, per choice."""

    text_sent: dict[int, int] = field(default_factory=dict)
    tokens_sent: dict[int, int] = field(default_factory=dict)

    def deltas(self, output: RequestOutput) -> list[Delta]:
        found = []
        for choice in output.outputs:
            delta = self._delta(choice)
            if delta is not None:
                found.append(delta)
        return found

    def _delta(self, choice: CompletionOutput) -> Delta | None:
        first = choice.index not in self.text_sent
        text_from = self.text_sent.get(choice.index, 0)
        tokens_from = self.tokens_sent.get(choice.index, 0)
        text = choice.text[text_from:]
        token_ids = choice.token_ids[tokens_from:]
        # Every output that brings tokens is a chunk, even when they add no text (a special token,
        # part of a character, an id the tokenizer cannot spell, text held back because it may
        # become a stop string), as vLLM streams them: a client times tokens by chunks (TTFT,
        # ITL), and skipping such tokens merged their time into the next chunk's gap.
        if not (text or token_ids or choice.finish_reason or first):
            return None
        self.text_sent[choice.index] = len(choice.text)
        self.tokens_sent[choice.index] = len(choice.token_ids)
        logprobs = choice.logprobs[tokens_from:] if choice.logprobs is not None else None
        return Delta(choice.index, text, token_ids, logprobs, choice.finish_reason,
                     choice.stop_reason, first)
