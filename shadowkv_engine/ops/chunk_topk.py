"""Top-k chunk selection per (sequence, KV head) row of landmark scores."""
import torch


def select_top_chunks(scores: torch.Tensor, k: int) -> torch.Tensor:
    """scores: float32 [R, N], -inf for chunks that may not be selected. Returns int32 [R, k]:
    the ids of the (up to) k best chunks of each row in any order, padded with -1 where a row
    has fewer than k selectable chunks. One batched `torch.topk` (unsorted) for all rows."""
    rows, width = scores.shape
    take = min(k, width)
    values, ids = scores.topk(take, dim=-1, sorted=False)
    selected = torch.where(values == float("-inf"), -1, ids.int())
    if take < k:
        selected = torch.cat([selected, selected.new_full((rows, k - take), -1)], dim=1)
    return selected
