"""Landmark scoring: how much each chunk matters to the current query, per KV head."""
import math

import torch


def score_chunks(q: torch.Tensor, landmarks: torch.Tensor, excluded: torch.Tensor) -> torch.Tensor:
    """q: [Hq, D] (post-RoPE); landmarks: [H, N, D] chunk means of post-RoPE keys; excluded:
    [H, X] chunk ids to leave out (the outliers, attended exactly anyway).

    Returns [H, N] float32: per query head a softmax over the chunks, then the maximum over the
    query heads of each GQA group (the ShadowKV paper's rule), excluded chunks at -inf.
    """
    heads, num_chunks, dim = landmarks.shape
    group = q.shape[0] // heads
    logits = torch.einsum("hgd,hnd->hgn", q.view(heads, group, dim).float(), landmarks.float())
    logits = logits / math.sqrt(dim)
    if excluded.numel():
        logits.scatter_(2, excluded[:, None, :].expand(heads, group, -1), float("-inf"))
    return torch.softmax(logits, dim=-1).amax(dim=1)
