"""One step's sampling parameters as device tensors, plus the flags that pick the fast paths.

Random (non-greedy) rows are gathered into a compact block, so the per-row tensors below are
indexed by position in that block, not by row of the logits.
"""
from dataclasses import dataclass

import torch

from .request import SampleRequest


@dataclass
class SamplingMetadata:
    random_rows: torch.Tensor | None  # [R] rows sampled at random; None when all rows are greedy
    temperature: torch.Tensor | None  # [R, 1]
    top_k: torch.Tensor | None  # [R, 1] long, 0 where off; None when no random row uses top-k
    max_top_k: int
    top_p: torch.Tensor | None  # [R, 1], inf where off; None when no random row uses top-p
    min_p: torch.Tensor | None  # [R, 1], 0 where off; None when no random row uses min-p
    seeded: list[tuple[int, int, int]]  # (position in the block, key, seed) of seeded rows
    unseeded: torch.Tensor | None  # [U] positions in the block drawn from the engine generator
    penalty_rows: list[int]
    blocked: tuple[torch.Tensor, torch.Tensor] | None  # (rows, token ids) forced to -inf
    logprob_rows: list[int]  # rows that asked for logprobs
    logprob_index: torch.Tensor | None  # the same rows on the device; None when there are none
    num_top_logprobs: list[int]  # alternatives asked for, per logprob row
    max_top_logprobs: int

    @property
    def all_greedy(self) -> bool:
        return self.random_rows is None


def build_metadata(requests: list[SampleRequest], vocab_size: int,
                   device: torch.device) -> SamplingMetadata:
    random_rows, random_params, seeded, unseeded = [], [], [], []
    penalty_rows, blocked_rows, blocked_ids = [], [], []
    logprob_rows, num_top = [], []
    for row, req in enumerate(requests):
        p = req.params
        if not p.greedy:
            position = len(random_rows)
            random_rows.append(row)
            top_k = p.top_k if 0 < p.top_k < vocab_size else 0
            random_params.append((p.temperature, top_k, p.top_p, p.min_p))
            if req.seed is None:
                unseeded.append(position)
            else:
                seeded.append((position, req.key, req.seed))
        if p.has_penalties:
            penalty_rows.append(row)
        if req.blocked_token_ids:
            blocked_rows += [row] * len(req.blocked_token_ids)
            blocked_ids += req.blocked_token_ids
        if p.logprobs is not None:
            logprob_rows.append(row)
            num_top.append(p.logprobs)

    temperature = top_k = top_p = min_p = None
    max_top_k = 0
    if random_rows:
        # one upload for all four columns; top-k values (< 2**24) are exact in float32
        params = upload(random_params, device, torch.float32)
        temperature = params[:, 0:1]
        max_top_k = max(k for _, k, _, _ in random_params)
        if max_top_k:
            top_k = params[:, 1:2].long()
        if any(tp < 1.0 for _, _, tp, _ in random_params):
            # a cumulative mass never reaches inf, so rows without top-p keep every token
            top_p = params[:, 2:3].masked_fill(params[:, 2:3] >= 1.0, float("inf"))
        if any(mp > 0.0 for _, _, _, mp in random_params):
            min_p = params[:, 3:4]
    return SamplingMetadata(
        random_rows=upload(random_rows, device) if random_rows else None,
        temperature=temperature, top_k=top_k, max_top_k=max_top_k, top_p=top_p, min_p=min_p,
        seeded=seeded,
        unseeded=upload(unseeded, device) if unseeded else None,
        penalty_rows=penalty_rows,
        blocked=tuple(upload([blocked_rows, blocked_ids], device)) if blocked_rows else None,
        logprob_rows=logprob_rows,
        logprob_index=upload(logprob_rows, device) if logprob_rows else None,
        num_top_logprobs=num_top,
        max_top_logprobs=max(num_top, default=0),
    )


def upload(values: list, device: torch.device, dtype: torch.dtype = torch.long) -> torch.Tensor:
    """A host list as a device tensor. On CUDA the copy goes through pinned memory without
    blocking, so it queues behind the forward pass instead of waiting for it to finish."""
    tensor = torch.tensor(values, dtype=dtype)
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)
