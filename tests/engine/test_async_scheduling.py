"""Asynchronous scheduling (step t+1 launched before step t's tokens are read) changes nothing a
user sees: the same tokens, texts, logprobs and finish reasons as waiting every step, for every
kind of request, with aborts and stops on a token, and every page back in its pool."""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shadowkv_engine.config import EngineConfig
from shadowkv_engine.engine.llm_engine import LLMEngine
from shadowkv_engine.sampling_params import SamplingParams

from test_batching import SPARSE, prompt

# min_context_len below the prompts' lengths: the ShadowKV engine decodes them sparsely.
OPTIONS = dict(num_gpu_blocks=1024, num_cpu_blocks=256, max_num_batched_tokens=128)


def engine(path, attention, async_scheduling, **options):
    return LLMEngine(EngineConfig(model=str(path), device="cpu", attention=attention,
                                  shadowkv=SPARSE, async_scheduling=async_scheduling,
                                  **{**OPTIONS, **options}))


def run(eng, requests, arrivals, abort_at=None, steps=None):
    """requests: {id: (prompt, params)}; arrivals / abort_at: {id: step}. Last output per id;
    steps[0] gets the number of engine steps."""
    abort_at = abort_at or {}
    last, step, waiting = {}, 0, dict(requests)
    while waiting or eng.has_unfinished_requests():
        for rid in [r for r in waiting if arrivals[r] <= step]:
            eng.add_request(rid, *waiting.pop(rid))
        for rid, when in abort_at.items():
            if when == step:
                aborted = eng.abort_request(rid)
                if aborted is not None:
                    last[rid] = aborted
        for out in eng.step():
            last[out.request_id] = out
        step += 1
        assert step < 2000, "the engine stopped making progress"
    if steps is not None:
        steps[:] = [step]
    return last


def visible(output):
    return [(c.index, c.token_ids, c.text, c.finish_reason, c.stop_reason, c.logprobs,
             c.cumulative_logprob) for c in output.outputs]


def assert_pools_empty(eng):
    stats = eng.stats()
    assert (stats.gpu_blocks_used, stats.cpu_blocks_used, stats.gpu_value_blocks_used) == (0, 0, 0)
    assert stats.num_running == stats.num_waiting == 0


@pytest.mark.parametrize("attention", ["dense", "shadowkv"])
def test_async_scheduling_gives_the_outputs_of_waiting_every_step(make_checkpoint, attention):
    path = make_checkpoint("llama3")
    greedy = SamplingParams(temperature=0.0, max_tokens=12, ignore_eos=True)
    # A stop token the greedy continuation really produces, so one request stops early on it
    # while its next step is already launched.
    probe = engine(path, attention, async_scheduling=False)
    probe.add_request("probe", prompt(300, 3), greedy)
    stop_token = run(probe, {}, {})["probe"].outputs[0].token_ids[4]

    requests = {
        "greedy": (prompt(300, 1), greedy),
        "stops-on-token": (prompt(300, 3), SamplingParams(
            temperature=0.0, max_tokens=12, ignore_eos=True, stop_token_ids=[stop_token])),
        "seeded": (prompt(180, 4), SamplingParams(temperature=0.9, top_p=0.9, max_tokens=10,
                                                   seed=7, logprobs=3)),
        "two-choices": (prompt(150, 5), SamplingParams(n=2, temperature=1.0, top_k=20,
                                                        max_tokens=8, seed=11)),
        "penalties": (prompt(200, 6), SamplingParams(temperature=0.0, max_tokens=9,
                                                      repetition_penalty=1.3,
                                                      frequency_penalty=0.5, ignore_eos=True)),
        "min-tokens": (prompt(60, 7), SamplingParams(temperature=0.0, max_tokens=6, min_tokens=6,
                                                      stop_token_ids=[stop_token])),
        "stop-string": (prompt(90, 8), SamplingParams(temperature=0.0, max_tokens=12,
                                                       ignore_eos=True, stop=["e"])),
        "aborted": (prompt(250, 9), greedy),
    }
    arrivals = {"greedy": 0, "stops-on-token": 0, "seeded": 1, "two-choices": 2, "penalties": 2,
                "min-tokens": 4, "stop-string": 5, "aborted": 0}
    outputs = {}
    for mode in (False, True):
        eng = engine(path, attention, async_scheduling=mode)
        outputs[mode] = run(eng, requests, arrivals, abort_at={"aborted": 9})
        assert_pools_empty(eng)
    assert outputs[True].keys() == set(requests)
    for rid in set(requests) - {"aborted"}:
        assert visible(outputs[True][rid]) == visible(outputs[False][rid]), rid
    # An abort lands between steps: the token in flight then is dropped, the rest agrees.
    aborted = [outputs[mode]["aborted"].outputs[0].token_ids for mode in (True, False)]
    assert aborted[0] and aborted[0] == aborted[1][:len(aborted[0])]
    stopped = outputs[True]["stops-on-token"].outputs[0]
    assert stopped.finish_reason == "stop" and stopped.stop_reason == stop_token
    assert len(stopped.token_ids) < 12
    assert outputs[True]["aborted"].outputs[0].finish_reason == "abort"


def test_no_step_runs_past_a_requests_last_token(make_checkpoint):
    """When the next step is scheduled, a request whose max_tokens-th token is in flight is done:
    it gets no further forward pass (its position would be past its budget, up to
    max_model_len)."""
    path = make_checkpoint("llama3")
    outputs, steps, computed = {}, {}, {}
    for mode in (False, True):
        eng = engine(path, "dense", async_scheduling=mode, max_model_len=128)
        run_batch = eng.runner.run
        computed[mode] = []

        def counted(batch, *args, mode=mode, run_batch=run_batch):
            computed[mode].append(sum(batch.num_tokens))
            return run_batch(batch, *args)

        eng.runner.run = counted
        steps[mode] = []
        outputs[mode] = run(eng, {"full": (prompt(120, 1), SamplingParams(
            temperature=0.0, max_tokens=8, ignore_eos=True))}, {"full": 0}, steps=steps[mode])
        assert_pools_empty(eng)
    assert len(outputs[True]["full"].outputs[0].token_ids) == 8
    assert visible(outputs[True]["full"]) == visible(outputs[False]["full"])
    # The same forward passes (the prompt, then 7 decodes); the async engine reads the last
    # token in one more step, which launches nothing.
    assert computed[True] == computed[False] == [120] + [1] * 7
    assert steps == {False: [8], True: [9]}


workload = st.lists(
    st.tuples(st.integers(100, 400),  # prompt length
              st.integers(1, 24),  # max tokens
              st.integers(0, 3),  # arrival step
              st.sampled_from([0.0, 0.8]),  # temperature (seeded per request)
              st.sampled_from([[], ["e"], ["a", "o"]])),  # stop strings
    min_size=1, max_size=8)


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(workload=workload, attention=st.sampled_from(["dense", "shadowkv"]))
def test_random_workloads_under_memory_pressure_give_the_same_outputs(make_checkpoint, workload,
                                                                       attention):
    """Random prompts, lengths, arrivals and stop strings in pools that queue and at times
    preempt: the async engine (extra steps for stopped sequences, a token in flight when the
    pools run short) returns exactly what the engine that waits every step returns, and every
    page. (test_batching's preemption cases run the async engine through certain preemption.)"""
    path = make_checkpoint("llama3")
    requests, arrivals = {}, {}
    for i, (length, max_tokens, arrival, temperature, stop) in enumerate(workload):
        requests[f"w{i}"] = (prompt(length, i), SamplingParams(
            temperature=temperature, max_tokens=max_tokens, seed=i, stop=stop))
        arrivals[f"w{i}"] = arrival
    outputs = {}
    for mode in (False, True):
        eng = engine(path, attention, async_scheduling=mode, num_gpu_blocks=40,
                     num_cpu_blocks=48, max_num_batched_tokens=96)
        outputs[mode] = run(eng, requests, arrivals)
        assert_pools_empty(eng)
    for rid in requests:
        assert visible(outputs[True][rid]) == visible(outputs[False][rid]), rid
