"""Two-batch overlap (engine/two_batch.py) changes no output: a decode step run as two
micro-batches gives the tokens of the step run as one (greedy, token for token), counts the same
ShadowKV hits, and returns its memory. On the CPU the halves run in turn; the GPU test, on two
streams inside CUDA graphs, is in test_decode_graphs.py."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from shadowkv_engine.config import EngineConfig
from shadowkv_engine.engine.two_batch import TwoBatchOverlap, first_half
from shadowkv_engine.errors import InvalidRequestError
from shadowkv_engine.kv.step_metadata import DecodeRow, StepMetadataBuilder
from shadowkv_engine.kv.storage import NULL_PAGE, KVStorage, PageLayout
from test_batching import ARRIVAL_STEPS, LENGTHS, engine, greedy, prompt, run


def count_split_steps(eng) -> list[int]:
    """Wraps the runner's two-batch forward; the list grows by one per split step."""
    calls, forward_two = [], eng.runner._forward_two

    def spy(meta):
        calls.append(meta.split_at)
        return forward_two(meta)

    eng.runner._forward_two = spy
    return calls


@pytest.mark.parametrize("attention", ["dense", "shadowkv"])
def test_two_micro_batches_give_the_tokens_of_one(make_checkpoint, attention):
    path = make_checkpoint("llama3")
    requests = {f"r{i}": (prompt(n, i), greedy(30)) for i, n in enumerate(LENGTHS)}
    arrivals = dict(zip(requests, ARRIVAL_STEPS))
    one = engine(path, attention, two_batch_overlap="off")
    two = engine(path, attention, two_batch_overlap="on")
    split_steps = count_split_steps(two)
    assert count_split_steps(one) == []
    want, got = run(one, requests, arrivals), run(two, requests, arrivals)
    # Batches of 2 to 5 rows: odd ones give the first half the extra row.
    assert len(split_steps) > 20 and {2, 3} <= set(split_steps)
    for rid in requests:
        assert got[rid].outputs[0].token_ids == want[rid].outputs[0].token_ids, rid
    stats_one, stats_two = one.stats(), two.stats()
    if attention == "shadowkv":
        assert stats_two.shadowkv_hit_rate == stats_one.shadowkv_hit_rate > 0
    assert stats_two.gpu_blocks_used == 0 and stats_two.cpu_blocks_used == 0


def test_auto_splits_only_shadowkv_steps_that_read_host_memory():
    def row(host_pages):
        shadow = None if host_pages is None else SimpleNamespace(host_value_pages=host_pages)
        return SimpleNamespace(kv=SimpleNamespace(shadow=shadow))

    gpu = TwoBatchOverlap("auto", torch.device("cuda"), sparse=True)  # no stream until used
    assert gpu.applies([row(0), row(3)]) and gpu.applies([row(None), row(1)])
    assert not gpu.applies([row(0), row(0), row(None)])  # every value in GPU memory
    assert not gpu.applies([row(5)])  # one row: nothing to overlap
    assert not TwoBatchOverlap("auto", torch.device("cuda"), sparse=False).applies(
        [row(None), row(None)])
    assert not TwoBatchOverlap("auto", torch.device("cpu"), sparse=True).applies([row(1), row(1)])
    assert TwoBatchOverlap("on", torch.device("cpu"), sparse=False).applies([row(None)] * 2)
    assert not TwoBatchOverlap("off", torch.device("cuda"), sparse=True).applies([row(1)] * 4)
    assert [first_half(n) for n in (2, 3, 8, 19)] == [1, 2, 4, 10]
    with pytest.raises(InvalidRequestError, match="two_batch_overlap must be one of"):
        EngineConfig(model="unused", two_batch_overlap="yes")


def test_placed_rows_split_into_two_halves_of_views(make_checkpoint):
    """Decode rows placed around the first half's padding: each half's metadata holds its own
    rows, padding reads the null page, and a half's page lists are its own requests."""
    from shadowkv_engine.engine.llm_engine import LLMEngine

    eng = LLMEngine(EngineConfig(model=str(make_checkpoint("llama3")), device="cpu",
                                 attention="dense", num_gpu_blocks=64, num_cpu_blocks=8))
    for i, n in enumerate([20, 40, 33]):
        eng.add_request(f"r{i}", prompt(n, i), greedy(4))
    eng.step()
    seqs = eng.scheduler.running
    rows = [DecodeRow(seq.kv, 7, len(seq.token_ids) - 1) for seq in seqs]
    builder = StepMetadataBuilder(eng.config, eng.runner.storage, 256, 8)
    meta = builder.build(rows, [], 8, 0, placement=[0, 1, 4], split_at=4)
    first, second = meta.decode_rows(0, 4), meta.decode_rows(4, 8)
    assert first.input_ids.tolist() == [7, 7, 0, 0] and second.input_ids.tolist() == [7, 0, 0, 0]
    assert first.kv_page[2:].tolist() == [NULL_PAGE] * 2
    assert second.positions[0] == rows[2].position
    assert first.decode.num_requests == second.decode.num_requests == 4
    assert first.decode.indptr[0] == second.decode.indptr[0] == 0
    pages = seqs[2].kv.tokens.pages.array[:rows[2].position // 16 + 1]
    assert np.array_equal(second.decode.indices_host[:len(pages)], pages)
    assert (second.decode.indices_host[len(pages):] == NULL_PAGE).all()
    assert first.decode.indices_host.tolist()[-2:] == [NULL_PAGE, NULL_PAGE]
    meta.prefill = meta.decode  # a step with prefill chunks never splits
    with pytest.raises(ValueError, match="decode-only"):
        meta.decode_rows(0, 1)
