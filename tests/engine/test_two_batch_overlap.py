"""Two-batch overlap (decode steps run as two halves, engine/two_batch_overlap.py) changes no
output: greedy tokens equal those of the one-batch step, token for token, while sequences join,
leave and switch from dense to compressed. On the CPU the halves run one after the other; the
GPU test runs them on two streams, in CUDA graphs and eagerly."""
import pytest

from shadowkv_engine.engine.two_batch_overlap import overlap_enabled, split
from test_batching import ARRIVAL_STEPS, LENGTHS, engine, greedy, prompt, run
from test_decode_graphs import checkpoint, gpu_engine  # noqa: F401 (a fixture)

import torch


def requests(n=24):
    return {f"r{i}": (prompt(length, i), greedy(n)) for i, length in enumerate(LENGTHS)}


def assert_same_tokens(a: dict, b: dict):
    assert a.keys() == b.keys()
    for rid in a:
        assert a[rid].outputs[0].token_ids == b[rid].outputs[0].token_ids, rid


def count_halves(eng) -> list:
    """Records the rows of each half of every overlapped step the engine runs."""
    seen, logits = [], eng.runner.overlap.logits

    def counting(halves):
        seen.append(tuple(ids.shape[0] for ids, _, _ in halves))
        return logits(halves)

    eng.runner.overlap.logits = counting
    return seen


@pytest.mark.parametrize("attention", ["dense", "shadowkv"])
def test_overlapped_halves_equal_one_batch_on_cpu(make_checkpoint, attention):
    path = make_checkpoint("llama3")
    arrivals = dict(zip(requests(), ARRIVAL_STEPS))
    halves = engine(path, attention, two_batch_overlap="on")
    whole = engine(path, attention, two_batch_overlap="off")
    assert halves.runner.overlap is not None and whole.runner.overlap is None
    steps = count_halves(halves)
    assert_same_tokens(run(halves, requests(), arrivals), run(whole, requests(), arrivals))
    assert (3, 2) in steps and (1, 1) in steps  # five rows, then two (split: first half larger)
    stats = halves.stats()
    assert stats.gpu_blocks_used == 0 and stats.cpu_blocks_used == 0
    if attention == "shadowkv":
        assert stats.shadowkv_chunks_selected_total > 0


def test_auto_turns_overlap_on_for_shadowkv_on_cuda_only():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert overlap_enabled("auto", "shadowkv", cuda)
    assert not overlap_enabled("auto", "dense", cuda)
    assert not overlap_enabled("auto", "shadowkv", cpu)
    assert overlap_enabled("on", "dense", cpu) and not overlap_enabled("off", "shadowkv", cuda)


def test_padding_falls_in_the_second_half():
    """A captured batch of P rows runs n > P/2 real rows (the next smaller size is at least
    P/2), so the first half, split(P) rows, is always real rows only."""
    from shadowkv_engine.engine.cuda_graphs import graph_batch_sizes
    sizes = graph_batch_sizes(100)
    for smaller, padded in zip(sizes, sizes[1:]):
        assert split(padded) <= smaller + 1


@pytest.mark.gpu
@pytest.mark.parametrize("enforce_eager", [False, True], ids=["graphs", "eager"])
@pytest.mark.parametrize("attention", ["dense", "shadowkv"])
def test_overlapped_halves_equal_one_batch_on_gpu(checkpoint, attention,  # noqa: F811
                                                 enforce_eager):
    arrivals = dict(zip(requests(40), ARRIVAL_STEPS))
    halves = gpu_engine(checkpoint, attention, two_batch_overlap="on",
                        enforce_eager=enforce_eager)
    whole = gpu_engine(checkpoint, attention, two_batch_overlap="off",
                       enforce_eager=enforce_eager)
    assert halves.runner.overlap is not None and halves.runner.overlap.side is not None
    steps = count_halves(halves)
    assert_same_tokens(run(halves, requests(40), arrivals), run(whole, requests(40), arrivals))
    if enforce_eager:
        assert (3, 2) in steps
    else:
        assert halves.runner.graphs.graphs, "no decode step was captured"
    stats = halves.stats()
    assert stats.gpu_blocks_used == 0 and stats.cpu_blocks_used == 0
