"""Random paged-storage inputs for the ShadowKV ops, laid out like kv/storage.py.

Every page id is drawn from one shuffled arena, so the ops must follow the page tables; the slot
pages (the ops' destination) are poisoned with NaN so that a row an op should write but does not,
or writes but should not, shows up when the arena is compared with the twin's.
"""
from dataclasses import dataclass

import pytest
import torch

from shadowkv_engine.kv.storage import PageLayout
from shadowkv_engine.ops.chunk_plan import plan_chunk_reuse_torch
from shadowkv_engine.ops.extension import cuda_ops_available
from shadowkv_engine.ops.paged import PagedTables

def needs_cuda_ops(test):
    """Marks a test that compares the compiled ops with their twins: it needs a GPU and a build."""
    marks = [
        pytest.mark.gpu,
        pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
        pytest.mark.skipif(torch.cuda.is_available() and not cuda_ops_available(),
                           reason="CUDA extension shadowkv_engine._C is not built "
                                  "(pip install --no-build-isolation -e .)"),
    ]
    for mark in marks:
        test = mark(test)
    return test


@dataclass
class PagedCase:
    layout: PageLayout
    arena: torch.Tensor  # [Pg, page_elems]: u rows, basis rows and (poisoned) slot pages
    store: torch.Tensor  # [Pc, L, H, bs, D] CPU value store
    tables: PagedTables
    fetch: torch.Tensor  # int32 [B, H, K] from a realistic plan (hits are -1)
    inv_freq: torch.Tensor
    layer: int
    chunk_size: int
    rank: int
    num_chunks: int  # chunk ids the tables cover: a fetch must stay below it

    @property
    def kv(self):
        return self.layout.kv_view(self.arena)

    @property
    def head_rows(self):
        return self.layout.head_rows_view(self.arena)

    @property
    def u_rows(self):
        return self.layout.u_rows_view(self.arena, self.rank)


def random_plan_inputs(rows: int, k: int, num_chunks: int, overlap: float, gen: torch.Generator):
    """resident/selected int32 [rows, k]: distinct ids, -1 holes at random places, and about
    `overlap` of the selected ids resident from the previous step."""
    resident = torch.empty(rows, k, dtype=torch.int32)
    selected = torch.empty(rows, k, dtype=torch.int32)
    for r in range(rows):
        ids = torch.randperm(num_chunks, generator=gen)[: 2 * k].int()
        keep = int(overlap * k)
        resident[r] = ids[:k]
        chosen = torch.cat([ids[:keep], ids[k: 2 * k - keep]])
        selected[r] = chosen[torch.randperm(k, generator=gen)]
    resident[torch.rand(rows, k, generator=gen) < 0.1] = -1
    selected[torch.rand(rows, k, generator=gen) < 0.1] = -1
    return resident, selected


def make_case(batch: int, heads: int, head_dim: int, chunk_size: int, budget: int, rank: int,
              dtype: torch.dtype, device: str, seed: int, block_size: int = 16, layers: int = 2,
              overlap: float = 0.6, pin: bool = False) -> PagedCase:
    gen = torch.Generator().manual_seed(seed)
    layout = PageLayout(layers, heads, head_dim, block_size)
    k = budget // chunk_size
    tokens = 2 * budget + 3 * chunk_size  # room for 2k chunks, not page-aligned
    row_offset = torch.randint(0, 3 * chunk_size, (batch,), generator=gen)  # may be unaligned

    u_per_seq = -(-tokens // layout.u_tokens_per_page(rank))
    basis_per_seq = -(-rank // layout.head_rows_per_page)
    slot_per_seq = -(-(int(row_offset.max()) + budget) // block_size)
    gpu_ids = torch.randperm(batch * (u_per_seq + basis_per_seq + slot_per_seq), generator=gen)
    u_pages, basis_pages, slot_pages = gpu_ids.int().view(batch, -1).split(
        [u_per_seq, basis_per_seq, slot_per_seq], dim=1)
    store_per_seq = -(-tokens // block_size)
    store_pages = torch.randperm(batch * store_per_seq, generator=gen).int().view(batch, -1)

    arena = torch.randn(len(gpu_ids), layout.page_elems, generator=gen, dtype=dtype)
    arena[slot_pages.flatten().long()] = float("nan")
    store = torch.randn(batch * store_per_seq, layers, heads, block_size, head_dim,
                        generator=gen, dtype=dtype)
    if pin:
        store = store.pin_memory()

    num_chunks = tokens // chunk_size
    resident, selected = random_plan_inputs(batch * heads, k, num_chunks, overlap, gen)
    fetch = plan_chunk_reuse_torch(resident, selected)[1].view(batch, heads, k)
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, head_dim, 2).float() / head_dim))

    def dev(t):
        return t.contiguous().to(device)

    tables = PagedTables(u_pages=dev(u_pages), basis_pages=dev(basis_pages),
                         slot_pages=dev(slot_pages), store_pages=dev(store_pages),
                         row_offset=dev(row_offset.int()))
    return PagedCase(layout, arena.to(device), store, tables, dev(fetch), dev(inv_freq),
                     layer=layers - 1, chunk_size=chunk_size, rank=rank, num_chunks=num_chunks)


# Shapes the GPU tests sweep: (batch, GQA ratio, KV heads, chunk, head_dim, budget, rank).
# The ops run per KV head, so the GQA ratio (query heads = ratio x KV heads) shows up as the
# KV head count of models with 8-32 query heads. Ranks include the full key dim and one whose
# coefficient rows are not 16-byte aligned in 16-bit dtypes (100).
GRID = [
    (1, 1, 8, 8, 128, 256, 160),
    (2, 2, 4, 16, 64, 512, 256),
    (3, 3, 8, 8, 64, 1024, 100),
    (4, 4, 2, 16, 128, 2048, 256),
    (32, 8, 1, 8, 128, 2048, 128),
    (32, 1, 8, 16, 64, 256, 512),
    (8, 6, 4, 8, 128, 4096, 160),
    (4, 8, 1, 16, 128, 8192, 96),
    (2, 1, 8, 8, 128, 8192, 1024),
    (16, 5, 2, 8, 64, 1024, 128),
]
GRID_IDS = [f"b{b}-gqa{g}-h{h}-c{c}-d{d}-budget{n}-r{r}" for b, g, h, c, d, n, r in GRID]
