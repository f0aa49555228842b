"""`shadowkv serve` as a process: SIGTERM turns health and new requests to 503, lets the running
request finish, then exits cleanly; past --shutdown-timeout, what still runs is aborted."""
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
from server_harness import ENGINE_OPTIONS, MODEL_NAME, START_TIMEOUT, is_healthy, wait_until

REPO = Path(__file__).resolve().parents[2]


def start_server(model: Path, shutdown_timeout: float) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "shadowkv_engine.cli", "serve", str(model),
               "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
               "--served-model-name", MODEL_NAME, "--log-level", "warning",
               "--num-gpu-blocks", str(ENGINE_OPTIONS["num_gpu_blocks"]),
               "--num-cpu-blocks", str(ENGINE_OPTIONS["num_cpu_blocks"]),
               "--max-model-len", str(ENGINE_OPTIONS["max_model_len"]),
               "--shutdown-timeout", str(shutdown_timeout)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
        str(REPO), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(command, cwd=REPO, env=env)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: is_healthy(base_url) or process.poll() is not None, START_TIMEOUT,
                   "`shadowkv serve` to become healthy")
        assert process.poll() is None, "the server exited during start-up"
    except BaseException:
        process.kill()
        process.wait(timeout=30)
        raise
    return process, base_url


def stream_events(response: httpx.Response):
    for line in response.iter_lines():
        if line.startswith("data: "):
            yield line[len("data: "):]


def run_and_terminate(model: Path, shutdown_timeout: float, max_tokens: int):
    """Starts a long streamed request, sends SIGTERM once it runs, and checks the drain state.

    Returns the finish reason, the streamed token count and the process' exit code."""
    process, base_url = start_server(model, shutdown_timeout)
    try:
        body = {"model": MODEL_NAME, "prompt": "The river", "max_tokens": max_tokens,
                "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}}
        with httpx.stream("POST", f"{base_url}/v1/completions", json=body,
                          timeout=60) as response:
            events = stream_events(response)
            next(events)  # running
            process.send_signal(signal.SIGTERM)
            wait_until(lambda: httpx.get(f"{base_url}/health", timeout=5).status_code == 503, 10,
                       "/health to report draining")
            refused = httpx.post(f"{base_url}/v1/completions", timeout=10,
                                 json={"model": MODEL_NAME, "prompt": "hi", "max_tokens": 2})
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == 503
            rest = list(events)
        assert rest[-1] == "[DONE]"
        chunks = [json.loads(event) for event in rest[:-1]]
        finish_reason = [c for c in chunks if c["choices"]][-1]["choices"][0]["finish_reason"]
        return finish_reason, chunks[-1]["usage"]["completion_tokens"], process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def test_sigterm_drains_the_running_request_to_completion(demo_model):
    finish_reason, tokens, exit_code = run_and_terminate(demo_model, shutdown_timeout=60,
                                                         max_tokens=300)
    assert finish_reason == "length" and tokens == 300
    assert exit_code == 0


def test_shutdown_timeout_aborts_what_still_runs(demo_model):
    finish_reason, tokens, exit_code = run_and_terminate(demo_model, shutdown_timeout=1,
                                                         max_tokens=1800)
    assert finish_reason == "abort" and tokens < 1800
    assert exit_code == 0
