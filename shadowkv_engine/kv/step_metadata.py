"""Everything one engine step's attention reads, built once per step for the whole batch.

One loop over the scheduled sequences on the host fills pinned staging buffers (token ids,
positions, where each new K/V row goes, the page lists attention reads, the ShadowKV tables),
then one asynchronous copy per buffer moves them to persistent device buffers. Decode rows come
first (one token each, padded to the captured batch size when the step replays a CUDA graph),
then the prefill chunks.

Decode attention is addressed in one of two ways:
  - dense mode: one request per sequence over its token pages (`PageLayout.block_size` rows);
  - ShadowKV mode: one request per (sequence, KV head) over blocks of `chunk_size` rows of that
    head (`KVStorage.head_block_views`): the outlier chunks, the selected-chunk slots in use (a
    prefix, see `shadowkv.selected_chunks`) and the exact tail, or, for a sequence still dense,
    all its tokens. Padded rows attend to one row of the null page.
"""
import functools
from dataclasses import dataclass

import numpy as np
import torch

from ..config import EngineConfig, ShadowKVConfig
from .sequence_kv import SequenceKV
from .shadowkv import ShadowKV
from .staging import Staged, ceil_div, csr
from .storage import NULL_PAGE, KVStorage, head_block_ids
from ..ops.paged import PagedTables


@dataclass
class PagedRequests:
    """Paged attention requests in CSR form (flashinfer's layout): request r reads pages
    indices[indptr[r]:indptr[r+1]], the last one holding last_page_len[r] rows."""
    indptr: np.ndarray  # host int32 [R + 1]
    indices: torch.Tensor  # device int32 [nnz]
    indices_host: np.ndarray
    last_page_len: np.ndarray  # host int32 [R]
    page_size: int
    per_head: bool  # one request per (sequence, KV head) over head blocks, else per sequence
    qo_indptr: np.ndarray | None = None  # prefill: token offsets of each request's queries

    @property
    def num_requests(self) -> int:
        return len(self.last_page_len)

    def requests(self, start: int, stop: int) -> "PagedRequests":
        """Requests start..stop-1 alone (views of the same buffers); decode requests only."""
        lo, hi = int(self.indptr[start]), int(self.indptr[stop])
        return PagedRequests(self.indptr[start:stop + 1] - self.indptr[start],
                             self.indices[lo:hi], self.indices_host[lo:hi],
                             self.last_page_len[start:stop], self.page_size, self.per_head)


@dataclass
class SparseTables:
    """The ShadowKV decode rows' tables (device), rows aligned with the decode rows."""
    slots: torch.Tensor  # int64 [B] batch slot of each row (SparseDecodeState rows)
    n_chunks: torch.Tensor  # int32 [B]
    u_page: torch.Tensor  # int64 [B] where the new token's coefficient row goes
    u_row: torch.Tensor
    lm_pages: torch.Tensor  # int32 [B, cols]
    tables: PagedTables
    max_chunks: int  # width of the landmark scores (a bucket when the step is captured)

    def rows(self, start: int, stop: int) -> "SparseTables":
        t = self.tables
        return SparseTables(
            self.slots[start:stop], self.n_chunks[start:stop], self.u_page[start:stop],
            self.u_row[start:stop], self.lm_pages[start:stop],
            PagedTables(t.u_pages[start:stop], t.basis_pages[start:stop],
                        t.slot_pages[start:stop], t.store_pages[start:stop],
                        t.row_offset[start:stop]),
            self.max_chunks)


@dataclass
class StepMetadata:
    num_decode: int  # decode rows, padded ones included
    num_tokens: int
    input_ids: torch.Tensor  # int64 [T]
    positions: torch.Tensor
    kv_page: torch.Tensor  # int64 [T]: where each token's new K/V row goes
    kv_row: torch.Tensor
    decode: PagedRequests | None
    prefill: PagedRequests | None
    sparse: SparseTables | None
    # Two-batch overlap: decode rows [0, split_at) and [split_at, num_decode) run as two
    # micro-batches (engine/two_batch.py); None: one batch.
    split_at: int | None = None

    @functools.cached_property
    def micro_batches(self) -> list["StepMetadata"]:
        """The two micro-batches of a split step (built once: the plan and the forward read
        them)."""
        return [self.decode_rows(0, self.split_at), self.decode_rows(self.split_at,
                                                                      self.num_decode)]

    def decode_rows(self, start: int, stop: int) -> "StepMetadata":
        """The metadata of decode rows start..stop-1 alone, as views of this step's buffers (a
        decode-only step)."""
        if self.prefill is not None:
            raise ValueError("only a decode-only step splits into micro-batches")
        per_request = self.decode.num_requests // self.num_decode
        return StepMetadata(
            num_decode=stop - start, num_tokens=stop - start,
            input_ids=self.input_ids[start:stop], positions=self.positions[start:stop],
            kv_page=self.kv_page[start:stop], kv_row=self.kv_row[start:stop],
            decode=self.decode.requests(start * per_request, stop * per_request), prefill=None,
            sparse=self.sparse.rows(start, stop) if self.sparse is not None else None)


@dataclass
class DecodeRow:
    kv: SequenceKV
    token_id: int
    position: int


@dataclass
class PrefillRow:
    kv: SequenceKV
    token_ids: list[int]
    start: int


class StepMetadataBuilder:
    def __init__(self, config: EngineConfig, storage: KVStorage, max_model_len: int,
                 max_decode_rows: int):
        self.storage = storage
        layout = storage.layout
        self.layout = layout
        self.block_size = layout.block_size
        self.heads = layout.num_kv_heads
        self.shadowkv: ShadowKVConfig | None = (config.shadowkv if config.attention == "shadowkv"
                                                else None)
        device = storage.device
        max_tokens = max(config.max_num_batched_tokens, max_decode_rows)
        max_pages = ceil_div(max_model_len, self.block_size) + 1
        self.token_ids = Staged((max_tokens,), torch.long, device)
        self.positions = Staged((max_tokens,), torch.long, device)
        self.kv_page = Staged((max_tokens,), torch.long, device)
        self.kv_row = Staged((max_tokens,), torch.long, device)
        self.prefill_indices = Staged((config.max_num_seqs * max_pages,), torch.int32, device)
        # Decode page lists: at most max_num_seqs real rows with pages; the padding rows of a
        # captured step (up to max_decode_rows in all) read one null page (block per head) each.
        real, padding = config.max_num_seqs, max_decode_rows
        cfg = self.shadowkv
        if cfg is None:
            self.decode_indices = Staged((real * max_pages + padding,), torch.int32, device)
            return
        self.chunk = cfg.chunk_size
        self.heads_per_page = self.block_size // self.chunk  # head blocks per head and page
        max_blocks = ceil_div(max_model_len, self.chunk) + 1
        self.decode_indices = Staged((self.heads * (real * max_blocks + padding),), torch.int32,
                                     device)
        self.null_blocks = (head_block_ids(np.array([NULL_PAGE]), 0, layout, self.chunk)
                            + np.arange(self.heads) * self.heads_per_page)
        rows = max_decode_rows
        self.slots = Staged((rows,), torch.long, device)
        self.n_chunks = Staged((rows,), torch.int32, device)
        self.u_page = Staged((rows,), torch.long, device)
        self.u_row = Staged((rows,), torch.long, device)
        self.row_offset = Staged((rows,), torch.int32, device)
        rows_per_page = layout.head_rows_per_page
        widths = {
            "u": ceil_div(max_model_len, layout.u_tokens_per_page(cfg.rank)),
            "basis": ceil_div(cfg.rank, rows_per_page),
            "exact": ceil_div((cfg.outlier_chunks + cfg.budget_chunks) * self.chunk,
                              self.block_size),
            "values": ceil_div(max_model_len, self.block_size),
            "lm": ceil_div(ceil_div(max_model_len, self.chunk),
                           rows_per_page // cfg.landmark_rows),
        }
        self.tables = {name: Staged((rows, width), torch.int32, device)
                       for name, width in widths.items()}
        self.max_chunks = ceil_div(max_model_len, self.chunk)

    # ---- the step ------------------------------------------------------------------------
    def build(self, decode: list[DecodeRow], prefill: list[PrefillRow], padded_rows: int,
              dummy_slot: int, chunk_bucket=None, placement: list[int] | None = None,
              split_at: int | None = None) -> StepMetadata:
        """padded_rows >= len(decode): decode rows of the step (a captured batch size).
        chunk_bucket(n) -> width of the landmark scores for a batch whose longest store has n
        chunks (None: exactly n). placement: the row of each decode row (default: 0, 1, ...;
        two micro-batches put their padding between them); rows it leaves out are padding.
        split_at: passed on to the metadata (two-batch overlap)."""
        num_tokens = padded_rows + sum(len(r.token_ids) for r in prefill)
        decode = self._place(decode, padded_rows, placement)
        self._tokens(decode, prefill)
        meta = StepMetadata(
            num_decode=padded_rows, num_tokens=num_tokens,
            input_ids=self.token_ids.upload(num_tokens), positions=self.positions.upload(num_tokens),
            kv_page=self.kv_page.upload(num_tokens), kv_row=self.kv_row.upload(num_tokens),
            decode=None, prefill=None, sparse=None, split_at=split_at)
        if padded_rows:
            if self.shadowkv is None:
                meta.decode = self._dense_decode(decode)
            else:
                meta.decode = self._head_decode(decode)
                meta.sparse = self._sparse_tables(decode, dummy_slot, chunk_bucket)
        if prefill:
            meta.prefill = self._prefill(prefill)
        return meta

    @staticmethod
    def _place(decode: list[DecodeRow], padded_rows: int,
               placement: list[int] | None) -> list[DecodeRow | None]:
        """The step's decode rows in row order, None where a row is padding."""
        rows: list[DecodeRow | None] = [None] * padded_rows
        for row, at in zip(decode, placement if placement is not None else range(len(decode))):
            rows[at] = row
        return rows

    def _tokens(self, decode: list[DecodeRow | None], prefill) -> None:
        ids, pos = self.token_ids.host, self.positions.host
        pages, rows = self.kv_page.host, self.kv_row.host
        for i, row in enumerate(decode):
            if row is None:  # padding: writes its K/V into the null page
                ids[i], pos[i], pages[i], rows[i] = 0, 0, NULL_PAGE, 0
                continue
            ids[i], pos[i] = row.token_id, row.position
            pages[i], rows[i] = row.kv.tokens.slot(row.position)
        at = len(decode)
        for row in prefill:
            n = len(row.token_ids)
            ids[at:at + n] = row.token_ids
            pos[at:at + n] = np.arange(row.start, row.start + n)
            pages[at:at + n], rows[at:at + n] = row.kv.tokens.slots(row.start, n)
            at += n

    def _dense_decode(self, decode: list[DecodeRow | None]) -> PagedRequests:
        null = np.array([NULL_PAGE], dtype=np.int32)
        lists = [null if row is None else
                 row.kv.tokens.pages.array[:row.position // self.block_size + 1]
                 for row in decode]
        last = np.array([1 if row is None else row.position % self.block_size + 1
                         for row in decode], dtype=np.int32)
        return self._requests(self.decode_indices, lists, last, self.block_size, per_head=False)

    def _head_decode(self, decode: list[DecodeRow | None]) -> PagedRequests:
        """One request per (row, KV head) over head blocks of chunk_size rows."""
        c, heads = self.chunk, self.heads
        head_offsets = np.arange(heads) * self.heads_per_page
        lists, last = [], []
        for row in decode:
            if row is None:
                lists.extend(self.null_blocks[:, None])  # one block per head
                last.extend([1] * heads)
                continue
            end = row.position + 1  # the new token is written before attention
            shadow = row.kv.shadow
            start = shadow.tail_start if shadow is not None else 0
            starts = np.arange(start, end, c)
            blocks = head_block_ids(row.kv.tokens.pages.array[starts // self.block_size],
                                    starts % self.block_size, self.layout, c)
            if shadow is not None:
                exact = shadow.exact_blocks[:shadow.n_out + shadow.num_selected]
                blocks = np.concatenate([exact, blocks])
            per_head = head_offsets[:, None] + blocks[None, :]
            lists.extend(per_head)
            last.extend([end - starts[-1]] * heads)
        return self._requests(self.decode_indices, lists, np.array(last, dtype=np.int32), c,
                              per_head=True)

    def _prefill(self, prefill: list[PrefillRow]) -> PagedRequests:
        lists, last, lengths = [], [], []
        for row in prefill:
            end = row.start + len(row.token_ids)
            lists.append(row.kv.tokens.pages.array[:(end - 1) // self.block_size + 1])
            last.append((end - 1) % self.block_size + 1)
            lengths.append(len(row.token_ids))
        requests = self._requests(self.prefill_indices, lists, np.array(last, dtype=np.int32),
                                  self.block_size, per_head=False)
        requests.qo_indptr = csr(np.array(lengths))
        return requests

    @staticmethod
    def _requests(staged: Staged, lists, last, page_size, per_head) -> PagedRequests:
        indptr = csr(np.array([len(pages) for pages in lists]))
        nnz = int(indptr[-1])
        if nnz > len(staged.host):
            raise RuntimeError(f"step metadata: {nnz} pages exceed the staging buffer "
                               f"({len(staged.host)})")
        if lists:
            np.concatenate(lists, out=staged.host[:nnz], casting="unsafe")
        return PagedRequests(indptr, staged.upload(nnz), staged.host[:nnz], last, page_size,
                             per_head)

    def _sparse_tables(self, decode: list[DecodeRow | None], dummy_slot: int,
                       chunk_bucket) -> SparseTables:
        slots, n_chunks = self.slots.host, self.n_chunks.host
        u_page, u_row, row_offset = self.u_page.host, self.u_row.host, self.row_offset.host
        tables = {name: staged.host for name, staged in self.tables.items()}
        longest = 0
        for i, row in enumerate(decode):
            if row is None:  # padding: the dummy batch slot, selecting nothing
                slots[i], n_chunks[i], u_page[i], u_row[i], row_offset[i] = (
                    dummy_slot, 0, NULL_PAGE, 0, 0)
                for table in tables.values():
                    table[i] = NULL_PAGE
                continue
            shadow: ShadowKV | None = row.kv.shadow
            slots[i] = row.kv.slot
            if shadow is None:
                n_chunks[i], u_page[i], u_row[i], row_offset[i] = 0, NULL_PAGE, 0, 0
                for table in tables.values():
                    table[i] = NULL_PAGE
                continue
            n_chunks[i], row_offset[i] = shadow.n_chunks, shadow.row_offset
            u_page[i], u_row[i] = shadow.u_slot(row.position)
            longest = max(longest, shadow.n_chunks)
            for name, pages in (("u", shadow.u_pages), ("basis", shadow.basis_pages),
                                ("exact", shadow.exact_pages), ("values", shadow.value_pages),
                                ("lm", shadow.lm_pages)):
                tables[name][i, :len(pages)] = pages.array
        padded_rows = len(decode)
        up = {name: staged.upload(padded_rows) for name, staged in self.tables.items()}
        width = chunk_bucket(longest) if chunk_bucket else max(longest, 1)
        return SparseTables(
            slots=self.slots.upload(padded_rows), n_chunks=self.n_chunks.upload(padded_rows),
            u_page=self.u_page.upload(padded_rows), u_row=self.u_row.upload(padded_rows),
            lm_pages=up["lm"],
            tables=PagedTables(u_pages=up["u"], basis_pages=up["basis"], slot_pages=up["exact"],
                               store_pages=up["values"],
                               row_offset=self.row_offset.upload(padded_rows)),
            max_chunks=min(width, self.max_chunks))
