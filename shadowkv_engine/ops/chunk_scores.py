"""Landmark scoring: how much each chunk matters to the current query, per KV head."""
import math

import torch

from .extension import SCORE_HEAD_DIMS, use_cuda_op
from .paged import gather_head_rows

MAX_GQA_GROUP = 8  # query heads per KV head the CUDA op handles


def score_chunks(q: torch.Tensor, landmarks: torch.Tensor, excluded: torch.Tensor) -> torch.Tensor:
    """q: [Hq, D] (post-RoPE); landmarks: [H, N, D] chunk means of post-RoPE keys; excluded:
    [H, X] chunk ids to leave out (the outliers, attended exactly anyway).

    Returns [H, N] float32: per query head a softmax over the chunks, then the maximum over the
    query heads of each GQA group (the ShadowKV paper's rule), excluded chunks at -inf.
    """
    heads, num_chunks, dim = landmarks.shape
    group = q.shape[0] // heads
    logits = torch.einsum("hgd,hnd->hgn", q.view(heads, group, dim).float(), landmarks.float())
    return scores_from_logits(logits / math.sqrt(dim), excluded)


def scores_from_logits(logits: torch.Tensor, excluded: torch.Tensor) -> torch.Tensor:
    """[H, G, N] scaled chunk logits (overwritten) -> [H, N]: excluded chunks out, a softmax per
    query head, the maximum over the group, excluded chunks at -inf (not 0: where a sharp head's
    softmax underflows, a top-k must still never pick them)."""
    if excluded.numel():
        logits.scatter_(2, excluded[:, None, :].expand(-1, logits.shape[1], -1), float("-inf"))
    scores = torch.softmax(logits, dim=-1).amax(dim=1)
    return scores.masked_fill(logits[:, 0] == float("-inf"), float("-inf"))


def score_chunks_paged(q: torch.Tensor, head_rows: torch.Tensor, lm_pages: torch.Tensor,
                       n_chunks: torch.Tensor, excluded: torch.Tensor, layer: int,
                       max_chunks: int) -> torch.Tensor:
    """`score_chunks` for a batch of sequences, reading the landmarks where they live.

    q: [B, Hq, D] post-RoPE queries; head_rows: [pages, L, H, rows, D] (kv/storage.py), chunk n
    of sequence b at page lm_pages[b, n // rows], row n % rows; n_chunks: int32 [B], at most
    max_chunks; excluded: int32/int64 [B, H, X] chunk ids, those outside [0, n_chunks[b])
    ignored. Returns float32 [B, H, max_chunks]: -inf for excluded chunks and past each
    sequence's n_chunks, so that top-k never selects them.
    """
    heads, dim = head_rows.shape[2], head_rows.shape[4]
    if (use_cuda_op(q, head_rows, lm_pages, n_chunks, excluded) and dim in SCORE_HEAD_DIMS
            and q.shape[1] // heads <= MAX_GQA_GROUP):
        scores = torch.empty(q.shape[0], heads, max_chunks, dtype=torch.float32, device=q.device)
        torch.ops.shadowkv.score_chunks_paged(q, head_rows, lm_pages, n_chunks, excluded, layer,
                                              scores)
        return scores
    return score_chunks_paged_torch(q, head_rows, lm_pages, n_chunks, excluded, layer, max_chunks)


def score_chunks_paged_torch(q, head_rows, lm_pages, n_chunks, excluded, layer, max_chunks):
    landmarks = gather_head_rows(head_rows, lm_pages, layer, max_chunks)
    batch, heads, _, dim = landmarks.shape
    group = q.shape[1] // heads
    logits = torch.einsum("bhgd,bhnd->bhgn", q.reshape(batch, heads, group, dim).float(),
                          landmarks.float())
    logits = logits / math.sqrt(dim)
    counts = n_chunks.long()[:, None, None, None]
    past_end = torch.arange(max_chunks, device=logits.device) >= counts  # [B, 1, 1, N]
    logits = logits.masked_fill(past_end, float("-inf"))
    if excluded.numel():
        # Ids outside [0, n_chunks) go to a spare column that is dropped afterwards.
        ids = excluded.long()[:, :, None, :].expand(-1, -1, group, -1)
        ids = torch.where((ids >= 0) & (ids < counts), ids, max_chunks)
        logits = torch.cat([logits, logits.new_zeros(batch, heads, group, 1)], dim=-1)
        logits = logits.scatter(3, ids, float("-inf"))[..., :max_chunks]
    scores = torch.softmax(logits, dim=-1).amax(dim=2)
    # excluded chunks and those past the end: -inf (their logits are -inf for every query head)
    return scores.masked_fill(logits[:, :, 0] == float("-inf"), float("-inf"))
