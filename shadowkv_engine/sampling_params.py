"""Per-request sampling parameters, shaped like vLLM's `SamplingParams`."""
import math
from dataclasses import dataclass, field

from .errors import InvalidRequestError


INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


@dataclass
class SamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1  # -1 or 0 disables
    min_p: float = 0.0
    seed: int | None = None
    max_tokens: int | None = 16  # None: up to the context length
    min_tokens: int = 0
    stop: list[str] | str | None = None
    stop_token_ids: list[int] | None = None
    ignore_eos: bool = False
    include_stop_str_in_output: bool = False
    logprobs: int | None = None  # number of top alternatives returned per token
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    skip_special_tokens: bool = True
    stop_strings: list[str] = field(init=False, repr=False)

    def __post_init__(self):
        if isinstance(self.stop, str):
            self.stop = [self.stop]
        self.stop_strings = [s for s in (self.stop or []) if s]
        self.stop_token_ids = list(self.stop_token_ids or [])
        if self.top_k == 0:
            self.top_k = -1
        self._validate()

    def _validate(self):
        def check(ok: bool, param: str, message: str):
            if not ok:
                raise InvalidRequestError(message, param=param)

        check(isinstance(self.n, int) and self.n >= 1, "n", f"n must be at least 1, got {self.n}.")
        for name in ("temperature", "top_p", "min_p", "presence_penalty", "frequency_penalty",
                     "repetition_penalty"):
            value = getattr(self, name)
            check(isinstance(value, (int, float)) and not isinstance(value, bool)
                  and math.isfinite(value), name, f"{name} must be a finite number, got {value}.")
        check(self.temperature >= 0.0, "temperature",
              f"temperature must be non-negative, got {self.temperature}.")
        check(0.0 < self.top_p <= 1.0, "top_p", f"top_p must be in (0, 1], got {self.top_p}.")
        check(self.top_k == -1 or self.top_k >= 1, "top_k",
              f"top_k must be -1 (disable), 0 (disable) or at least 1, got {self.top_k}.")
        check(0.0 <= self.min_p <= 1.0, "min_p", f"min_p must be in [0, 1], got {self.min_p}.")
        check(self.max_tokens is None or self.max_tokens >= 1, "max_tokens",
              f"max_tokens must be at least 1, got {self.max_tokens}.")
        check(self.min_tokens >= 0, "min_tokens",
              f"min_tokens must be non-negative, got {self.min_tokens}.")
        check(self.max_tokens is None or self.min_tokens <= self.max_tokens, "min_tokens",
              f"min_tokens ({self.min_tokens}) must not exceed max_tokens ({self.max_tokens}).")
        check(self.logprobs is None or 0 <= self.logprobs <= 20, "logprobs",
              f"logprobs must be between 0 and 20, got {self.logprobs}.")
        check(-2.0 <= self.presence_penalty <= 2.0, "presence_penalty",
              f"presence_penalty must be in [-2, 2], got {self.presence_penalty}.")
        check(-2.0 <= self.frequency_penalty <= 2.0, "frequency_penalty",
              f"frequency_penalty must be in [-2, 2], got {self.frequency_penalty}.")
        check(all(isinstance(t, int) and t >= 0 for t in self.stop_token_ids), "stop_token_ids",
              "stop_token_ids must be non-negative integers.")
        check(self.seed is None or (isinstance(self.seed, int) and not isinstance(self.seed, bool)
                                    and INT64_MIN <= self.seed <= INT64_MAX),
              "seed", f"seed must be a 64-bit integer, got {self.seed}.")
        check(0.01 <= self.repetition_penalty <= 100.0, "repetition_penalty",
              f"repetition_penalty must be in [0.01, 100] (beyond, the penalised logits overflow), "
              f"got {self.repetition_penalty}.")

    def choice_seed(self, index: int) -> int | None:
        """The seed of choice `index` of an n > 1 request: the request's seed for choice 0, a
        64-bit mix of (seed, index) for the others, so that choice 1 of seed 42 is not choice 0
        of seed 43."""
        if self.seed is None or index == 0:
            return self.seed
        x = (self.seed + index * 0x9E3779B97F4A7C15) & ((1 << 64) - 1)  # splitmix64
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & ((1 << 64) - 1)
        return (x ^ (x >> 31)) - (1 << 63)

    @property
    def greedy(self) -> bool:
        return self.temperature < 1e-5

    @property
    def has_penalties(self) -> bool:
        return (self.presence_penalty != 0.0 or self.frequency_penalty != 0.0
                or self.repetition_penalty != 1.0)
