"""The compressed store of one sequence (ShadowKV), its sizes, and what its decode step reads.

Token positions [0, n_chunks*C) are compressed; positions from n_chunks*C on (the tail: the local
window and recent generated tokens) stay exact in `tail` (PagedTokens). Compressed tokens keep
  - a rank-r coefficient row per token (`u_pages`): pre-RoPE keys of all KV heads of a layer
    ~ coeffs @ basis, with the basis the top right singular vectors of the prompt's keys;
  - a landmark per chunk and KV head (`lm_pages`): by default the mean of the chunk's post-RoPE
    keys, or their per-channel bounds (landmarks.py);
  - their values, in the value store (`value_pages`): pinned host memory, or the store's GPU
    tier where it has room (value_pool.py).
Outlier chunks (lowest key/landmark cosine) are copied exact into `exact_pages`, followed by K
slots for the chunks selected at each decode step. A slot keeps its chunk while the chunk stays
selected (a hit); misses get their keys rebuilt and their values fetched.

Generated tokens: each new token's coefficient row is written when it arrives (its pre-RoPE key
projected on the prompt's basis). Once the tail holds local_chunks+1 chunks, its oldest chunk is
folded into the compressed store (landmark computed, values offloaded), so the tail stays
bounded and there is no cap on generated tokens. The batched decode step is in `sparse_decode.py`,
compression and folding in `compression.py`.
"""
import numpy as np

from ..config import ShadowKVConfig
from .page_list import PageList
from .page_pool import PagePool
from .paged_tokens import PagedTokens
from .storage import KVStorage, head_block_ids
from .value_pool import TieredValuePool


def chunk_counts(num_tokens: int, cfg: ShadowKVConfig) -> tuple[int, int]:
    """(compressed chunks, outlier chunks) for a prompt of num_tokens."""
    n_chunks = max(0, (num_tokens - cfg.local_tokens) // cfg.chunk_size)
    return n_chunks, min(cfg.outlier_chunks, n_chunks)


def selected_chunks(n_chunks: int, n_out: int, cfg: ShadowKVConfig) -> int:
    """Chunks a decode step selects per KV head. While it is below the budget every candidate is
    selected, so the slots the plan fills are always a prefix (hits stay, misses take the lowest
    free slots); the attention's page lists rely on that."""
    return min(cfg.budget_chunks, n_chunks - n_out)


class ShadowKV:
    def __init__(self, storage: KVStorage, gpu_pool: PagePool, value_pool: TieredValuePool,
                 cfg: ShadowKVConfig, tail: PagedTokens, num_tokens: int):
        """Allocates the pages that compressing the first num_tokens positions of `tail` needs."""
        self.storage, self.gpu_pool, self.value_pool = storage, gpu_pool, value_pool
        self.cfg = cfg
        self.tail = tail
        layout = storage.layout
        self.block_size = layout.block_size
        self.rows_per_page = layout.head_rows_per_page
        self.landmarks_per_page = self.rows_per_page // cfg.landmark_rows
        self.u_per_page = layout.u_tokens_per_page(cfg.rank)
        self.n_chunks, self.n_out = chunk_counts(num_tokens, cfg)
        device = storage.device
        self.u_pages = PageList(device)  # coefficient rows, by token position
        self.lm_pages = PageList(device)  # landmarks, by chunk id
        self.basis_pages = PageList(device)  # basis rows [H, rank, D]
        self.exact_pages = PageList(device)  # outlier rows, then the selected-chunk slots
        self.value_pages = PageList(device)  # value-store pages, by token position
        self.chunks_selected = 0
        gpu, cpu = self.pages_to_compress(num_tokens, cfg, layout)
        self.u_pages.extend(gpu_pool.allocate(gpu["u"]))
        self.lm_pages.extend(gpu_pool.allocate(gpu["lm"]))
        self.basis_pages.extend(gpu_pool.allocate(gpu["basis"]))
        self.exact_pages.extend(gpu_pool.allocate(gpu["exact"]))
        self.host_value_pages = 0  # of value_pages, those in the host tier (read over PCIe)
        self._add_value_pages(cpu)
        c = cfg.chunk_size
        rows = np.arange(self.n_out + cfg.budget_chunks) * c
        # Block ids (head 0) of the exact rows, chunk by chunk: outliers, then the slots.
        self.exact_blocks = head_block_ids(self.exact_pages.array[rows // self.block_size],
                                           rows % self.block_size, layout, c)

    # ---- sizes -----------------------------------------------------------------------------
    @staticmethod
    def pages_to_compress(num_tokens: int, cfg: ShadowKVConfig, layout) -> tuple[dict, int]:
        """GPU pages by kind and CPU pages that compressing a prompt of num_tokens allocates."""
        n_chunks, n_out = chunk_counts(num_tokens, cfg)
        bs, rows = layout.block_size, layout.head_rows_per_page
        gpu = {"u": _ceil(num_tokens, layout.u_tokens_per_page(cfg.rank)),
               "lm": _ceil(n_chunks, rows // cfg.landmark_rows), "basis": _ceil(cfg.rank, rows),
               "exact": _ceil((n_out + cfg.budget_chunks) * cfg.chunk_size, bs)}
        return gpu, _ceil(n_chunks * cfg.chunk_size, bs)

    @property
    def num_tokens(self) -> int:
        return self.tail.num_tokens

    @property
    def tail_start(self) -> int:
        return self.n_chunks * self.cfg.chunk_size

    @property
    def row_offset(self) -> int:
        """First exact row of the selected-chunk slots (the outliers' rows come first)."""
        return self.n_out * self.cfg.chunk_size

    @property
    def num_selected(self) -> int:
        return selected_chunks(self.n_chunks, self.n_out, self.cfg)

    def folds_after(self, num_new: int) -> bool:
        tail_len = self.num_tokens + num_new - self.tail_start
        return tail_len >= self.cfg.local_tokens + self.cfg.chunk_size

    def growth(self, num_new: int) -> tuple[int, int, int]:
        """(coefficient pages, landmark pages, CPU pages) the next num_new tokens (and a fold
        they trigger) add; the tail's own pages are counted by `tail.pages_needed`."""
        u = max(0, _ceil(self.num_tokens + num_new, self.u_per_page) - len(self.u_pages))
        lm = cpu = 0
        if self.folds_after(num_new):
            lm = int(self.n_chunks // self.landmarks_per_page >= len(self.lm_pages))
            cpu = int(self.tail_start // self.block_size >= len(self.value_pages))
        return u, lm, cpu

    def grow(self, u: int, lm: int, cpu: int) -> None:
        self.u_pages.extend(self.gpu_pool.allocate(u))
        self.lm_pages.extend(self.gpu_pool.allocate(lm))
        self._add_value_pages(cpu)

    def _add_value_pages(self, count: int) -> None:
        pages = self.value_pool.allocate(count)
        self.host_value_pages += self.value_pool.on_host(pages)
        self.value_pages.extend(pages)

    def u_slot(self, position: int) -> tuple[int, int]:
        """(page, row) of the coefficient row of a token position."""
        return int(self.u_pages.array[position // self.u_per_page]), position % self.u_per_page

    # ---- bookkeeping -----------------------------------------------------------------------
    def memory(self) -> dict[str, int]:
        """Bytes this sequence holds, by component (GPU pages, and value pages by tier)."""
        layout, dtype = self.storage.layout, self.storage.dtype
        gpu_page, cpu_page = layout.gpu_page_bytes(dtype), layout.cpu_page_bytes(dtype)
        host_values = self.host_value_pages
        return {
            "gpu_lowrank_bytes": len(self.u_pages) * gpu_page,
            "gpu_landmark_bytes": len(self.lm_pages) * gpu_page,
            "gpu_basis_bytes": len(self.basis_pages) * gpu_page,
            "gpu_exact_bytes": len(self.exact_pages) * gpu_page,
            "gpu_tail_bytes": (len(self.tail.pages) - self.tail.first_page) * gpu_page,
            "cpu_value_bytes": host_values * cpu_page,
            "gpu_value_bytes": (len(self.value_pages) - host_values) * cpu_page,
        }

    def free(self) -> None:
        """Returns the compressed store's pages (the tail is freed by its owner)."""
        for pages in (self.u_pages, self.lm_pages, self.basis_pages, self.exact_pages):
            self.gpu_pool.free(pages.clear())
        self.value_pool.free(self.value_pages.clear())
        self.host_value_pages = 0


def _ceil(a: int, b: int) -> int:
    return -(-a // b)
