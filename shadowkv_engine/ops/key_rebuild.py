"""Rebuilds the post-RoPE keys of newly selected chunks from the low-rank factors.

key(t, h) = RoPE(u_t @ B_h, position t), with u_t the token's rank-r coefficient row (shared by
all KV heads of a layer) and B_h [r, D] the head's slice of the basis. Float32 accumulation.
"""
import torch

from .extension import REBUILD_HEAD_DIMS, use_cuda_op
from .paged import PagedTables, gather_head_rows
from .value_gather import _lookup, slot_token_rows


def rebuild_keys(u_rows: torch.Tensor, basis: torch.Tensor, kv: torch.Tensor,
                 tables: PagedTables, fetch: torch.Tensor, inv_freq: torch.Tensor, layer: int,
                 chunk_size: int, rank: int) -> None:
    """u_rows: [Pg, L, tokens_per_page, rank] coefficient pages; basis: [Pg, L, H, rows, D] basis
    pages (rows of B per head); kv: [Pg, L, 2, H, bs, D]; fetch: int32 [B, H, K]; inv_freq:
    float32 [D/2]. Writes kv[..., 0, ...] rows row_offset + slot*C + i."""
    if use_cuda_op(kv, fetch) and kv.shape[-1] in REBUILD_HEAD_DIMS:
        torch.ops.shadowkv.rebuild_keys(u_rows, basis, kv, tables.u_pages, tables.basis_pages,
                                        tables.slot_pages, tables.row_offset, fetch, inv_freq,
                                        layer, chunk_size, rank)
        return
    rebuild_keys_torch(u_rows, basis, kv, tables, fetch, inv_freq, layer, chunk_size, rank)


def rebuild_keys_torch(u_rows, basis, kv, tables: PagedTables, fetch, inv_freq, layer, chunk_size,
                       rank):
    block_size = kv.shape[4]
    b, h, rows, tokens = slot_token_rows(fetch, tables.row_offset, chunk_size)
    u_page, u_off = _lookup(tables.u_pages, b, tokens, u_rows.shape[2])
    coeffs = u_rows[u_page, layer, u_off].float()  # [M, C, rank]
    heads_basis = gather_head_rows(basis, tables.basis_pages, layer, rank).float()[b[:, 0], h[:, 0]]
    keys = torch.einsum("mcr,mrd->mcd", coeffs, heads_basis)
    angles = tokens.float()[..., None] * inv_freq.float()
    cos, sin = torch.cat((angles, angles), -1).cos(), torch.cat((angles, angles), -1).sin()
    half = keys.shape[-1] // 2
    rotated = torch.cat((-keys[..., half:], keys[..., :half]), dim=-1)
    keys = keys * cos + rotated * sin
    dst_page, dst_off = _lookup(tables.slot_pages, b, rows, block_size)
    kv[dst_page, layer, 0, h, dst_off] = keys.to(kv.dtype)
