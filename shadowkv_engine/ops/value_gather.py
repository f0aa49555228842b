"""Fetches the values of newly selected chunks from the value store into the GPU slots.

The store has two tiers of the same layout (see kv/value_pool.py): pages below the host store's
page count lie in pinned host memory, the rest in `device_store` (GPU memory the KV arena did not
need). On CUDA the fast path reads both from one kernel, the host tier zero-copy over PCIe, many
chunks per launch; only the slots the plan marks for fetching are touched. With `host_chunks`
and `slots`, it also counts the chunks each sequence read from host memory (the PCIe traffic).
"""
import torch

from .extension import host_tier_readable, use_cuda_op
from .paged import PagedTables


def gather_values(store: torch.Tensor, kv: torch.Tensor, tables: PagedTables, fetch: torch.Tensor,
                  layer: int, chunk_size: int, device_store: torch.Tensor | None = None,
                  host_chunks: torch.Tensor | None = None,
                  slots: torch.Tensor | None = None, max_blocks: int = 0) -> None:
    """store: [Ph, L, H, bs, D] host tier (pinned on CUDA); device_store: [Pd, L, H, bs, D] or
    None, page Ph + i is its page i; kv: [Pg, L, 2, H, bs, D] GPU pages; fetch: int32 [B, H, K]
    chunk id per slot or -1. Writes kv[..., 1, ...] rows row_offset + slot*C + i with the values
    of tokens chunk*C + i. host_chunks: int64 counters, slots: int64 [B] (each row's counter):
    host_chunks[slots[b]] += chunks of row b whose first token lies in the host tier.
    max_blocks > 0 caps the CUDA kernel's grid, leaving SMs to kernels that run beside it (the
    twin ignores it)."""
    if use_cuda_op(kv, fetch) and host_tier_readable(store):
        torch.ops.shadowkv.gather_values(store, kv, tables.store_pages, tables.slot_pages,
                                         tables.row_offset, fetch, layer, chunk_size,
                                         device_store, host_chunks, slots, max_blocks)
        return
    gather_values_torch(store, kv, tables, fetch, layer, chunk_size, device_store, host_chunks,
                        slots)


def slot_token_rows(fetch: torch.Tensor, row_offset: torch.Tensor, chunk_size: int):
    """For every fetched (b, h, slot, i): batch index, head, destination row and source token."""
    b, h, s = torch.nonzero(fetch >= 0, as_tuple=True)
    i = torch.arange(chunk_size, device=fetch.device)
    tokens = fetch[b, h, s].long()[:, None] * chunk_size + i
    rows = (row_offset.long()[b] + s * chunk_size)[:, None] + i
    return b[:, None].expand_as(rows), h[:, None].expand_as(rows), rows, tokens


def gather_values_torch(store, kv, tables: PagedTables, fetch, layer, chunk_size,
                        device_store=None, host_chunks=None, slots=None):
    block_size = kv.shape[4]
    b, h, rows, tokens = slot_token_rows(fetch, tables.row_offset, chunk_size)
    src_page, src_off = _lookup(tables.store_pages, b, tokens, block_size)
    dst_page, dst_off = _lookup(tables.slot_pages, b, rows, block_size)
    host_pages = store.shape[0]
    on_host = src_page < host_pages
    values = torch.empty(rows.shape + kv.shape[-1:], dtype=kv.dtype, device=kv.device)
    cpu = store.device
    values[on_host] = store[src_page[on_host].to(cpu), layer, h[on_host].to(cpu),
                            src_off[on_host].to(cpu)].to(kv.device, non_blocking=True)
    if device_store is not None:
        on_device = ~on_host
        values[on_device] = device_store[src_page[on_device] - host_pages, layer, h[on_device],
                                         src_off[on_device]].to(kv.device)
    kv[dst_page, layer, 1, h, dst_off] = values
    if host_chunks is not None:
        host_chunks.index_add_(0, slots[b[:, 0]], on_host[:, 0].long())


def _lookup(table, b, rows, rows_per_page):
    pages = table.long()[b, rows // rows_per_page]
    return pages, rows % rows_per_page
