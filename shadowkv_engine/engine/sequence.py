"""One generation stream (a request has `n` of them) and its progress."""
import enum
import time
from dataclasses import dataclass, field

from ..kv.sequence_kv import SequenceKV
from ..model.tokenizer import IncrementalDetokenizer
from ..outputs import Logprob
from ..sampling_params import SamplingParams


class SequenceStatus(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass(eq=False)
class Sequence:
    seq_id: int
    request_id: str
    index: int  # choice index within its request
    prompt_token_ids: list[int]
    params: SamplingParams
    max_tokens: int  # params.max_tokens, or what the context length leaves
    detokenizer: IncrementalDetokenizer
    arrival_time: float = field(default_factory=time.time)
    token_ids: list[int] = field(init=False)
    num_computed: int = 0  # tokens whose keys/values are in the cache
    # Tokens sampled by a step still in flight (async scheduling), not yet in token_ids: they
    # count as uncomputed, and the next step reads them from the device.
    num_pending: int = 0
    kv: SequenceKV | None = None
    status: SequenceStatus = SequenceStatus.WAITING
    text: str = ""
    logprobs: list[dict[int, Logprob]] = field(default_factory=list)
    cumulative_logprob: float = 0.0
    finish_reason: str | None = None
    stop_reason: int | str | None = None

    def __post_init__(self):
        self.token_ids = list(self.prompt_token_ids)

    @property
    def num_prompt_tokens(self) -> int:
        return len(self.prompt_token_ids)

    @property
    def output_token_ids(self) -> list[int]:
        return self.token_ids[self.num_prompt_tokens:]

    @property
    def num_uncomputed(self) -> int:
        return len(self.token_ids) + self.num_pending - self.num_computed

    @property
    def awaiting_last_token(self) -> bool:
        """Its final token (by max_tokens) is in flight: nothing more to schedule."""
        return (self.num_pending > 0
                and len(self.output_token_ids) + self.num_pending >= self.max_tokens)

    @property
    def finished(self) -> bool:
        return self.status is SequenceStatus.FINISHED
