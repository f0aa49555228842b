"""Top-k chunk selection per (sequence, KV head) row of landmark scores."""
import torch


def select_top_chunks(scores: torch.Tensor, k: int) -> torch.Tensor:
    """scores: float32 [R, N], -inf (or NaN) for chunks that may not be selected. Returns int32
    [R, k]: the ids of the (up to) k best chunks of each row, padded with -1 where a row has
    fewer than k selectable chunks. Equal scores go to the lower chunk id (a stable sort), so the
    selection is fully determined; the fused CUDA op (chunk_selection.py) picks the same."""
    rows, width = scores.shape
    take = min(k, width)
    scores = torch.where(scores.isnan(), float("-inf"), scores)
    values, ids = torch.sort(scores, dim=-1, descending=True, stable=True)
    values, ids = values[:, :take], ids[:, :take]
    selected = torch.where(values == float("-inf"), -1, ids.int())
    if take < k:
        selected = torch.cat([selected, selected.new_full((rows, k - take), -1)], dim=1)
    return selected
