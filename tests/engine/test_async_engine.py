"""The asyncio engine the server runs on: streaming, aborts, a full queue."""
import asyncio

import pytest

from shadowkv_engine import SamplingParams
from shadowkv_engine.config import EngineConfig
from shadowkv_engine.engine.async_engine import AsyncEngine
from shadowkv_engine.errors import PromptTooLongError, QueueFullError


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=120))


@pytest.fixture(scope="module")
def model_path(make_checkpoint):
    return str(make_checkpoint("llama3"))


def async_engine(path, **options):
    return AsyncEngine(EngineConfig(model=path, device="cpu", num_gpu_blocks=256,
                                    num_cpu_blocks=64, max_model_len=1024, **options))


def test_streams_cumulative_outputs_matching_offline(model_path):
    from shadowkv_engine import LLM

    params = SamplingParams(temperature=0.0, max_tokens=20, ignore_eos=True)
    offline = LLM(model=model_path, device="cpu", num_gpu_blocks=256).generate(
        ["stream me"], params, use_tqdm=False)[0].outputs[0]

    async def main():
        engine = async_engine(model_path)
        seen = []
        async for out in engine.generate("stream me", params, "s1"):
            seen.append(out)
        await engine.shutdown()
        return seen

    seen = run(main())
    lengths = [len(o.outputs[0].token_ids) for o in seen]
    assert lengths == sorted(lengths) and lengths[-1] == 20
    assert all(not o.finished for o in seen[:-1]) and seen[-1].finished
    texts = [o.outputs[0].text for o in seen]
    assert all(b.startswith(a) for a, b in zip(texts, texts[1:]))
    assert seen[-1].outputs[0].token_ids == offline.token_ids
    assert texts[-1] == offline.text


def test_closing_the_stream_aborts_and_frees_memory(model_path):
    async def main():
        engine = async_engine(model_path)
        idle = engine.stats().gpu_blocks_used
        stream = engine.generate("x " * 200, SamplingParams(max_tokens=500, ignore_eos=True),
                                 "long")
        async for out in stream:
            if len(out.outputs[0].token_ids) >= 3:
                break
        await stream.aclose()
        for _ in range(100):
            stats = engine.stats()
            if stats.num_running == 0 and stats.gpu_blocks_used == idle:
                break
            await asyncio.sleep(0.05)
        await engine.shutdown()
        return idle, stats

    idle, stats = run(main())
    assert stats.num_running == 0 and stats.num_waiting == 0
    assert stats.gpu_blocks_used == idle == 0


def test_full_queue_and_bad_requests_raise_before_streaming(model_path):
    async def main():
        engine = async_engine(model_path, max_num_seqs=1, max_queued_requests=1)
        params = SamplingParams(max_tokens=300, ignore_eos=True)
        running = engine.generate("first", params, "a")
        await running.__anext__()  # "a" is running
        queued = engine.generate("second", params, "b")
        queued_task = asyncio.ensure_future(queued.__anext__())
        await asyncio.sleep(0.2)  # "b" waits in the queue
        with pytest.raises(QueueFullError):
            await engine.generate("third", params, "c").__anext__()
        with pytest.raises(PromptTooLongError):
            await engine.generate("x", SamplingParams(max_tokens=5000), "d").__anext__()
        await running.aclose()
        await queued_task
        await queued.aclose()
        await engine.shutdown()
        return engine.stats()

    stats = run(main())
    assert stats.num_running == 0 and stats.num_waiting == 0


def test_a_request_failing_inside_the_engine_fails_alone(model_path, monkeypatch):
    from shadowkv_engine.engine.output_processor import OutputProcessor
    from shadowkv_engine.errors import RequestFailedError

    append = OutputProcessor.append

    def fails_for_bad(self, seq, result):
        if seq.request_id == "bad":
            raise RuntimeError("boom")
        return append(self, seq, result)

    monkeypatch.setattr(OutputProcessor, "append", fails_for_bad)
    params = SamplingParams(temperature=0.0, max_tokens=8, ignore_eos=True)

    async def collect(engine, prompt, request_id):
        last = None
        async for out in engine.generate(prompt, params, request_id):
            last = out
        return last

    async def main():
        engine = async_engine(model_path)
        good = asyncio.ensure_future(collect(engine, "fine", "good"))
        with pytest.raises(RequestFailedError):
            await collect(engine, "broken", "bad")
        first, after = await good, await collect(engine, "again", "after")
        stats = engine.stats()
        await engine.shutdown()
        return first, after, stats, engine.is_dead

    first, after, stats, dead = run(main())
    assert not dead
    assert len(first.outputs[0].token_ids) == 8 and len(after.outputs[0].token_ids) == 8
    assert stats.gpu_blocks_used == 0


def test_a_failing_sampling_step_fails_its_requests_not_the_engine(model_path, monkeypatch):
    from shadowkv_engine.errors import RequestFailedError
    from shadowkv_engine.sample import Sampler

    launch = Sampler.launch
    calls = {"n": 0}

    def fails_once(self, logits, requests):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("boom")
        return launch(self, logits, requests)

    monkeypatch.setattr(Sampler, "launch", fails_once)
    params = SamplingParams(temperature=0.0, max_tokens=4, ignore_eos=True)

    async def main():
        engine = async_engine(model_path)
        with pytest.raises(RequestFailedError):
            async for _ in engine.generate("first", params, "a"):
                pass
        outputs = [out async for out in engine.generate("second", params, "b")]
        await engine.shutdown()
        return outputs, engine.is_dead

    outputs, dead = run(main())
    assert not dead and len(outputs[-1].outputs[0].token_ids) == 4


def test_a_queue_limit_of_zero_means_never_queue(model_path):
    async def main():
        engine = async_engine(model_path, max_num_seqs=1, max_queued_requests=0)
        params = SamplingParams(max_tokens=300, ignore_eos=True)
        running = engine.generate("first", params, "a")
        await running.__anext__()  # takes the only batch slot
        with pytest.raises(QueueFullError):
            await engine.generate("second", params, "b").__anext__()
        await running.aclose()
        await engine.shutdown()

    run(main())
