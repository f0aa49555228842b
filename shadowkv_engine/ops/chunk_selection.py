"""One decode layer's chunk selection and hit/miss plan, with the decode state updated in place.

For every row (a sequence's KV head): the k best chunks by landmark score (chunk_topk.py), then
the plan against the chunks its slots already hold (chunk_plan.py). The resident ids of the
row's batch slot are replaced by the plan's, and the row's hits are added to the slot's counter.
On CUDA this is one kernel (csrc/select_chunks.cu) instead of about ten small launches.
"""
import torch

from .chunk_plan import plan_chunk_reuse_torch
from .chunk_topk import select_top_chunks
from .extension import use_cuda_op


def select_and_plan(scores: torch.Tensor, resident: torch.Tensor, slots: torch.Tensor, layer: int,
                    hits: torch.Tensor) -> torch.Tensor:
    """scores: float32 [B, H, N] (-inf: not selectable); resident: int32 [S, L, H, K], the decode
    state's slot ids (row slots[b], layer `layer` is read and rewritten); slots: int64 [B];
    hits: int64 [S] counters (hits[slots[b]] += the hits of row b's heads). Returns fetch: int32
    [B, H, K], the chunk each slot must load this step, or -1. Rows that share a slot (padding)
    must select nothing."""
    if use_cuda_op(scores, resident, slots, hits):
        return torch.ops.shadowkv.select_chunks(scores.contiguous(), resident, slots, layer, hits)
    return select_and_plan_torch(scores, resident, slots, layer, hits)


def select_and_plan_torch(scores, resident, slots, layer, hits):
    batch, heads, width = scores.shape
    k = resident.shape[-1]
    selected = select_top_chunks(scores.reshape(batch * heads, width), k)
    new_resident, fetch, row_hits = plan_chunk_reuse_torch(
        resident[slots, layer].view(batch * heads, k), selected)
    resident[slots, layer] = new_resident.view(batch, heads, k)
    hits.index_add_(0, slots, row_hits.view(batch, heads).sum(1, dtype=torch.long))
    return fetch.view(batch, heads, k)
