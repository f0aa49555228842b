"""Cache-aware planning of the selected-chunk slots (the hit/miss plan).

Each row (a sequence's KV head in one layer) owns K slots holding chunk ids from the previous
step (`resident`, -1 = empty). Given this step's `selected` chunk ids (distinct, padded with -1):
a resident chunk that is selected again stays in its slot (a hit: nothing moves, nothing is
fetched); the misses, in ascending chunk id, fill the freed slots in ascending slot order.
Unlike the reference ShadowKV planner, hits never move, so no in-place compaction is needed.
"""
import torch

from .extension import use_cuda_op

_PAD = torch.iinfo(torch.int32).max


def plan_chunk_reuse(resident: torch.Tensor, selected: torch.Tensor):
    """resident, selected: int32 [R, K]. Returns (new_resident [R, K], fetch [R, K], hits [R]):
    fetch holds the chunk id a slot must load this step, or -1."""
    if use_cuda_op(resident, selected):
        return torch.ops.shadowkv.plan_chunk_reuse(resident, selected)
    return plan_chunk_reuse_torch(resident, selected)


def plan_chunk_reuse_torch(resident: torch.Tensor, selected: torch.Tensor):
    rows, k = resident.shape
    sel_sorted = torch.sort(torch.where(selected >= 0, selected, _PAD), dim=1).values
    res_sorted = torch.sort(torch.where(resident >= 0, resident, _PAD), dim=1).values

    at = torch.searchsorted(sel_sorted, resident.clamp_min(0)).clamp_max(k - 1)
    keep = (resident >= 0) & (sel_sorted.gather(1, at) == resident)

    at = torch.searchsorted(res_sorted, sel_sorted).clamp_max(k - 1)
    is_miss = (sel_sorted != _PAD) & (res_sorted.gather(1, at) != sel_sorted)
    miss_rank = torch.cumsum(is_miss.int(), dim=1) - 1
    misses = torch.full((rows, k + 1), -1, dtype=resident.dtype, device=resident.device)
    misses.scatter_(1, torch.where(is_miss, miss_rank, k).long(), sel_sorted)
    num_misses = is_miss.sum(1, keepdim=True)

    free_rank = torch.cumsum((~keep).int(), dim=1) - 1
    takes_miss = ~keep & (free_rank < num_misses)
    incoming = misses.gather(1, free_rank.clamp(0, k - 1).long())
    new_resident = torch.where(keep, resident, torch.where(takes_miss, incoming, -1))
    fetch = torch.where(takes_miss, incoming, -1)
    return new_resident.to(torch.int32), fetch.to(torch.int32), keep.sum(1).to(torch.int32)
