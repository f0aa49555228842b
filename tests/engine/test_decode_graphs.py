"""The GPU decode path (flashinfer kernels, batched ShadowKV ops, CUDA graphs) changes no output:
graph replay == eager, and batched == one sequence at a time, greedy, token for token."""
import pytest

from shadowkv_engine.config import EngineConfig
from shadowkv_engine.engine.llm_engine import LLMEngine
from shadowkv_engine.sampling_params import SamplingParams
from test_batching import ARRIVAL_STEPS, LENGTHS, SPARSE, greedy, prompt, run

pytestmark = pytest.mark.gpu


def gpu_engine(path, attention, **options):
    pytest.importorskip("flashinfer")
    options = {"num_gpu_blocks": 2048, "num_cpu_blocks": 1024, "max_num_batched_tokens": 256,
               "max_num_seqs": 8, **options}
    return LLMEngine(EngineConfig(model=str(path), device="cuda", dtype="bfloat16",
                                  attention=attention, attention_backend="flashinfer",
                                  shadowkv=SPARSE, **options))


@pytest.fixture(scope="module")
def checkpoint(make_checkpoint):
    return make_checkpoint("llama3", head_dim=64)  # head dims the kernels are built for


def requests():
    return {f"r{i}": (prompt(n, i), greedy(40)) for i, n in enumerate(LENGTHS)}


@pytest.mark.parametrize("attention", ["dense", "shadowkv"])
def test_graph_replay_equals_eager(checkpoint, attention):
    arrivals = dict(zip(requests(), ARRIVAL_STEPS))
    graphs = gpu_engine(checkpoint, attention)
    eager = gpu_engine(checkpoint, attention, enforce_eager=True)
    assert graphs.runner.graphs is not None and eager.runner.graphs is None
    with_graphs = run(graphs, requests(), arrivals)
    without = run(eager, requests(), arrivals)
    assert graphs.runner.graphs.graphs, "no decode step was captured"
    for rid in with_graphs:
        assert with_graphs[rid].outputs[0].token_ids == without[rid].outputs[0].token_ids, rid
    if attention == "shadowkv":
        assert 0.0 < graphs.stats().shadowkv_hit_rate <= 1.0


@pytest.mark.parametrize("attention", ["dense", "shadowkv"])
def test_batched_equals_one_at_a_time(checkpoint, attention):
    batched = run(gpu_engine(checkpoint, attention), requests(),
                  dict(zip(requests(), ARRIVAL_STEPS)))
    solo_engine = gpu_engine(checkpoint, attention)
    for rid, request in requests().items():
        solo = run(solo_engine, {rid: request})[rid]
        assert batched[rid].outputs[0].token_ids == solo.outputs[0].token_ids, rid
    stats = solo_engine.stats()
    assert stats.gpu_blocks_used == 0 and stats.cpu_blocks_used == 0


@pytest.mark.parametrize("attention", ["dense", "shadowkv"])
def test_async_scheduling_equals_waiting_every_step(checkpoint, attention):
    """Captured steps whose input tokens come from the previous step's device tensor give the
    tokens of the engine that reads every step's tokens before the next; a request that stops
    on a token while its next step is in flight ends the same too."""
    arrivals = dict(zip(requests(), ARRIVAL_STEPS))
    sync = gpu_engine(checkpoint, attention, async_scheduling=False)
    waited = run(sync, requests(), arrivals)
    stop_token = waited["r1"].outputs[0].token_ids[5]
    asked = requests()
    asked["r1"] = (asked["r1"][0], SamplingParams(temperature=0.0, max_tokens=40,
                                                  ignore_eos=True, stop_token_ids=[stop_token]))
    outputs = {mode: run(gpu_engine(checkpoint, attention, async_scheduling=mode), asked, arrivals)
               for mode in (False, True)}
    for rid in asked:
        assert outputs[True][rid].outputs[0].token_ids == outputs[False][rid].outputs[0].token_ids
    assert outputs[True]["r1"].outputs[0].finish_reason == "stop"
    assert outputs[True]["r0"].outputs[0].token_ids == waited["r0"].outputs[0].token_ids


@pytest.mark.parametrize("attention", ["dense", "shadowkv"])
def test_two_batch_overlap_equals_one_batch(checkpoint, attention):
    """Decode steps as two micro-batches on two streams (captured, and eager) give the tokens
    of one batch. ShadowKV with every value in host memory splits by default ("auto")."""
    arrivals = dict(zip(requests(), ARRIVAL_STEPS))
    mode = "auto" if attention == "shadowkv" else "on"
    whole = gpu_engine(checkpoint, attention, two_batch_overlap="off", gpu_value_store_gb=0)
    want = run(whole, requests(), arrivals)
    for eager in (False, True):
        split = gpu_engine(checkpoint, attention, two_batch_overlap=mode, gpu_value_store_gb=0,
                           enforce_eager=eager)
        calls, forward_two = [], split.runner._forward_two
        split.runner._forward_two = lambda meta: calls.append(meta) or forward_two(meta)
        got = run(split, requests(), arrivals)
        assert calls, "no step was split"
        if not eager:
            assert any(key[2] is not None for key in split.runner.graphs.graphs)
        for rid in want:
            assert got[rid].outputs[0].token_ids == want[rid].outputs[0].token_ids, (rid, eager)
        if attention == "shadowkv":
            assert split.stats().shadowkv_hit_rate == whole.stats().shadowkv_hit_rate


@pytest.mark.parametrize("attention, options", [
    ("dense", {}), ("shadowkv", {}), ("shadowkv", {"gpu_value_store_gb": 0})],
    ids=["dense", "shadowkv", "shadowkv-two-batches"])
def test_steady_decode_steps_never_make_the_host_wait(checkpoint, attention, options):
    """With async scheduling a decode step's host work (schedule, metadata, attention plan, graph
    launch, sampling launch, the previous step's outputs, ShadowKV folds, a request finishing)
    runs while the GPU computes the step before: no operation in it may synchronise with the
    device. (Waiting for the previous step's tokens is a CUDA event, the point, not flagged.)"""
    import torch

    eng = gpu_engine(checkpoint, attention, **options)
    for i, (n, new) in enumerate([(300, 60), (700, 60), (150, 60), (200, 20)]):
        eng.add_request(f"r{i}", prompt(n, i), greedy(new))
    for _ in range(12):  # prefills, compression, the graph captures
        eng.step()
    assert all(len(s.token_ids) > s.num_prompt_tokens for s in eng.scheduler.running)
    torch.cuda.set_sync_debug_mode("error")
    try:
        finished = [out.request_id for _ in range(20) for out in eng.step() if out.finished]
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert finished == ["r3"]  # folds happened too: one a sequence every chunk_size tokens
    if options:  # values in host memory: the steps ran as two micro-batches
        assert any(key[2] is not None for key in eng.runner.graphs.graphs)
