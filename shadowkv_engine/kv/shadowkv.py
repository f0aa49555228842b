"""ShadowKV attention for one sequence: the compressed store and sparse decode.

Token positions [0, n_chunks*C) are compressed; positions from n_chunks*C on (the tail: the
local window and recent generated tokens) stay exact in `tail`. Compressed tokens keep
  - a rank-r coefficient row per token (`u_pages`): pre-RoPE keys of all KV heads of a layer
    ~ coeffs @ basis, with the basis the top right singular vectors of the prompt's keys;
  - a landmark per chunk and KV head (`lm_pages`): the mean of the chunk's post-RoPE keys;
  - their values, in the CPU value store (`cpu_pages`).
Outlier chunks (lowest key/landmark cosine) are copied exact into `exact_pages`, followed by K
slots for the chunks selected at each decode step. A slot keeps its chunk while the chunk stays
selected (a hit); misses get their keys rebuilt and their values fetched.

Generated tokens: each new token's coefficient row is written when it arrives (its pre-RoPE key
projected on the prompt's basis). Once the tail holds local_chunks+1 chunks, its oldest chunk is
folded into the compressed store (landmark computed, values offloaded), so the tail stays
bounded and there is no cap on generated tokens.
"""
import torch

from .. import ops
from ..config import ShadowKVConfig
from ..model.rope import RotaryEmbedding, undo_rope
from .attention import attend
from .dense import PagedTokens
from .page_list import PageList
from .page_pool import PagePool
from .storage import KVStorage, index_tensor


def chunk_counts(num_tokens: int, cfg: ShadowKVConfig) -> tuple[int, int]:
    """(compressed chunks, outlier chunks) for a prompt of num_tokens."""
    n_chunks = max(0, (num_tokens - cfg.local_tokens) // cfg.chunk_size)
    return n_chunks, min(cfg.outlier_chunks, n_chunks)


class ShadowKV:
    def __init__(self, storage: KVStorage, gpu_pool: PagePool, cpu_pool: PagePool,
                 cfg: ShadowKVConfig, rotary: RotaryEmbedding, tail: PagedTokens):
        self.storage, self.gpu_pool, self.cpu_pool = storage, gpu_pool, cpu_pool
        self.cfg = cfg
        self.rotary = rotary
        self.tail = tail
        layout = storage.layout
        self.block_size = layout.block_size
        self.rows_per_page = layout.head_rows_per_page
        self.u_per_page = layout.u_tokens_per_page(cfg.rank)
        self.n_chunks, self.n_out = chunk_counts(tail.num_tokens, cfg)
        device = storage.device
        self.u_pages = PageList(device)  # coefficient rows, by token position
        self.lm_pages = PageList(device)  # landmarks, by chunk id
        self.basis_pages = PageList(device)  # basis rows [H, rank, D]
        self.exact_pages = PageList(device)  # outlier rows, then the selected-chunk slots
        self.cpu_pages = PageList(storage.values.device)  # offloaded values, by token position
        self._tables = None
        self._lm_table = None
        shape = (layout.num_layers, layout.num_kv_heads)
        self.resident = torch.full(shape + (cfg.budget_chunks,), -1, dtype=torch.int32,
                                   device=device)
        self.outlier_ids = torch.zeros(shape + (self.n_out,), dtype=torch.long, device=device)
        # Hits and bytes stay on the device so the decode step needs no host sync to count.
        self.device_counters = torch.zeros(2, dtype=torch.long, device=device)  # hits, bytes
        self.chunks_selected = 0

    # ---- sizes -----------------------------------------------------------------------------
    @staticmethod
    def pages_to_compress(num_tokens: int, cfg: ShadowKVConfig, layout) -> tuple[int, int]:
        """GPU and CPU pages that compressing a prompt of num_tokens allocates."""
        n_chunks, n_out = chunk_counts(num_tokens, cfg)
        bs, rows = layout.block_size, layout.head_rows_per_page
        gpu = (_ceil(num_tokens, layout.u_tokens_per_page(cfg.rank)) + _ceil(n_chunks, rows)
               + _ceil(cfg.rank, rows) + _ceil((n_out + cfg.budget_chunks) * cfg.chunk_size, bs))
        return gpu, _ceil(n_chunks * cfg.chunk_size, bs)

    @property
    def num_tokens(self) -> int:
        return self.tail.num_tokens

    def _folds_after(self, num_new: int) -> bool:
        tail_len = self.num_tokens + num_new - self.n_chunks * self.cfg.chunk_size
        return tail_len >= self.cfg.local_tokens + self.cfg.chunk_size

    def _growth(self, num_new: int) -> list[tuple[PageList, PagePool]]:
        """The pages the next num_new tokens (and a fold they trigger) will add, one a list."""
        grow = []
        if _ceil(self.num_tokens + num_new, self.u_per_page) > len(self.u_pages):
            grow.append((self.u_pages, self.gpu_pool))
        if self._folds_after(num_new):
            if self.n_chunks // self.rows_per_page >= len(self.lm_pages):
                grow.append((self.lm_pages, self.gpu_pool))
            if self.n_chunks * self.cfg.chunk_size // self.block_size >= len(self.cpu_pages):
                grow.append((self.cpu_pages, self.cpu_pool))
        return grow

    def pages_needed(self, num_new: int) -> tuple[int, int]:
        grow = self._growth(num_new)
        gpu = self.tail.pages_needed(num_new) + sum(pool is self.gpu_pool for _, pool in grow)
        return gpu, sum(pool is self.cpu_pool for _, pool in grow)

    def reserve(self, num_new: int) -> None:
        """Allocates what `pages_needed` counted; a compressed sequence adds one token a step."""
        self.tail.reserve(num_new)
        for pages, pool in self._growth(num_new):
            self._grow(pages, pool)

    def _grow(self, pages: PageList, pool: PagePool, count: int = 1) -> None:
        pages.extend(pool.allocate(count))
        self._tables = None
        self._lm_table = None

    def tables(self) -> ops.PagedTables:
        """The page tables the ops take (a batch of one), rebuilt only when pages are added."""
        if self._tables is None:
            device = self.storage.device

            def table(pages: PageList):
                return pages.tensor().to(device, torch.int32)[None]

            self._tables = ops.PagedTables(
                u_pages=table(self.u_pages), basis_pages=table(self.basis_pages),
                slot_pages=table(self.exact_pages), store_pages=table(self.cpu_pages),
                row_offset=index_tensor([self.n_out * self.cfg.chunk_size], device).int())
        return self._tables

    def landmark_table(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(landmark pages int32 [1, cols], chunk count int32 [1]) as ops.score_chunks_paged
        takes them; rebuilt when pages are added or a chunk is folded in."""
        if self._lm_table is None:
            device = self.storage.device
            self._lm_table = (self.lm_pages.tensor().to(device, torch.int32)[None],
                              index_tensor([self.n_chunks], device).int())
        return self._lm_table

    def counters(self) -> tuple[int, int, int]:
        """(chunks selected, hits, value bytes fetched) so far; reads the device."""
        hits, fetched = self.device_counters.tolist()
        return self.chunks_selected, hits, fetched

    # ---- compression (end of prefill) ------------------------------------------------------
    def compress(self) -> None:
        """Builds the compressed store from the exact prompt K/V held in `tail`."""
        cfg, layout = self.cfg, self.storage.layout
        c, num_tokens = cfg.chunk_size, self.num_tokens
        compressed = self.n_chunks * c
        self._grow(self.u_pages, self.gpu_pool, _ceil(num_tokens, self.u_per_page))
        self._grow(self.lm_pages, self.gpu_pool, _ceil(self.n_chunks, self.rows_per_page))
        self._grow(self.basis_pages, self.gpu_pool, _ceil(cfg.rank, self.rows_per_page))
        exact_rows = (self.n_out + cfg.budget_chunks) * c
        self._grow(self.exact_pages, self.gpu_pool, _ceil(exact_rows, self.block_size))
        self.storage.arena[self.exact_pages.tensor()] = 0  # empty slots are masked, but must be finite
        self._grow(self.cpu_pages, self.cpu_pool, _ceil(compressed, self.block_size))
        positions = torch.arange(num_tokens, device=self.storage.device)
        cos, sin = self.rotary.cos_sin(positions, torch.float32)
        for layer in range(layout.num_layers):
            keys, values = self.tail.read(layer, 0, num_tokens)  # [H, S, D] post-RoPE
            k_pre = undo_rope(keys.float().transpose(0, 1), cos, sin)  # [S, H, D]
            self._factorize(layer, k_pre)
            self._store_chunks(layer, keys[:, :compressed], values[:, :compressed], 0)
            self._keep_outliers(layer, keys[:, :compressed], values[:, :compressed])
        self.tail.release_below(compressed)

    def _factorize(self, layer: int, k_pre: torch.Tensor) -> None:
        """Rank-r basis of the pre-RoPE keys [S, H, D] (all heads side by side), via the Gram
        matrix's eigenvectors (an [H*D, H*D] problem instead of an SVD of [S, H*D])."""
        tokens, heads, dim = k_pre.shape
        flat = k_pre.reshape(tokens, heads * dim)
        _, vectors = torch.linalg.eigh(flat.T @ flat)
        top = vectors[:, -self.cfg.rank:].flip(-1)  # [H*D, r], largest first
        self._write_coefficients(layer, 0, flat @ top)
        basis = top.T.reshape(self.cfg.rank, heads, dim).transpose(0, 1)  # [H, r, D]
        self._write_head_rows(self.basis_pages, layer, 0, basis)

    def _write_coefficients(self, layer: int, start: int, coeffs: torch.Tensor) -> None:
        positions = torch.arange(start, start + coeffs.shape[0], device=coeffs.device)
        pages = self.u_pages.tensor()[positions // self.u_per_page]
        self.storage.u_rows[pages, layer, positions % self.u_per_page] = coeffs.to(
            self.storage.dtype)

    def _write_head_rows(self, page_list: PageList, layer: int, start: int,
                         rows: torch.Tensor) -> None:
        """rows: [H, n, D] written at per-head rows start..start+n-1 of the given pages."""
        index = torch.arange(start, start + rows.shape[1], device=rows.device)
        pages = page_list.tensor()[index // self.rows_per_page]
        view = self.storage.head_rows
        view[pages, layer, :, index % self.rows_per_page] = rows.transpose(0, 1).to(view.dtype)

    def _read_head_rows(self, page_list: PageList, layer: int, count: int) -> torch.Tensor:
        return ops.gather_head_rows(self.storage.head_rows, page_list.tensor()[None], layer,
                                    count)[0]

    def _store_chunks(self, layer: int, keys: torch.Tensor, values: torch.Tensor,
                      first_chunk: int) -> None:
        """Landmarks and offloaded values of whole chunks; keys/values [H, n*C, D]."""
        c, heads, dim = self.cfg.chunk_size, keys.shape[0], keys.shape[2]
        landmarks = keys.float().view(heads, -1, c, dim).mean(dim=2)
        self._write_head_rows(self.lm_pages, layer, first_chunk, landmarks)
        start = first_chunk * c
        positions = torch.arange(start, start + values.shape[1], device=self.cpu_pages.device)
        pages = self.cpu_pages.tensor()[positions // self.block_size]
        self.storage.values[pages, layer, :, positions % self.block_size] = (
            values.transpose(0, 1).to("cpu", self.storage.dtype))

    def _keep_outliers(self, layer: int, keys: torch.Tensor, values: torch.Tensor) -> None:
        if self.n_out == 0:
            return
        c, heads, dim = self.cfg.chunk_size, keys.shape[0], keys.shape[2]
        chunks = keys.float().view(heads, -1, c, dim)
        cosine = torch.nn.functional.cosine_similarity(chunks, chunks.mean(2, keepdim=True), dim=-1)
        ids = cosine.amin(dim=-1).topk(self.n_out, dim=-1, largest=False).indices.sort().values
        self.outlier_ids[layer] = ids
        rows = (ids[:, :, None] * c + torch.arange(c, device=ids.device)).flatten(1)  # [H, n*C]
        exact_k = keys.gather(1, rows[:, :, None].expand(-1, -1, dim))
        exact_v = values.gather(1, rows[:, :, None].expand(-1, -1, dim))
        self._write_exact_rows(layer, 0, exact_k, exact_v)

    def _write_exact_rows(self, layer, start, k, v):
        index = torch.arange(start, start + k.shape[1], device=k.device)
        pages = self.exact_pages.tensor()[index // self.block_size]
        offsets = index % self.block_size
        self.storage.kv[pages, layer, 0, :, offsets] = k.transpose(0, 1)
        self.storage.kv[pages, layer, 1, :, offsets] = v.transpose(0, 1)

    # ---- decode ----------------------------------------------------------------------------
    def attend(self, layer, q, k_pre, k, v):
        if q.shape[0] != 1:
            raise RuntimeError("a compressed sequence decodes one token per step")
        cfg, storage = self.cfg, self.storage
        position = self.num_tokens
        basis = self._read_head_rows(self.basis_pages, layer, cfg.rank)  # [H, r, D]
        coeffs = torch.einsum("hd,hrd->r", k_pre[0].float(), basis.float())
        self._write_coefficients(layer, position, coeffs[None])
        self.tail.write(layer, k, v, position)

        lm_pages, n_chunks = self.landmark_table()
        scores = ops.score_chunks_paged(q, storage.head_rows, lm_pages, n_chunks,
                                        self.outlier_ids[layer][None], layer, self.n_chunks)[0]
        take = min(cfg.budget_chunks, self.n_chunks - self.n_out)
        selected = torch.full_like(self.resident[layer], -1)
        selected[:, :take] = scores.topk(take, dim=-1).indices.int()
        resident, fetch, hits = ops.plan_chunk_reuse(self.resident[layer], selected)
        self.resident[layer] = resident
        tables = self.tables()
        ops.rebuild_keys(storage.u_rows, storage.head_rows, storage.kv, tables, fetch[None],
                         self.rotary.inv_freq, layer, cfg.chunk_size, cfg.rank)
        ops.gather_values(storage.values, storage.kv, tables, fetch[None], layer, cfg.chunk_size)
        self.chunks_selected += take * resident.shape[0]
        chunk_bytes = cfg.chunk_size * k.shape[-1] * storage.dtype.itemsize
        self.device_counters += torch.stack([hits.sum().long(),
                                             (fetch >= 0).sum() * chunk_bytes])

        exact_k, exact_v = self._read_exact_rows(layer)
        tail_k, tail_v = self.tail.read(layer, self.n_chunks * cfg.chunk_size, position + 1)
        slot_valid = (resident >= 0).repeat_interleave(cfg.chunk_size, dim=1)  # [H, K*C]
        heads = slot_valid.shape[0]
        outlier_valid = slot_valid.new_ones(heads, self.n_out * cfg.chunk_size)
        tail_valid = slot_valid.new_ones(heads, tail_k.shape[1])
        mask = torch.cat([outlier_valid, slot_valid, tail_valid], dim=1)[:, None, :]
        return attend(q, torch.cat([exact_k, tail_k], 1), torch.cat([exact_v, tail_v], 1), mask)

    def _read_exact_rows(self, layer: int):
        rows = (self.n_out + self.cfg.budget_chunks) * self.cfg.chunk_size
        kv = self.storage.kv[self.exact_pages.tensor(), layer]  # [n, 2, H, bs, D]
        n, _, heads, bs, dim = kv.shape
        kv = kv.permute(1, 2, 0, 3, 4).reshape(2, heads, n * bs, dim)[:, :, :rows]
        return kv[0], kv[1]

    def end_step(self, num_new: int) -> None:
        folds = self._folds_after(num_new)
        self.tail.num_tokens += num_new
        if folds:
            self._fold_oldest_chunk()

    def _fold_oldest_chunk(self) -> None:
        c = self.cfg.chunk_size
        start = self.n_chunks * c
        for layer in range(self.storage.layout.num_layers):
            keys, values = self.tail.read(layer, start, start + c)
            self._store_chunks(layer, keys, values, self.n_chunks)
        self.n_chunks += 1
        self._lm_table = None
        self.tail.release_below(self.n_chunks * c)

    # ---- bookkeeping -----------------------------------------------------------------------
    def memory(self) -> dict[str, int]:
        """Bytes this sequence holds, by component (GPU pages and CPU pages)."""
        layout, dtype = self.storage.layout, self.storage.dtype
        gpu_page, cpu_page = layout.gpu_page_bytes(dtype), layout.cpu_page_bytes(dtype)
        return {
            "gpu_lowrank_bytes": len(self.u_pages) * gpu_page,
            "gpu_landmark_bytes": len(self.lm_pages) * gpu_page,
            "gpu_basis_bytes": len(self.basis_pages) * gpu_page,
            "gpu_exact_bytes": len(self.exact_pages) * gpu_page,
            "gpu_tail_bytes": len(self.tail.pages) * gpu_page,
            "cpu_value_bytes": len(self.cpu_pages) * cpu_page,
        }

    def free(self) -> None:
        for pages in (self.u_pages, self.lm_pages, self.basis_pages, self.exact_pages):
            self.gpu_pool.free(pages.clear())
        self.cpu_pool.free(self.cpu_pages.clear())
        self.tail.free()


def _ceil(a: int, b: int) -> int:
    return -(-a // b)
