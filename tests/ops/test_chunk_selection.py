"""Selection + hit/miss plan of one layer, the decode state updated in place: the twin against
the contract, and the fused CUDA op (csrc/select_chunks.cu) equal to the twin, bit for bit."""
import pytest
import torch

from shadowkv_engine.ops.chunk_selection import select_and_plan, select_and_plan_torch
from paged_case import needs_cuda_ops

NEG_INF = float("-inf")


def random_case(batch, heads, chunks, k, seed, ties=False, layers=3, spare_slots=2):
    """Scores with -inf holes (one row fully -inf), a decode state whose resident ids overlap
    the likely selection, and batch slots that are a permutation plus a shared padding slot."""
    gen = torch.Generator().manual_seed(seed)
    if ties:  # few distinct values: most of the selection is decided by tie-breaking
        scores = torch.randint(0, 4, (batch, heads, chunks), generator=gen).float() / 4
    else:
        scores = torch.rand(batch, heads, chunks, generator=gen)
    scores[torch.rand(batch, heads, chunks, generator=gen) < 0.2] = NEG_INF
    scores[0, 0] = NEG_INF
    num_slots = batch + spare_slots + 1
    resident = torch.full((num_slots, layers, heads, k), -1, dtype=torch.int32)
    for s in range(num_slots):
        for h in range(heads):
            ids = torch.randperm(chunks, generator=gen)[:k].int()
            ids[torch.rand(ids.shape[0], generator=gen) < 0.2] = -1
            resident[s, :, h, : ids.shape[0]] = ids
    slots = torch.randperm(num_slots - 1, generator=gen)[:batch]
    padding = batch // 3  # the last rows are padding: one shared slot, nothing selectable
    if padding:
        slots[-padding:] = num_slots - 1
        scores[-padding:] = NEG_INF
    hits = torch.randint(0, 100, (num_slots,), generator=gen)
    return scores, resident, slots, hits


def contract(scores_row, resident_row, k):
    """The selection and the plan of one row, written plainly."""
    order = sorted(range(len(scores_row)), key=lambda c: (-scores_row[c], c))
    chosen = {c for c in order[:k] if scores_row[c] != NEG_INF}
    keep = [r >= 0 and r in chosen for r in resident_row]
    misses = sorted(chosen - {r for r in resident_row if r >= 0})
    new, fetch = list(resident_row), [-1] * k
    for slot in range(k):
        if not keep[slot]:
            new[slot] = fetch[slot] = misses.pop(0) if misses else -1
    return new, fetch, sum(keep)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("chunks,k", [(40, 8), (5, 8), (300, 64)])
def test_twin_follows_the_contract_and_updates_the_state(chunks, k, ties):
    scores, resident, slots, hits = random_case(5, 2, chunks, k, seed=chunks + k, ties=ties)
    layer = 1
    before, hits_before = resident.clone(), hits.clone()
    fetch = select_and_plan_torch(scores, resident, slots, layer, hits)
    want_hits = hits_before.clone()
    for b in range(4):  # row 4 is padding (shared slot, nothing selectable)
        slot = int(slots[b])
        for h in range(2):
            new, want_fetch, row_hits = contract(scores[b, h].tolist(),
                                                 before[slot, layer, h].tolist(), k)
            assert fetch[b, h].tolist() == want_fetch
            assert resident[slot, layer, h].tolist() == new
            want_hits[slot] += row_hits
    assert (fetch[4] == -1).all() and (resident[slots[4], layer] == -1).all()
    others = torch.ones_like(resident, dtype=torch.bool)
    others[slots, layer] = False
    assert torch.equal(resident[others], before[others])  # other layers and slots untouched
    assert torch.equal(hits, want_hits)


def test_a_second_step_with_the_same_scores_hits_everything():
    scores, resident, slots, hits = random_case(3, 2, 100, 16, seed=3, spare_slots=0)
    hits.zero_()
    first = select_and_plan(scores, resident, slots, 0, hits)
    selected = int((first >= 0).sum()) + int(hits.sum())  # fetched + already resident
    hits.zero_()
    second = select_and_plan(scores, resident, slots, 0, hits)
    assert (second == -1).all()
    assert int(hits.sum()) == int(selected)


@needs_cuda_ops
@pytest.mark.parametrize("batch,heads,chunks,k", [
    (1, 1, 1, 1), (3, 2, 5, 8), (8, 8, 4096, 256), (6, 4, 3000, 37), (2, 8, 16384, 256),
    (2, 2, 131072, 1024), (19, 8, 15350, 256), (4, 2, 600, 600)])
@pytest.mark.parametrize("ties", [False, True])
def test_cuda_op_equals_twin(batch, heads, chunks, k, ties):
    scores, resident, slots, hits = random_case(batch, heads, chunks, k, seed=batch * k,
                                                ties=ties)
    want_resident, want_hits = resident.clone(), hits.clone()
    want = select_and_plan_torch(scores, want_resident, slots, 2, want_hits)
    got_resident, got_hits = resident.cuda(), hits.cuda()
    got = select_and_plan(scores.cuda(), got_resident, slots.cuda(), 2, got_hits)
    assert got.dtype == torch.int32
    assert torch.equal(got.cpu(), want)
    assert torch.equal(got_resident.cpu(), want_resident)
    assert torch.equal(got_hits.cpu(), want_hits)


@needs_cuda_ops
def test_cuda_op_replays_from_a_cuda_graph():
    scores, resident, slots, hits = random_case(8, 8, 2048, 128, seed=5)
    scores, slots = scores.cuda(), slots.cuda()
    state, counters = resident.cuda(), hits.cuda()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        select_and_plan(scores, state.clone(), slots, 0, counters.clone())  # warm-up
        with torch.cuda.graph(graph, stream=stream):
            fetch = select_and_plan(scores, state, slots, 0, counters)
    state.copy_(resident.cuda())
    counters.copy_(hits.cuda())
    graph.replay()
    want_resident, want_hits = resident.clone(), hits.clone()
    want = select_and_plan_torch(scores.cpu(), want_resident, slots.cpu(), 0, want_hits)
    assert torch.equal(fetch.cpu(), want)
    assert torch.equal(state.cpu(), want_resident)
    assert torch.equal(counters.cpu(), want_hits)
