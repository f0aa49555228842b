"""The KV storage: one GPU page arena shared by every kind of per-sequence data, and a pinned
CPU store of offloaded values.

A GPU page holds `block_size` tokens of dense K and V for every layer. The same page can instead
hold other data of the same byte size, through typed views:
  kv         [pages, L, 2, H, block_size, D]   dense K/V rows (head-major: a head's rows of a
                                                page are contiguous, so a chunk is C*D elements)
  head_rows  [pages, L, H, 2*block_size, D]    per-head rows: ShadowKV landmarks (by chunk id)
                                                and the key basis (rank rows per head)
  u_rows     [pages, L, tokens_per_page, rank] low-rank key coefficients, by token position
So the block manager counts one kind of page and nothing is carved up ahead of time. Page 0 is
the null page: never handed out, zeroed at start, it is where padded batch rows of a captured
decode step read and write, so that their garbage stays finite and touches nobody's data.
The value store is [pages, L, H, block_size, D] in two tiers of that layout (value_pool.py):
`values`, pinned host memory when the model runs on CUDA so the GPU can read it directly, and
`device_values`, device memory set aside from the arena's budget (empty unless planned).
"""
from dataclasses import dataclass

import numpy as np
import torch

from .pinned import pinned_empty

NULL_PAGE = 0


@dataclass(frozen=True)
class PageLayout:
    num_layers: int
    num_kv_heads: int
    head_dim: int
    block_size: int

    @property
    def page_elems(self) -> int:
        return self.num_layers * 2 * self.num_kv_heads * self.block_size * self.head_dim

    @property
    def head_rows_per_page(self) -> int:
        return 2 * self.block_size

    def u_tokens_per_page(self, rank: int) -> int:
        return self.page_elems // (self.num_layers * rank)

    def kv_view(self, arena: torch.Tensor) -> torch.Tensor:
        return arena.view(-1, self.num_layers, 2, self.num_kv_heads, self.block_size,
                          self.head_dim)

    def head_rows_view(self, arena: torch.Tensor) -> torch.Tensor:
        return arena.view(-1, self.num_layers, self.num_kv_heads, self.head_rows_per_page,
                          self.head_dim)

    def u_rows_view(self, arena: torch.Tensor, rank: int) -> torch.Tensor:
        tokens = self.u_tokens_per_page(rank)
        return arena[:, : self.num_layers * tokens * rank].view(-1, self.num_layers, tokens, rank)

    def gpu_page_bytes(self, dtype: torch.dtype) -> int:
        return self.page_elems * dtype.itemsize

    def cpu_page_bytes(self, dtype: torch.dtype) -> int:
        return self.page_elems // 2 * dtype.itemsize


class KVStorage:
    """Owns the GPU arena and the value store's two tiers; views are made once."""

    def __init__(self, layout: PageLayout, num_gpu_pages: int, num_cpu_pages: int,
                 dtype: torch.dtype, device: torch.device, rank: int | None,
                 num_device_value_pages: int = 0):
        self.layout = layout
        self.dtype = dtype
        self.device = device
        # Zeroed once (a single memset): the padded-batch attention paths multiply masked rows
        # by zero weights, and a NaN left in never-written memory would still poison the sum.
        self.arena = torch.zeros(num_gpu_pages + 1, layout.page_elems, dtype=dtype, device=device)
        self.kv = layout.kv_view(self.arena)
        self.head_rows = layout.head_rows_view(self.arena)
        self.u_rows = layout.u_rows_view(self.arena, rank) if rank else None
        shape = (num_cpu_pages, layout.num_layers, layout.num_kv_heads, layout.block_size,
                 layout.head_dim)
        # Pinned on CUDA (the GPU reads and writes it directly), at its exact size (pinned.py).
        self.values = (pinned_empty(shape, dtype) if device.type == "cuda"
                       else torch.empty(shape, dtype=dtype))
        self.device_values = torch.empty((num_device_value_pages,) + shape[1:], dtype=dtype,
                                         device=device)

    def head_block_views(self, layer: int, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        """K and V of one layer as [N, 1, rows, D] blocks: `rows` consecutive token rows of one KV
        head (rows divides block_size). Block x = page * units_per_page + head * (bs // rows) + j
        is rows j*rows.. of that head in that page, the same x in both views; this is how the
        per-(sequence, KV head) decode attention addresses outlier, slot and tail rows."""
        layout = self.layout
        per_head = layout.block_size // rows
        per_layer = 2 * layout.num_kv_heads * per_head
        per_page = layout.num_layers * per_layer
        blocks = self.arena.view(-1, rows, layout.head_dim)
        count = blocks.shape[0] - per_page + layout.num_kv_heads * per_head
        k_start = layer * per_layer
        v_start = k_start + layout.num_kv_heads * per_head
        return (blocks[k_start:k_start + count].unsqueeze(1),
                blocks[v_start:v_start + count].unsqueeze(1))


def head_block_ids(pages: np.ndarray, first_row: np.ndarray | int, layout: PageLayout,
                   rows: int) -> np.ndarray:
    """Block ids (see `KVStorage.head_block_views`) of KV head 0 for blocks starting at token rows
    `first_row` of pages `pages`; add head * (block_size // rows) for head h."""
    per_head = layout.block_size // rows
    per_page = layout.num_layers * 2 * layout.num_kv_heads * per_head
    return pages.astype(np.int64) * per_page + np.asarray(first_row) // rows


def to_device(values: np.ndarray, device: torch.device) -> torch.Tensor:
    """A small host array on `device`; on CUDA through pinned memory, asynchronously (a plain
    pageable copy would make the host wait for the GPU)."""
    tensor = torch.from_numpy(np.ascontiguousarray(values))
    if device.type != "cuda":
        return tensor.clone()
    return tensor.pin_memory().to(device, non_blocking=True)

