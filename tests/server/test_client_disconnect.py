"""A client that goes away aborts its request: /metrics shows nothing running and the KV pools
back at their idle usage, long before the request would have finished."""
import httpx
from server_harness import MODEL_NAME, metrics, wait_until

MAX_TOKENS = 1500
# Longer than the ShadowKV minimum context of the test engine, so the request is compressed and
# holds pages of both pools: device KV and offloaded CPU values.
LONG_PROMPT = "The old mill by the river turns all day. " * 40

GPU = "vllm:kv_cache_usage_perc"
CPU = "shadowkv:cpu_kv_usage_perc"


def body(stream: bool) -> dict:
    return {"model": MODEL_NAME, "prompt": LONG_PROMPT, "max_tokens": MAX_TOKENS,
            "ignore_eos": True, "stream": stream}


def wait_idle(base_url: str) -> dict:
    def idle():
        sample = metrics(base_url)
        return sample["vllm:num_requests_running"] == 0 and \
            sample["vllm:num_requests_waiting"] == 0

    wait_until(idle, 20, "no request running or waiting")
    return metrics(base_url)


def test_disconnect_mid_stream_aborts_and_frees_memory(base_url):
    before = wait_idle(base_url)
    with httpx.stream("POST", f"{base_url}/v1/completions", json=body(True),
                      timeout=60) as response:
        lines = response.iter_lines()
        for _ in range(5):
            next(lines)
        during = metrics(base_url)
    after = wait_idle(base_url)
    assert during["vllm:num_requests_running"] == 1
    assert during[GPU] > before[GPU] and during[CPU] > before[CPU]
    assert after[GPU] == before[GPU] and after[CPU] == before[CPU]
    generated = after["vllm:generation_tokens_total"] - before["vllm:generation_tokens_total"]
    assert generated < MAX_TOKENS


def test_disconnect_while_waiting_for_a_whole_response_aborts(base_url):
    before = wait_idle(base_url)
    try:
        httpx.post(f"{base_url}/v1/completions", json=body(False), timeout=1.0)
        raise AssertionError("the request should have outlived the client's timeout")
    except httpx.ReadTimeout:
        pass  # the client gives up and closes the connection
    after = wait_idle(base_url)
    assert after[GPU] == before[GPU] and after[CPU] == before[CPU]
    generated = after["vllm:generation_tokens_total"] - before["vllm:generation_tokens_total"]
    assert generated < MAX_TOKENS
