"""The hit/miss plan: its properties (CPU, on the twin) and the CUDA op equal to the twin."""
import pytest
import torch

from shadowkv_engine.ops.chunk_plan import plan_chunk_reuse_torch
from paged_case import needs_cuda_ops, random_plan_inputs


def plan_by_hand(resident: list[int], selected: list[int]):
    """The contract, written as plainly as possible."""
    chosen = {c for c in selected if c >= 0}
    keep = [r >= 0 and r in chosen for r in resident]
    misses = sorted(c for c in chosen if c not in {r for r in resident if r >= 0})
    new, fetch = list(resident), [-1] * len(resident)
    for slot in range(len(resident)):
        if not keep[slot]:
            new[slot] = fetch[slot] = misses.pop(0) if misses else -1
    return new, fetch, sum(keep)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [1, 7, 64, 256])
def test_twin_equals_the_contract(seed, k):
    gen = torch.Generator().manual_seed(seed)
    resident, selected = random_plan_inputs(6, k, 3 * k, overlap=0.6, gen=gen)
    new, fetch, hits = plan_chunk_reuse_torch(resident, selected)
    for r in range(resident.shape[0]):
        want = plan_by_hand(resident[r].tolist(), selected[r].tolist())
        assert (new[r].tolist(), fetch[r].tolist(), int(hits[r])) == want


def test_hits_stay_in_place_and_misses_fill_free_slots_ascending():
    resident = torch.tensor([[5, -1, 9, 2, 7, 4]], dtype=torch.int32)
    selected = torch.tensor([[8, 2, -1, 1, 9, 3]], dtype=torch.int32)
    new, fetch, hits = plan_chunk_reuse_torch(resident, selected)
    assert new.tolist() == [[1, 3, 9, 2, 8, -1]]
    assert fetch.tolist() == [[1, 3, -1, -1, 8, -1]]
    assert hits.tolist() == [2]


def test_every_selected_chunk_is_resident_after_the_plan_and_only_misses_are_fetched():
    gen = torch.Generator().manual_seed(1)
    resident, selected = random_plan_inputs(16, 128, 1000, overlap=0.6, gen=gen)
    new, fetch, hits = plan_chunk_reuse_torch(resident, selected)
    for r in range(16):
        chosen = {c for c in selected[r].tolist() if c >= 0}
        before = {c for c in resident[r].tolist() if c >= 0}
        assert {c for c in new[r].tolist() if c >= 0} == chosen
        assert sorted(c for c in fetch[r].tolist() if c >= 0) == sorted(chosen - before)
        assert int(hits[r]) == len(chosen & before)


def test_first_step_fetches_the_selection_in_order():
    resident = torch.full((2, 4), -1, dtype=torch.int32)
    selected = torch.tensor([[30, 10, -1, 20], [-1, -1, -1, -1]], dtype=torch.int32)
    new, fetch, hits = plan_chunk_reuse_torch(resident, selected)
    assert fetch.tolist() == [[10, 20, 30, -1], [-1, -1, -1, -1]]
    assert new.tolist() == fetch.tolist()
    assert hits.tolist() == [0, 0]


@pytest.mark.parametrize("rows,k", [(1, 1), (3, 37), (256, 256), (64, 1000), (32, 1024), (4, 2048),
                                    (2, 8192)])
@pytest.mark.parametrize("overlap", [0.0, 0.6, 1.0])
@pytest.mark.parametrize("seed", [0, 1])
@needs_cuda_ops
def test_cuda_plan_equals_twin(rows, k, overlap, seed):
    gen = torch.Generator().manual_seed(seed)
    resident, selected = random_plan_inputs(rows, k, 3 * k, overlap, gen)
    want = plan_chunk_reuse_torch(resident, selected)
    got = torch.ops.shadowkv.plan_chunk_reuse(resident.cuda(), selected.cuda())
    for g, w in zip(got, want):
        assert g.dtype == torch.int32
        assert torch.equal(g.cpu(), w)
