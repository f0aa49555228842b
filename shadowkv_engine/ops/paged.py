"""Per-sequence page tables that the ShadowKV ops address storage through.

All storage is paged (see kv/storage.py). For a batch of B sequences, each table is an int32
tensor [B, max_pages] (rows padded with 0); `row_offset` [B] is the first exact row of the
selected-chunk slots in each sequence's exact-row pages (its outlier rows come first).
"""
from dataclasses import dataclass

import torch


@dataclass
class PagedTables:
    u_pages: torch.Tensor  # GPU pages of low-rank coefficient rows, by token position
    basis_pages: torch.Tensor  # GPU pages of the per-head basis rows [H, rank, D]
    slot_pages: torch.Tensor  # GPU pages of the exact rows (outliers, then selected slots)
    store_pages: torch.Tensor  # value-store pages (host tier, then device tier), by token
    row_offset: torch.Tensor  # [B] first slot row


def gather_head_rows(head_rows: torch.Tensor, pages: torch.Tensor, layer: int,
                     count: int) -> torch.Tensor:
    """[B, H, count, D]: the first `count` rows of each sequence's per-head rows (basis rows or
    landmarks), a copy. head_rows: [pages, L, H, rows, D]; pages: [B, cols], row n of sequence b
    at page pages[b, n // rows], row n % rows."""
    rows_per_page = head_rows.shape[3]
    n = -(-count // rows_per_page)
    per_seq = head_rows[pages[:, :n].long(), layer]  # [B, n, H, rows, D]
    b, _, h, _, d = per_seq.shape
    return per_seq.transpose(1, 2).reshape(b, h, n * rows_per_page, d)[:, :, :count]
