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


def split_store(store, host_pages, device, pin):
    """The store as two tiers: pages below host_pages on the host, the rest on `device`."""
    host = store[:host_pages].clone()
    return (host.pin_memory() if pin else host), store[host_pages:].to(device)


def host_chunks_by_hand(case, host_pages, slots, counters):
    t, c, bs = case.tables, case.chunk_size, case.layout.block_size
    for b, h, s in (case.fetch >= 0).nonzero().tolist():
        token = int(case.fetch[b, h, s]) * c
        counters[int(slots[b])] += int(t.store_pages[b, token // bs] < host_pages)


def test_twin_reads_both_tiers_and_counts_host_chunks():
    case = make_case(batch=3, heads=2, head_dim=16, chunk_size=4, budget=32, rank=8,
                     dtype=torch.float32, device="cpu", seed=1)
    host_pages = case.store.shape[0] // 2
    host, device_store = split_store(case.store, host_pages, "cpu", pin=False)
    want = case.arena.clone()
    gather_by_hand(case, case.layout.kv_view(want))
    slots = torch.tensor([4, 0, 2])
    want_counts = [0] * 6
    host_chunks_by_hand(case, host_pages, slots, want_counts)
    counts = torch.zeros(6, dtype=torch.long)
    gather_values_torch(host, case.kv, case.tables, case.fetch, case.layer, case.chunk_size,
                        device_store, counts, slots)
    torch.testing.assert_close(case.arena, want, rtol=0, atol=0, equal_nan=True)
    assert counts.tolist() == want_counts and 0 < sum(want_counts) < int((case.fetch >= 0).sum())


@needs_cuda_ops
@pytest.mark.parametrize("host_share", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_cuda_gather_over_two_tiers_equals_twin(dtype, host_share):
    case = make_case(batch=4, heads=8, head_dim=128, chunk_size=8, budget=512, rank=160,
                     dtype=dtype, device="cuda", seed=7, pin=True)
    host_pages = int(case.store.shape[0] * host_share)
    host, device_store = split_store(case.store, host_pages, "cuda", pin=True)
    slots = torch.tensor([3, 1, 0, 5], device="cuda")
    want = case.arena.clone()
    want_counts = torch.zeros(6, dtype=torch.long, device="cuda")
    gather_values_torch(host, case.layout.kv_view(want), case.tables, case.fetch, case.layer,
                        case.chunk_size, device_store, want_counts, slots)
    counts = torch.zeros(6, dtype=torch.long, device="cuda")
    gather_values(host, case.kv, case.tables, case.fetch, case.layer, case.chunk_size,
                  device_store, counts, slots)
    torch.testing.assert_close(case.arena, want, rtol=0, atol=0, equal_nan=True)
    assert counts.tolist() == want_counts.tolist()
    fetched, from_host = int((case.fetch >= 0).sum()), int(counts.sum())
    assert from_host == {0.0: 0, 0.5: from_host, 1.0: fetched}[host_share]
    assert host_share != 0.5 or 0 < from_host < fetched
