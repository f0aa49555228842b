"""The ShadowKV part of one decode step for one layer, batched over every decode row.

New coefficient rows, landmark scoring, top-k, the hit/miss plan, key rebuild and value fetch are
one op each over all rows (dense or padded rows select nothing: their chunk count is 0). After
it, the rows' selected-chunk slots hold exact keys and values, and attention reads them through
the per-(sequence, KV head) page lists of the step metadata.
"""
import torch

from .. import ops
from ..config import ShadowKVConfig
from .sparse_state import SparseDecodeState
from .step_metadata import SparseTables
from .storage import KVStorage


def select_and_fetch(layer: int, q: torch.Tensor, k_pre: torch.Tensor, meta: SparseTables,
                     storage: KVStorage, state: SparseDecodeState, inv_freq: torch.Tensor,
                     cfg: ShadowKVConfig, fetch_turns=None, fetch_blocks: int = 0) -> None:
    """q: [B, Hq, D] post-RoPE queries, k_pre: [B, H, D] pre-RoPE keys of the decode rows.
    fetch_turns (take()/release() around the value fetch) and fetch_blocks (its grid cap): for
    a micro-batch whose fetch runs beside another's compute (engine/two_batch.py)."""
    rows, heads = q.shape[0], k_pre.shape[1]
    k = cfg.budget_chunks
    tables = meta.tables
    basis = ops.gather_head_rows(storage.head_rows, tables.basis_pages, layer, cfg.rank)
    # In the storage dtype: the GEMM accumulates in float32 and the row is stored in it anyway.
    storage.u_rows[meta.u_page, layer, meta.u_row] = torch.einsum("bhd,bhrd->br", k_pre, basis)

    scores = ops.score_chunks_paged(q, storage.head_rows, meta.lm_pages, meta.n_chunks,
                                    state.outliers[meta.slots, layer], layer, meta.max_chunks)
    selected = ops.select_top_chunks(scores.view(rows * heads, -1), k)
    resident, fetch, hits = ops.plan_chunk_reuse(
        state.resident[meta.slots, layer].view(rows * heads, k), selected)
    state.resident[meta.slots, layer] = resident.view(rows, heads, k)
    fetch = fetch.view(rows, heads, k)
    # The fetch first: with two micro-batches, the key rebuild after it overlaps the other's fetch.
    if fetch_turns is not None:
        fetch_turns.take()
    ops.gather_values(storage.values, storage.kv, tables, fetch, layer, cfg.chunk_size,
                      storage.device_values, state.host_fetches, meta.slots, fetch_blocks)
    if fetch_turns is not None:
        fetch_turns.release()
    ops.rebuild_keys(storage.u_rows, storage.head_rows, storage.kv, tables, fetch, inv_freq,
                     layer, cfg.chunk_size, cfg.rank)
    state.hits.index_add_(0, meta.slots, hits.view(rows, heads).sum(1, dtype=torch.long))
