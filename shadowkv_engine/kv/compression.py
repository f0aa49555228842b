"""The post-step phase of ShadowKV: compress prompts that were just prefilled, fold aged chunks.

Both run batched over the sequences concerned and queue their work on the current stream; values
go to the value store through `ops.offload_values` (the GPU writes pinned host memory, or the
store's device tier, directly), so the host waits for nothing but the eigendecomposition's own
result check.
"""
import numpy as np
import torch

from .. import ops
from ..model.rope import RotaryEmbedding, undo_rope
from .landmarks import chunk_landmarks, landmark_table
from .sequence_kv import SequenceKV
from .shadowkv import ShadowKV
from .sparse_state import SparseDecodeState
from .storage import KVStorage, to_device


def compress(caches: list[SequenceKV], rotary: RotaryEmbedding,
             state: SparseDecodeState) -> None:
    """Builds each cache's compressed store (allocated when its last prefill step was planned)
    from the exact prompt K/V, layer by layer, one eigendecomposition per layer for all."""
    if not caches:
        return
    storage = caches[0].storage
    longest = max(kv.num_tokens for kv in caches)
    cos, sin = rotary.cos_sin(torch.arange(longest, device=storage.device), torch.float32)
    for kv in caches:
        state.reset(kv.slot)
    for layer in range(storage.layout.num_layers):
        factors = []
        for kv in caches:
            store, n = kv.pending, kv.num_tokens
            keys, values = kv.tokens.read(layer, 0, n)  # [H, S, D] post-RoPE
            k_pre = undo_rope(keys.float().transpose(0, 1), cos[:n], sin[:n]).flatten(1)
            factors.append(k_pre)
            compressed = store.tail_start
            _store_chunks(store, layer, keys[:, :compressed], values[:, :compressed])
            _keep_outliers(store, state, kv.slot, layer, keys[:, :compressed],
                           values[:, :compressed])
        grams = torch.stack([k_pre.T @ k_pre for k_pre in factors])
        vectors = torch.linalg.eigh(grams).eigenvectors  # ascending eigenvalues
        for kv, k_pre, vecs in zip(caches, factors, vectors):
            _write_basis(kv.pending, layer, k_pre, vecs)
    for kv in caches:
        kv.shadow, kv.pending = kv.pending, None
        kv.tokens.release_below(kv.shadow.tail_start)


def fold(caches: list[SequenceKV]) -> None:
    """Moves the oldest tail chunk of each cache into its compressed store: the chunk's landmark
    (all layers at once) and its values (to the CPU store); then frees the tail pages below."""
    if not caches:
        return
    storage: KVStorage = caches[0].storage
    store0 = caches[0].shadow
    c, bs, per_page = store0.cfg.chunk_size, storage.layout.block_size, store0.landmarks_per_page
    src_pages, src_rows, dst_pages, lm_pages, lm_rows = [], [], [], [], []
    for kv in caches:
        shadow = kv.shadow
        positions = np.arange(shadow.tail_start, shadow.tail_start + c)
        pages, rows = kv.tokens.slots(shadow.tail_start, c)
        src_pages.append(pages)
        src_rows.append(rows)
        dst_pages.append(shadow.value_pages.array[positions // bs])
        lm_pages.append(shadow.lm_pages.array[shadow.n_chunks // per_page])
        lm_rows.append(shadow.n_chunks % per_page)
    index = to_device(np.concatenate([np.concatenate(src_pages), np.concatenate(src_rows),
                                      np.concatenate(dst_pages), np.array(lm_pages),
                                      np.array(lm_rows)]).astype(np.int64), storage.device)
    n = len(caches)
    src_page, src_row, dst_page, lm_page, lm_row = index.split([n * c, n * c, n * c, n, n])
    keys = storage.kv[src_page, :, 0, :, src_row]  # [n*C, L, H, D]
    values = storage.kv[src_page, :, 1, :, src_row]
    rows = store0.cfg.landmark_rows
    landmarks = chunk_landmarks(keys.view(n, c, *keys.shape[1:]).movedim(1, -2), rows)
    landmark_table(storage.head_rows, rows)[lm_page, :, :, lm_row] = landmarks.to(storage.dtype)
    # Tail pages and value pages both hold position p at row p % block_size.
    for layer in range(storage.layout.num_layers):
        ops.offload_values(storage.values, values[:, layer], dst_page, src_row, layer,
                           storage.device_values)
    for kv in caches:
        kv.shadow.n_chunks += 1
        kv.tokens.release_below(kv.shadow.tail_start)


def _write_basis(store: ShadowKV, layer: int, k_pre: torch.Tensor, vectors: torch.Tensor):
    """k_pre: [S, H*D] pre-RoPE keys; vectors: [H*D, H*D] eigenvectors of their Gram matrix."""
    rank = store.cfg.rank
    top = vectors[:, -rank:].flip(-1)  # [H*D, r], largest first
    coeffs = k_pre @ top
    positions = torch.arange(coeffs.shape[0], device=coeffs.device)
    pages = store.u_pages.tensor()[positions // store.u_per_page]
    store.storage.u_rows[pages, layer, positions % store.u_per_page] = coeffs.to(
        store.storage.dtype)
    heads = store.storage.layout.num_kv_heads
    basis = top.T.reshape(rank, heads, -1).transpose(0, 1)  # [H, r, D]
    _write_head_rows(store.storage.head_rows, store.basis_pages.tensor(), store.rows_per_page,
                     layer, basis)


def _write_head_rows(table: torch.Tensor, pages: torch.Tensor, per_page: int, layer: int,
                     rows: torch.Tensor) -> None:
    """rows: [H, n, W] written at rows 0..n-1 of a per-head table [pages, L, H, per_page, W]
    (head_rows, or its landmark view), row i at page pages[i // per_page]."""
    index = torch.arange(rows.shape[1], device=rows.device)
    table[pages[index // per_page], layer, :, index % per_page] = rows.transpose(0, 1).to(
        table.dtype)


def _store_chunks(store: ShadowKV, layer: int, keys: torch.Tensor, values: torch.Tensor) -> None:
    """Landmarks and offloaded values of the prompt's chunks; keys/values [H, n*C, D]."""
    c, heads, dim = store.cfg.chunk_size, keys.shape[0], keys.shape[2]
    rows = store.cfg.landmark_rows
    landmarks = chunk_landmarks(keys.reshape(heads, -1, c, dim), rows)  # [H, n, rows*D]
    _write_head_rows(landmark_table(store.storage.head_rows, rows), store.lm_pages.tensor(),
                     store.landmarks_per_page, layer, landmarks)
    positions = torch.arange(values.shape[1], device=keys.device)
    pages = store.value_pages.tensor()[positions // store.block_size]
    ops.offload_values(store.storage.values, values.transpose(0, 1), pages,
                       positions % store.block_size, layer, store.storage.device_values)


def outlier_chunk_ids(keys: torch.Tensor, chunk_size: int, count: int) -> torch.Tensor:
    """keys: [H, n*C, D] post-RoPE keys of the compressed chunks -> [H, count] sorted ids of the
    chunks whose keys are least like their mean (the lowest key/mean cosine of any key)."""
    heads, dim = keys.shape[0], keys.shape[2]
    chunks = keys.float().view(heads, -1, chunk_size, dim)
    cosine = torch.nn.functional.cosine_similarity(chunks, chunks.mean(2, keepdim=True), dim=-1)
    return cosine.amin(dim=-1).topk(count, dim=-1, largest=False).indices.sort().values


def _keep_outliers(store: ShadowKV, state: SparseDecodeState, slot: int, layer: int,
                   keys: torch.Tensor, values: torch.Tensor) -> None:
    """Copies the chunks least like their mean key (lowest cosine) into the exact rows (per KV
    head)."""
    if store.n_out == 0:
        return
    c, dim = store.cfg.chunk_size, keys.shape[2]
    ids = outlier_chunk_ids(keys, c, store.n_out)
    state.outliers[slot, layer, :, :store.n_out] = ids.int()
    rows = (ids[:, :, None] * c + torch.arange(c, device=ids.device)).flatten(1)  # [H, n*C]
    exact_k = keys.gather(1, rows[:, :, None].expand(-1, -1, dim))
    exact_v = values.gather(1, rows[:, :, None].expand(-1, -1, dim))
    index = torch.arange(exact_k.shape[1], device=keys.device)
    pages = store.exact_pages.tensor()[index // store.block_size]
    offsets = index % store.block_size
    store.storage.kv[pages, layer, 0, :, offsets] = exact_k.transpose(0, 1)
    store.storage.kv[pages, layer, 1, :, offsets] = exact_v.transpose(0, 1)
