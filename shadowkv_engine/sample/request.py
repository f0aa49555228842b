"""What the engine hands the sampler for each row of logits, and what it gets back."""
from dataclasses import dataclass

from ..sampling_params import SamplingParams


@dataclass
class SampleRequest:
    key: int  # stable id of the sequence: the sampler caches its generator and penalty state
    params: SamplingParams
    prompt_token_ids: list[int]
    output_token_ids: list[int]  # grows by the tokens sampled since the last call
    seed: int | None  # per-sequence seed (params.seed + choice index); None: the engine's stream
    blocked_token_ids: list[int]  # e.g. EOS while fewer than min_tokens were generated
    # Tokens sampled after output_token_ids whose values the host does not have yet (async
    # scheduling); the penalty state counted them on the device when they were sampled.
    num_pending: int = 0


@dataclass
class SampleResult:
    token_id: int
    logprob: float  # of the sampled token under the model's raw distribution
    top_logprobs: list[tuple[int, float]]  # (token, logprob) best first, if asked for
    sampled_rank: int  # 1 = the most likely token; computed only if logprobs were asked for
