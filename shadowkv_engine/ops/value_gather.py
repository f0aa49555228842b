"""Fetches the values of newly selected chunks from the CPU value store into the GPU slots.

On CUDA the fast path reads pinned host memory directly from the kernel (zero-copy over PCIe),
many chunks per launch; only the slots the plan marks for fetching are touched.
"""
import torch

from .extension import use_cuda_op
from .paged import PagedTables


def gather_values(store: torch.Tensor, kv: torch.Tensor, tables: PagedTables, fetch: torch.Tensor,
                  layer: int, chunk_size: int) -> None:
    """store: [Pc, L, H, bs, D] value store (pinned host memory on CUDA); kv: [Pg, L, 2, H, bs, D]
    GPU pages; fetch: int32 [B, H, K] chunk id per slot or -1. Writes kv[..., 1, ...] rows
    row_offset + slot*C + i with the values of tokens chunk*C + i."""
    if use_cuda_op(kv, fetch) and store.is_pinned():
        torch.ops.shadowkv.gather_values(store, kv, tables.store_pages, tables.slot_pages,
                                         tables.row_offset, fetch, layer, chunk_size)
        return
    gather_values_torch(store, kv, tables, fetch, layer, chunk_size)


def slot_token_rows(fetch: torch.Tensor, row_offset: torch.Tensor, chunk_size: int):
    """For every fetched (b, h, slot, i): batch index, head, destination row and source token."""
    b, h, s = torch.nonzero(fetch >= 0, as_tuple=True)
    i = torch.arange(chunk_size, device=fetch.device)
    tokens = fetch[b, h, s].long()[:, None] * chunk_size + i
    rows = (row_offset.long()[b] + s * chunk_size)[:, None] + i
    return b[:, None].expand_as(rows), h[:, None].expand_as(rows), rows, tokens


def gather_values_torch(store, kv, tables: PagedTables, fetch, layer, chunk_size):
    block_size = kv.shape[4]
    b, h, rows, tokens = slot_token_rows(fetch, tables.row_offset, chunk_size)
    src_page, src_off = _lookup(tables.store_pages, b, tokens, block_size)
    dst_page, dst_off = _lookup(tables.slot_pages, b, rows, block_size)
    cpu = store.device
    values = store[src_page.to(cpu), layer, h.to(cpu), src_off.to(cpu)]
    kv[dst_page, layer, 1, h, dst_off] = values.to(kv.device, non_blocking=True)


def _lookup(table, b, rows, rows_per_page):
    pages = table.long()[b, rows // rows_per_page]
    return pages, rows % rows_per_page

