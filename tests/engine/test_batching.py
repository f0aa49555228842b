"""Continuous batching: batched output equals solo output, preemption is invisible, memory returns."""
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shadowkv_engine.config import EngineConfig
from shadowkv_engine.engine.llm_engine import LLMEngine
from shadowkv_engine.errors import RequestTooLargeError
from shadowkv_engine.sampling_params import SamplingParams

SPARSE = dict(rank=16, chunk_size=8, sparse_budget=64, outlier_chunks=2, local_chunks=2,
              min_context_len=128)
LENGTHS = [40, 300, 17, 700, 150]
ARRIVAL_STEPS = [0, 0, 2, 3, 7]


def prompt(length, seed):
    return torch.randint(5, 1024, (length,), generator=torch.Generator().manual_seed(seed)).tolist()


def engine(path, attention, **options):
    options = {"num_gpu_blocks": 1024, "num_cpu_blocks": 256, "max_num_batched_tokens": 256,
               **options}
    return LLMEngine(EngineConfig(model=str(path), device="cpu", attention=attention,
                                  shadowkv=SPARSE, **options))


def run(eng, requests, arrivals=None, abort_at=None):
    """requests: {id: (prompt, params)}; arrivals: {id: step}; abort_at: {id: step}."""
    arrivals = arrivals or {rid: 0 for rid in requests}
    abort_at = abort_at or {}
    finished, step = {}, 0
    pending = dict(requests)
    while pending or eng.has_unfinished_requests():
        for rid in [r for r in pending if arrivals[r] <= step]:
            eng.add_request(rid, *pending.pop(rid))
        for rid, when in abort_at.items():
            if when == step:
                eng.abort_request(rid)
        for out in eng.step():
            if out.finished:
                finished[out.request_id] = out
        step += 1
        assert step < 5000, "the engine stopped making progress"
    return finished


def greedy(n=24):
    return SamplingParams(temperature=0.0, max_tokens=n, ignore_eos=True)


@pytest.mark.parametrize("attention", ["dense", "shadowkv"])
def test_batched_equals_one_at_a_time(make_checkpoint, attention):
    path = make_checkpoint("llama3")
    requests = {f"r{i}": (prompt(n, i), greedy()) for i, n in enumerate(LENGTHS)}
    batched = run(engine(path, attention), requests,
                  arrivals=dict(zip(requests, ARRIVAL_STEPS)))
    solo_engine = engine(path, attention)
    for rid, request in requests.items():
        solo = run(solo_engine, {rid: request})[rid]
        assert batched[rid].outputs[0].token_ids == solo.outputs[0].token_ids, rid
    if attention == "shadowkv":
        assert solo_engine.stats().shadowkv_chunks_selected_total > 0


# Pools sized so the newest running sequence must be preempted while others grow. In ShadowKV
# mode the victim is a compressed sequence: it is re-prefilled, re-compressed and replays its
# generated tokens before it continues.
PREEMPTION_CASES = {
    "dense": (44, {"a": (100, 64), "b": (110, 64), "c": (300, 64)}),
    "shadowkv": (38, {"b": (100, 300), "a": (300, 300)}),
}


def value_tier(arena_pages: int) -> dict:
    """Engine options that turn `arena_pages` of the GPU budget into the value store's device
    tier (two value pages each), keeping the arena's own size."""
    page = 2 * 2 * 2 * 16 * 32 * 4  # layers * (K, V) * KV heads * block * head dim * float32
    return {"gpu_value_store_gb": arena_pages * page / 2**30}


@pytest.mark.parametrize("attention,tier", [("dense", 0), ("shadowkv", 0), ("shadowkv", 8)])
def test_preemption_keeps_outputs_identical(make_checkpoint, attention, tier):
    """tier: arena pages' worth of values in the device tier (part of a prompt's 38 pages)."""
    path = make_checkpoint("llama3")
    blocks, shapes = PREEMPTION_CASES[attention]
    requests = {rid: (prompt(n, i), greedy(m)) for i, (rid, (n, m)) in enumerate(shapes.items())}
    roomy = run(engine(path, attention), requests)
    tight = engine(path, attention, num_gpu_blocks=blocks + tier, **value_tier(tier))
    squeezed = run(tight, requests)
    assert tight.stats().num_preemptions_total > 0
    for rid in requests:
        assert squeezed[rid].outputs[0].token_ids == roomy[rid].outputs[0].token_ids, rid
        assert squeezed[rid].outputs[0].finish_reason == "length"
    stats = tight.stats()
    assert stats.gpu_blocks_used == 0 and stats.cpu_blocks_used == 0
    assert stats.gpu_value_blocks_total == 2 * tier and stats.gpu_value_blocks_used == 0


def test_request_larger_than_pools_is_rejected_alone(make_checkpoint):
    path = make_checkpoint("llama3")
    eng = engine(path, "dense", num_gpu_blocks=20)
    eng.add_request("ok", prompt(100, 1), greedy(8))
    with pytest.raises(RequestTooLargeError, match="GPU KV pages"):
        eng.add_request("huge", prompt(400, 2), greedy(8))
    done = run(eng, {})
    assert done["ok"].outputs[0].finish_reason == "length"
    assert len(done["ok"].outputs[0].token_ids) == 8
    assert "huge" not in done


workload = st.lists(
    st.tuples(st.integers(1, 400),  # prompt length
              st.integers(1, 12),  # max tokens
              st.integers(0, 6),  # arrival step
              st.one_of(st.none(), st.integers(0, 12)),  # abort step
              st.sampled_from([0.0, 0.8])),  # temperature
    min_size=1, max_size=7)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(workload=workload, attention=st.sampled_from(["dense", "shadowkv"]),
       tier=st.sampled_from([0, 6]))
def test_random_workload_returns_every_page(make_checkpoint, workload, attention, tier):
    path = make_checkpoint("llama3")
    eng = engine(path, attention, num_gpu_blocks=96 + tier, num_cpu_blocks=48,
                 max_num_batched_tokens=96, **value_tier(tier))
    requests, arrivals, aborts = {}, {}, {}
    for i, (length, max_tokens, arrival, abort, temperature) in enumerate(workload):
        rid = f"w{i}"
        requests[rid] = (prompt(length, i), SamplingParams(temperature=temperature,
                                                           max_tokens=max_tokens, seed=i))
        arrivals[rid] = arrival
        if abort is not None:
            aborts[rid] = arrival + abort
    finished = run(eng, requests, arrivals, aborts)
    for rid in requests:
        if rid not in aborts:
            assert finished[rid].outputs[0].finish_reason in ("stop", "length"), rid
    stats = eng.stats()
    assert stats.gpu_blocks_used == 0, "GPU pages leaked"
    assert stats.cpu_blocks_used == 0, "CPU pages leaked"
    assert stats.gpu_value_blocks_used == 0, "GPU value pages leaked"
    assert stats.num_running == 0 and stats.num_waiting == 0


def test_long_prefill_is_chunked_and_decodes_keep_going(make_checkpoint):
    path = make_checkpoint("llama3")
    eng = engine(path, "shadowkv", max_num_batched_tokens=64)
    eng.add_request("chat", prompt(20, 1), greedy(40))
    eng.step()  # "chat" prefilled; it decodes from now on
    eng.add_request("document", prompt(1000, 2), greedy(4))
    steps_with_chat_token = steps = 0
    while "document" in eng.requests and eng.requests["document"].sequences[0].num_computed < 1000:
        outputs = {o.request_id for o in eng.step()}
        steps += 1
        steps_with_chat_token += "chat" in outputs
        document = eng.requests["document"].sequences[0]
        assert document.num_computed <= 64 * steps  # never more than the step budget
    assert steps >= 1000 // 64  # the prompt took many steps ...
    assert steps_with_chat_token == steps  # ... and the decode produced a token in each of them


@pytest.mark.parametrize("attention", ["dense", "shadowkv"])
def test_largest_batch_runs_together_without_preemption(make_checkpoint, attention):
    """max_concurrent_sequences is what the engine really holds at once: that many sequences all
    run together with no preemption, and one more cannot."""
    path = make_checkpoint("llama3")
    eng = engine(path, attention, num_gpu_blocks=150, num_cpu_blocks=80, max_num_seqs=32)
    length, new = 300, 8
    fits = eng.blocks.max_concurrent_sequences(length, length + new)
    assert 1 < fits < 32
    for extra in (0, 1):
        for i in range(fits + extra):
            eng.add_request(f"{extra}-{i}", prompt(length, i), greedy(new))
        most = 0
        while eng.has_unfinished_requests():
            eng.step()
            most = max(most, len(eng.scheduler.running))
        if extra == 0:  # all of them at once, none preempted
            assert most == fits and eng.scheduler.num_preemptions == 0
        else:  # one more never runs to the end alongside them: it waits, or someone is preempted
            assert most <= fits or eng.scheduler.num_preemptions > 0


@pytest.mark.parametrize("attention,gpu_pages", [("dense", 800), ("shadowkv", 700)])
def test_long_prefills_at_the_largest_batch_preempt_no_one(make_checkpoint, attention,
                                                           gpu_pages):
    """Prompts that take many steps to prefill, as many as the pools hold: a sequence is admitted
    only when its prefill fits beside the unfinished prefills of those admitted before it, so
    none of them is preempted half-way (and recomputed) and all run together."""
    path = make_checkpoint("llama3")
    eng = engine(path, attention, num_gpu_blocks=gpu_pages, num_cpu_blocks=2000, max_num_seqs=32)
    length, new = 2000, 400  # 8 steps of prefill each at 256 tokens a step
    fits = eng.blocks.max_concurrent_sequences(length, length + new)
    assert 4 <= fits < 32
    for i in range(fits):
        eng.add_request(f"r{i}", prompt(length, i), greedy(new))
    most = 0
    while eng.has_unfinished_requests():
        eng.step()
        most = max(most, len(eng.scheduler.running))
    assert eng.scheduler.num_preemptions == 0
    assert most == fits


def steps_to_first_token(eng, request_id, limit=100):
    for step in range(1, limit):
        for out in eng.step():
            if out.request_id == request_id and out.outputs[0].token_ids:
                return step
    raise AssertionError(f"{request_id} got no token in {limit} steps")


def test_short_request_is_served_while_a_long_prompt_prefills(make_checkpoint):
    """Fair admission: a long prefill leaves room in each step for an arrival (its first token
    within 2 steps), and alone it still takes the whole budget (ceil(3000 / 256) steps)."""
    path = make_checkpoint("llama3")
    # Steps counted as the scheduler plans them: with async scheduling a step's tokens would be
    # read one step later.
    eng = engine(path, "dense", max_num_batched_tokens=256, async_scheduling=False)
    eng.add_request("long", prompt(3000, 1), greedy(4))
    eng.step()
    eng.step()
    eng.add_request("short", prompt(40, 2), greedy(4))
    assert steps_to_first_token(eng, "short") <= 2
    eng.abort_request("long")

    alone = engine(path, "dense", max_num_batched_tokens=256, async_scheduling=False)
    alone.add_request("long", prompt(3000, 1), greedy(4))
    assert steps_to_first_token(alone, "long") == -(-3000 // 256)
