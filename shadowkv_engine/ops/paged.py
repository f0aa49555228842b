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
    store_pages: torch.Tensor  # CPU value-store pages, by token position
    row_offset: torch.Tensor  # [B] first slot row

