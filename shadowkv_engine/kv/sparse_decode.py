"""The ShadowKV part of one decode step for one layer, batched over every decode row.

New coefficient rows, landmark scoring, selection with the hit/miss plan, value fetch and key
rebuild are one op each over all rows (dense or padded rows select nothing: their chunk count is
0). After it, the rows' selected-chunk slots hold exact keys and values, and attention reads them
through the per-(sequence, KV head) page lists of the step metadata.
"""
import torch

from .. import ops
from ..config import ShadowKVConfig
from .landmarks import landmark_queries, landmark_table
from .sparse_state import SparseDecodeState
from .step_metadata import SparseTables
from .storage import KVStorage


def select_and_fetch(layer: int, q: torch.Tensor, k_pre: torch.Tensor, meta: SparseTables,
                     storage: KVStorage, state: SparseDecodeState, inv_freq: torch.Tensor,
                     cfg: ShadowKVConfig, outliers: torch.Tensor, fetch_turns=None,
                     fetch_blocks: int = 0) -> None:
    """q: [B, Hq, D] post-RoPE queries, k_pre: [B, H, D] pre-RoPE keys of the decode rows;
    outliers: [B, L, H, X] the rows' outlier chunk ids (`step_outliers`, read once a step).
    fetch_turns (take()/release() around the value fetch) and fetch_blocks (its grid cap): for
    a micro-batch whose fetch runs beside another's compute (engine/two_batch.py)."""
    tables = meta.tables
    ops.project_coefficients(k_pre, storage.head_rows, tables.basis_pages, layer, cfg.rank,
                             storage.u_rows, meta.u_page, meta.u_row)
    rows = cfg.landmark_rows
    scores = ops.score_chunks_paged(landmark_queries(q, rows),
                                    landmark_table(storage.head_rows, rows), meta.lm_pages,
                                    meta.n_chunks, outliers[:, layer], layer, meta.max_chunks)
    fetch = ops.select_and_plan(scores, state.resident, meta.slots, layer, state.hits)
    # The fetch first: with two micro-batches, the key rebuild after it overlaps the other's fetch.
    if fetch_turns is not None:
        fetch_turns.take()
    ops.gather_values(storage.values, storage.kv, tables, fetch, layer, cfg.chunk_size,
                      storage.device_values, state.host_fetches, meta.slots, fetch_blocks)
    if fetch_turns is not None:
        fetch_turns.release()
    ops.rebuild_keys(storage.u_rows, storage.head_rows, storage.kv, tables, fetch, inv_freq,
                     layer, cfg.chunk_size, cfg.rank)


def step_outliers(meta: SparseTables, state: SparseDecodeState) -> torch.Tensor:
    """[B, L, H, X]: the decode rows' outlier chunk ids, every layer's in one gather a step (they
    are fixed when a prompt is compressed)."""
    return state.outliers[meta.slots]
