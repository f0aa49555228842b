"""A chunk's landmark: what a decode step's selection scores in place of the chunk's keys.

Two kinds (ShadowKVConfig.landmark):
  - "mean" (the ShadowKV paper): the mean of the chunk's post-RoPE keys; a chunk scores q.mean.
  - "minmax" (Quest): per channel, the largest and smallest of the chunk's post-RoPE keys; a
    chunk scores sum_d max(q_d*max_d, q_d*min_d) = q+ . max + q- . min, an upper bound of q.k
    over the chunk's keys. A retrieval head that attends one token of a chunk (a needle's)
    sees that token's q.k through the bound, where the mean shares it with the chunk's other
    tokens; it costs twice the landmark memory and scoring reads.

A landmark takes `rows` consecutive head rows of head_dim values, so the landmark table is
head_rows viewed with rows of rows*head_dim values (row n: chunk n). The minmax score is then a
dot product of [q+, q-] with [max, min]: the same scoring op over twice the width
(ops/chunk_scores.py), with the query scaled by sqrt(2) so that the op's 1/sqrt(width) stays
the model's 1/sqrt(head_dim).
"""
import math

import torch


def chunk_landmarks(chunks: torch.Tensor, rows: int) -> torch.Tensor:
    """chunks: [..., C, D] post-RoPE keys, chunk by chunk -> [..., rows*D] float32 landmarks."""
    chunks = chunks.float()
    if rows == 1:
        return chunks.mean(dim=-2)
    return torch.cat([chunks.amax(dim=-2), chunks.amin(dim=-2)], dim=-1)


def landmark_queries(q: torch.Tensor, rows: int) -> torch.Tensor:
    """q: [..., D] post-RoPE queries -> [..., rows*D] in q's dtype, to score landmark rows."""
    if rows == 1:
        return q
    return torch.cat([q.clamp(min=0), q.clamp(max=0)], dim=-1) * math.sqrt(2)


def landmark_table(head_rows: torch.Tensor, rows: int) -> torch.Tensor:
    """head_rows [pages, L, H, R, D] as a landmark table [pages, L, H, R // rows, rows*D] (a
    view: a landmark's rows are consecutive)."""
    pages, layers, heads, per_page, dim = head_rows.shape
    return head_rows.view(pages, layers, heads, per_page // rows, rows * dim)
