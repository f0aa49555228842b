"""`shadowkv serve --data-parallel-size 2 --distributed-backend ray` as a process: it starts a
local Ray on demand, serves from both replicas, and on SIGTERM exits cleanly, leaving no Ray
process behind."""
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from ray_harness import START_TIMEOUT, is_healthy, wait_until

pytestmark = [pytest.mark.ray, pytest.mark.slow]
pytest.importorskip("ray")

REPO = Path(__file__).resolve().parents[2]


def descendants(pid: int) -> set[int]:
    """The processes below `pid` (Ray's raylet, GCS and workers), read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        return "zombie" not in (Path(f"/proc/{pid}/status").read_text().lower())
    except OSError:
        return False


def test_serve_starts_a_local_ray_and_stops_it_on_sigterm():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "shadowkv_engine.cli", "serve", "--port", str(port),
               "--device", "cpu", "--max-model-len", "2048", "--num-gpu-blocks", "256",
               "--num-cpu-blocks", "256", "--log-level", "warning",
               "--data-parallel-size", "2", "--distributed-backend", "ray"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_ADDRESS": ""}
    process = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.DEVNULL)
    ray_processes: set[int] = set()
    try:
        wait_until(lambda: is_healthy(base_url) or process.poll() is not None, START_TIMEOUT,
                   "the replicas to become ready")
        assert process.poll() is None, "the server exited during start-up"
        health = httpx.get(f"{base_url}/health", timeout=10).json()
        assert health["replicas"] == {"0": "ready", "1": "ready"}
        completion = httpx.post(f"{base_url}/v1/completions", timeout=60,
                                json={"prompt": "The key is", "max_tokens": 3})
        assert completion.status_code == 200, completion.text
        ray_processes = descendants(process.pid)
        assert ray_processes  # Ray's processes, started by the server
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        wait_until(lambda: not any(alive(pid) for pid in ray_processes), 10,
                   "Ray's processes to end")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
