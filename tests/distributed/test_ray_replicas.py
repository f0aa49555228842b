"""Two replicas of the embedded model on a local Ray cluster, behind the real server: requests
spread over both, streams pass through the router, and a replica killed mid-stream fails only
its own requests, clearly, and comes back."""
import contextlib
import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from ray_harness import REPLICAS, replica_samples, serve_replicas, wait_until

pytestmark = [pytest.mark.ray, pytest.mark.slow]

TIMEOUT = 60.0
PROMPT = "The key is 7. Remember it. The key is"


@pytest.fixture(scope="module")
def replicas(ray_cluster):
    # One running and one waiting request per replica; value pages for 256 tokens, so a long
    # prompt can never fit while short (dense) ones are unaffected.
    with serve_replicas(max_num_seqs=1, max_queued_requests=1,
                        num_cpu_blocks=16) as (base_url, router):
        yield base_url, router


@pytest.fixture
def client(replicas) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{replicas[0]}/v1", api_key="unused", timeout=TIMEOUT,
                         max_retries=0)


def test_requests_spread_over_both_replicas(replicas, client):
    base_url, _ = replicas
    health = httpx.get(f"{base_url}/health", timeout=10)
    assert health.status_code == 200
    assert health.json() == {"status": "ready", "replicas": {"0": "ready", "1": "ready"}}
    for _ in range(4):
        completion = client.completions.create(model="demo", prompt=PROMPT, max_tokens=4)
        assert completion.usage.completion_tokens >= 1
    routed = replica_samples(base_url, "shadowkv:replica_requests_total")
    assert set(routed) == {"0", "1"} and all(count >= 1 for count in routed.values()), routed
    assert sum(routed.values()) == 4
    # Each replica's own engine counters arrive with the next stats poll (sub-second).
    wait_until(lambda: all(v > 0 for v in replica_samples(
        base_url, "vllm:prompt_tokens_total").values()) and len(replica_samples(
            base_url, "vllm:prompt_tokens_total")) == REPLICAS, 10, "per-replica prompt tokens")
    assert replica_samples(base_url, "shadowkv:replica_up") == {"0": 1.0, "1": 1.0}


def test_streaming_through_the_router_matches_the_whole_answer(client):
    request = dict(model="demo", messages=[{"role": "user", "content": PROMPT}], max_tokens=24,
                   temperature=0, extra_body={"ignore_eos": True})
    whole = client.chat.completions.create(**request).choices[0].message.content
    chunks = list(client.chat.completions.create(**request, stream=True,
                                                 stream_options={"include_usage": True}))
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(texts) > 1  # streamed token by token, not buffered into one chunk
    assert "".join(texts) == whole
    assert chunks[-1].usage.completion_tokens == 24
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"


def test_a_request_no_replica_can_ever_hold_gets_400(client):
    with pytest.raises(openai.BadRequestError) as refused:
        client.completions.create(model="demo", prompt=[5] * 200, max_tokens=800)
    assert "value pages" in refused.value.body["message"]


def test_requests_queue_on_every_replica_before_the_429(replicas):
    base_url, router = replicas
    url = f"{base_url}/v1/completions"
    long = {"prompt": PROMPT, "max_tokens": 1500, "ignore_eos": True, "stream": True}
    with httpx.Client(timeout=TIMEOUT) as http, contextlib.ExitStack() as streams, \
            ThreadPoolExecutor(REPLICAS) as pool:
        running = []  # the line iterators: dropping one would close its stream
        for _ in range(REPLICAS):  # one running request per replica
            response = streams.enter_context(http.stream("POST", url, json=long))
            assert response.status_code == 200
            running.append(response.iter_lines())
            next(running[-1])
        queued = [pool.submit(http.post, url, json={"prompt": PROMPT, "max_tokens": 2})
                  for _ in range(REPLICAS)]  # one waiting request per replica
        wait_until(lambda: replica_samples(base_url, "vllm:num_requests_waiting") ==
                   {"0": 1.0, "1": 1.0}, 10, "one request waiting on each replica")
        refused = http.post(url, json={"prompt": PROMPT, "max_tokens": 2})
        assert refused.status_code == 429, refused.text
        assert refused.headers["retry-after"] and refused.json()["error"]["code"] == 429
        streams.close()  # the running requests are aborted, and the waiting ones run
        assert [f.result(timeout=TIMEOUT).status_code for f in queued] == [200] * REPLICAS
    wait_until(lambda: router.num_unfinished_requests == 0, 10, "every request to end")


def test_a_replica_killed_mid_stream_fails_its_stream_and_comes_back(replicas, ray_cluster,
                                                                    client):
    base_url, router = replicas
    body = {"prompt": PROMPT, "max_tokens": 1500, "ignore_eos": True, "stream": True}
    events = []
    with httpx.stream("POST", f"{base_url}/v1/completions", json=body,
                      timeout=TIMEOUT) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        for line in lines:
            if line.startswith("data: {"):
                events.append(json.loads(line[len("data: "):]))
                break
        victim = next(r for r in router.replicas.replicas if r.inflight)
        ray_cluster.kill(victim.actor)
        started = time.monotonic()
        for line in lines:  # the stream ends: an error event, then [DONE]
            if line.startswith("data: "):
                events.append(line[len("data: "):])
    assert time.monotonic() - started < 10
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["code"] == 500
    assert f"replica {victim.index}" in error["message"] and "Retry" in error["message"]

    health = httpx.get(f"{base_url}/health", timeout=10).json()
    assert health["status"] == "degraded" and health["replicas"][str(victim.index)] != "ready"
    for _ in range(3):  # new requests go to the replica still up
        completion = client.completions.create(model="demo", prompt=PROMPT, max_tokens=2)
        assert completion.usage.completion_tokens >= 1

    wait_until(lambda: httpx.get(f"{base_url}/health", timeout=10).json()["status"] == "ready",
             60, "the killed replica to come back")
    assert victim.restarts == 1
    before = replica_samples(base_url, "shadowkv:replica_requests_total")[str(victim.index)]
    for _ in range(2):  # idle replicas take turns: one of these lands on the new one
        client.completions.create(model="demo", prompt=PROMPT, max_tokens=2)
    after = replica_samples(base_url, "shadowkv:replica_requests_total")[str(victim.index)]
    assert after > before
