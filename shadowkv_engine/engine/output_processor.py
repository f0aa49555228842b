"""From sampled tokens to what a request's caller sees: the token appended with its logprobs,
the text detokenized incrementally, stop tokens, stop strings and lengths checked, and the
cumulative `RequestOutput` (text held back while it could still grow into a stop string)."""
from dataclasses import dataclass

from ..model.tokenizer import Tokenizer
from ..outputs import CompletionOutput, Logprob, RequestOutput
from ..sample import SampleResult
from .sequence import Sequence


@dataclass(frozen=True)
class Finish:
    reason: str  # "stop" or "length"
    stop_reason: int | str | None = None  # the stop token or string that ended it


class OutputProcessor:
    def __init__(self, tokenizer: Tokenizer, eos_token_ids: set[int], max_model_len: int):
        self.tokenizer = tokenizer
        self.eos_token_ids = eos_token_ids
        self.max_model_len = max_model_len

    def append(self, seq: Sequence, result: SampleResult) -> Finish | None:
        """Adds a sampled token to the sequence; returns why it finished, if it did."""
        params = seq.params
        token = result.token_id
        seq.token_ids.append(token)
        seq.cumulative_logprob += result.logprob
        if params.logprobs is not None:
            entry = {token: Logprob(result.logprob, result.sampled_rank, self._piece(token))}
            for rank, (tid, lp) in enumerate(result.top_logprobs, start=1):
                entry.setdefault(tid, Logprob(lp, rank, self._piece(tid)))
            seq.logprobs.append(entry)
        num_out = len(seq.output_token_ids)
        if not params.ignore_eos and token in self.eos_token_ids:
            return Finish("stop")
        if token in params.stop_token_ids:
            return Finish("stop", token)
        previous = len(seq.text)
        seq.text += seq.detokenizer.push(token)
        if params.stop_strings and num_out >= params.min_tokens:
            stop = self._match_stop(seq, previous)
            if stop is not None:
                return Finish("stop", stop)
        if num_out >= seq.max_tokens or len(seq.token_ids) >= self.max_model_len:
            return Finish("length")
        return None

    def output(self, request) -> RequestOutput:
        """The request's cumulative output (request: llm_engine.Request)."""
        choices = [CompletionOutput(
            index=s.index, text=self._visible_text(s), token_ids=list(s.output_token_ids),
            cumulative_logprob=s.cumulative_logprob if s.params.logprobs is not None else None,
            logprobs=list(s.logprobs) if s.params.logprobs is not None else None,
            finish_reason=s.finish_reason, stop_reason=s.stop_reason)
            for s in request.sequences]
        return RequestOutput(request.request_id, request.prompt, request.prompt_token_ids, choices,
                             request.finished, request.metrics, request.error)

    def _match_stop(self, seq: Sequence, previous_len: int) -> str | None:
        """The first stop string in the text (searched from where new text could complete one);
        the text is cut at it (or after it, with include_stop_str_in_output)."""
        longest = max(len(s) for s in seq.params.stop_strings)
        window_start = max(0, previous_len - longest + 1)
        hits = [(seq.text.find(s, window_start), s) for s in seq.params.stop_strings]
        hits = [(at, s) for at, s in hits if at >= 0]
        if not hits:
            return None
        at, stop = min(hits)
        end = at + len(stop) if seq.params.include_stop_str_in_output else at
        seq.text = seq.text[:end]
        return stop

    def _piece(self, token_id: int) -> str:
        return self.tokenizer.decode([token_id], skip_special_tokens=False)

    @staticmethod
    def _visible_text(seq: Sequence) -> str:
        """While running, hold back the tail that could still grow into a stop string."""
        if seq.finished or not seq.params.stop_strings:
            return seq.text
        hold = max(len(s) for s in seq.params.stop_strings) - 1
        return seq.text[:max(0, len(seq.text) - hold)]
