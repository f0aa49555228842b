"""Value gather: the twin against the contract (CPU) and the CUDA op against the twin."""
import pytest
import torch

from shadowkv_engine.ops.value_gather import gather_values, gather_values_torch
from paged_case import GRID, GRID_IDS, make_case, needs_cuda_ops


def gather_by_hand(case, kv):
    t, c, bs = case.tables, case.chunk_size, case.layout.block_size
    for b, h, s in (case.fetch >= 0).nonzero().tolist():
        chunk = int(case.fetch[b, h, s])
        for i in range(c):
            token, row = chunk * c + i, int(t.row_offset[b]) + s * c + i
            src = case.store[t.store_pages[b, token // bs], case.layer, h, token % bs]
            kv[t.slot_pages[b, row // bs], case.layer, 1, h, row % bs] = src


def test_twin_writes_exactly_the_fetched_rows():
    case = make_case(batch=2, heads=2, head_dim=16, chunk_size=4, budget=32, rank=8,
                     dtype=torch.float32, device="cpu", seed=0)
    want = case.arena.clone()
    gather_by_hand(case, case.layout.kv_view(want))
    gather_values_torch(case.store, case.kv, case.tables, case.fetch, case.layer, case.chunk_size)
    torch.testing.assert_close(case.arena, want, rtol=0, atol=0, equal_nan=True)


@needs_cuda_ops
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("batch,gqa,heads,chunk,head_dim,budget,rank", GRID, ids=GRID_IDS)
def test_cuda_gather_equals_twin(batch, gqa, heads, chunk, head_dim, budget, rank, dtype):
    case = make_case(batch, heads, head_dim, chunk, budget, rank, dtype, "cuda",
                     seed=hash((batch, heads, budget)) % 1000, pin=True)
    want = case.arena.clone()
    gather_values_torch(case.store, case.layout.kv_view(want), case.tables, case.fetch,
                        case.layer, case.chunk_size)
    gather_values(case.store, case.kv, case.tables, case.fetch, case.layer, case.chunk_size)
    assert int((case.fetch >= 0).sum()) > 0
    torch.testing.assert_close(case.arena, want, rtol=0, atol=0, equal_nan=True)


@needs_cuda_ops
def test_cuda_gather_chunks_that_straddle_pages():
    case = make_case(batch=3, heads=2, head_dim=64, chunk_size=6, budget=384, rank=72,
                     dtype=torch.float16, device="cuda", seed=5, pin=True)
    want = case.arena.clone()
    gather_values_torch(case.store, case.layout.kv_view(want), case.tables, case.fetch,
                        case.layer, case.chunk_size)
    gather_values(case.store, case.kv, case.tables, case.fetch, case.layer, case.chunk_size)
    torch.testing.assert_close(case.arena, want, rtol=0, atol=0, equal_nan=True)
