"""Runs the real server — uvicorn, the real engine, the tiny demo checkpoint on the CPU — on
127.0.0.1 for the tests, and reads its metrics.

Every network call has a timeout and every server is stopped in a `finally`, so no test can hang.
"""
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from server.app import build_app
from server.options import ServerOptions
from shadowkv_engine.config import EngineConfig

MODEL_NAME = "demo"
START_TIMEOUT = 120.0
HTTP_TIMEOUT = 60.0

# Small pools (the defaults size them in GB) and ShadowKV settings scaled to the demo model
# (key dimension 2 KV heads x 128), so prompts of a few hundred tokens are compressed.
ENGINE_OPTIONS = dict(
    device="cpu", served_model_name=MODEL_NAME, max_model_len=2048, num_gpu_blocks=256,
    num_cpu_blocks=256, max_num_seqs=8,
    shadowkv=dict(rank=32, sparse_budget=64, outlier_chunks=2, local_chunks=2,
                  min_context_len=64))


def engine_config(model: Path, **overrides) -> EngineConfig:
    return EngineConfig(model=str(model), **(ENGINE_OPTIONS | overrides))


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def is_healthy(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/health", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def serve_in_thread(config: EngineConfig, options: ServerOptions = ServerOptions()
                    ) -> Iterator[str]:
    """Runs the app (which loads its engine after start-up) under uvicorn; yields its base URL."""
    with serve_app_in_thread(build_app(config, options=options)) as base_url:
        yield base_url


@contextmanager
def serve_app_in_thread(app) -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # handed to uvicorn already bound: no race for the port
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning",
                                           timeout_graceful_shutdown=5))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: is_healthy(base_url), START_TIMEOUT, "the server to become healthy")
        yield base_url
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
        assert not thread.is_alive(), "the server did not stop"


def assert_still_serving(base_url: str):
    """The engine is alive and a plain request is answered."""
    assert httpx.get(f"{base_url}/health", timeout=10).status_code == 200
    response = httpx.post(f"{base_url}/v1/completions", timeout=HTTP_TIMEOUT,
                          json={"prompt": "The river", "max_tokens": 2})
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["completion_tokens"] >= 1


def metrics(base_url: str) -> dict[str, float]:
    """/metrics samples by name, summed over label sets (one model per server)."""
    totals: dict[str, float] = {}
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals
