"""Turns next-token logits into tokens: penalties, temperature, top-k/top-p/min-p, seeds, logprobs.

Rows are processed one sequence at a time where parameters differ; batches here are small next
to the model's cost, and per-row generators make seeded sampling independent of the batch.
"""
from dataclasses import dataclass

import torch

from ..sampling_params import SamplingParams


@dataclass
class SampleRequest:
    params: SamplingParams
    prompt_token_ids: list[int]
    output_token_ids: list[int]
    generator: torch.Generator | None
    blocked_token_ids: list[int]  # e.g. EOS while fewer than min_tokens were generated


@dataclass
class SampleResult:
    token_id: int
    logprob: float  # of the sampled token under the model's distribution
    top_logprobs: list[tuple[int, float]]  # (token, logprob) best first, if asked for
    sampled_rank: int  # 1 = the most likely token


def sample(logits: torch.Tensor, requests: list[SampleRequest]) -> list[SampleResult]:
    """logits: float32 [B, V], one row per request."""
    raw_logprobs = torch.log_softmax(logits, dim=-1)
    results = []
    for row, req in enumerate(requests):
        processed = _process(logits[row].clone(), req)
        if req.params.greedy:
            token = int(torch.argmax(processed))
        else:
            probs = torch.softmax(processed / req.params.temperature, dim=-1)
            probs = _truncate(probs, req.params)
            token = int(torch.multinomial(probs, 1, generator=req.generator))
        row_logprobs = raw_logprobs[row]
        logprob = float(row_logprobs[token])
        top = []
        rank = 1
        if req.params.logprobs is not None:
            rank = int((row_logprobs > row_logprobs[token]).sum()) + 1
            if req.params.logprobs > 0:
                values, ids = row_logprobs.topk(req.params.logprobs)
                top = list(zip(ids.tolist(), values.tolist()))
        results.append(SampleResult(token, logprob, top, rank))
    return results


def _process(logits: torch.Tensor, req: SampleRequest) -> torch.Tensor:
    p = req.params
    if p.has_penalties:
        outputs = torch.tensor(req.output_token_ids, dtype=torch.long, device=logits.device)
        if p.repetition_penalty != 1.0:
            seen = torch.tensor(req.prompt_token_ids + req.output_token_ids, dtype=torch.long,
                                device=logits.device).unique()
            values = logits[seen]
            logits[seen] = torch.where(values > 0, values / p.repetition_penalty,
                                       values * p.repetition_penalty)
        if outputs.numel() and (p.presence_penalty or p.frequency_penalty):
            counts = torch.bincount(outputs, minlength=logits.shape[0]).to(logits.dtype)
            logits -= p.frequency_penalty * counts + p.presence_penalty * (counts > 0).float()
    if req.blocked_token_ids:
        logits[req.blocked_token_ids] = float("-inf")
    return logits


def _truncate(probs: torch.Tensor, p: SamplingParams) -> torch.Tensor:
    if p.top_k > 0 and p.top_k < probs.shape[0]:
        threshold = probs.topk(p.top_k).values[-1]
        probs = torch.where(probs >= threshold, probs, 0.0)
    if p.top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        cumulative = sorted_probs.cumsum(0) / sorted_probs.sum()
        # keep the smallest prefix whose mass reaches top_p (always at least one token)
        drop_sorted = cumulative - sorted_probs / sorted_probs.sum() >= p.top_p
        probs = probs.scatter(0, order, torch.where(drop_sorted, 0.0, sorted_probs))
    if p.min_p > 0.0:
        probs = torch.where(probs >= p.min_p * probs.max(), probs, 0.0)
    return probs
