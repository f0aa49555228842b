"""`bench serve` end to end against the real server on 127.0.0.1 (embedded model, CPU), against
an address where nothing listens, and a run whose requests fail at random."""
import argparse
import asyncio
import json
import socket
import struct
import time

import httpx
import pytest

from shadowkv_engine.bench.cli import add_serve_args, main
from shadowkv_engine.bench.client import Target
from shadowkv_engine.bench.datasets import BenchRequest
from shadowkv_engine.bench.serve import error_samples, run_level
from shadowkv_engine.bench.stats import summarize
from shadowkv_engine.default_model import DEFAULT_MODEL_DIR, DEFAULT_MODEL_NAME
from server.options import ServerOptions
from server_harness import engine_config, serve_in_thread


def result_files(directory):
    (result,) = directory.glob("*.json")
    return json.loads(result.read_text()), sorted(directory.glob("*.png"))


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_synthetic_tasks_under_a_concurrency_sweep(model_server, tmp_path, capsys):
    rc = main(["--base-url", model_server, "--dataset", "synthetic", "--tasks",
               "passkey,niah_single", "--synthetic-length", "1k", "--num-prompts", "10",
               "--max-concurrency", "1", "4", "--tokenizer", str(DEFAULT_MODEL_DIR),
               "--goodput", "ttft:5000", "tpot:1000", "--save-result", "--save-detailed",
               "--plot", "--result-dir", str(tmp_path), "--disable-tqdm"])
    assert rc == 0
    result, pngs = result_files(tmp_path)
    parser = argparse.ArgumentParser()
    add_serve_args(parser)
    assert set(result["parameters"]) == {a.dest for a in parser._actions if a.dest != "help"}
    assert result["model"] == "shadowkv-retrieval-10m" and result["tokenizer"] == str(
        DEFAULT_MODEL_DIR)
    assert [run["max_concurrency"] for run in result["runs"]] == [1, 4]
    for run in result["runs"]:
        assert run["completed"] + run["failed"] == 10 and run["completed"] == 10
        for request in run["requests"]:
            assert 0 < request["ttft_s"] <= request["latency_s"]
        for metric in ("ttft_ms", "tpot_ms", "itl_ms", "e2el_ms"):
            assert set(run[metric]) == {"mean", "median", "std", "p50", "p90", "p99"}
        assert run["request_throughput"] > 0 and 0 <= run["good_requests"] <= 10
        server = run["server_metrics"]
        # the server's own counters agree with the usage of the responses
        assert server["prompt_tokens"] == run["total_input_tokens"]
        assert server["generation_tokens"] == run["total_output_tokens"]
        assert server["preemptions"] >= 0 and server["cpu_bytes_fetched"] > 0
        assert 0 <= server["shadowkv_hit_rate"] <= 1
        accuracy = run["accuracy"]
        assert accuracy["scored"] == 10 and set(accuracy["per_task"]) == {"passkey",
                                                                          "niah_single"}
        assert 0 <= accuracy["exact_match"] <= 1
    assert [p.name.rsplit("-", 1)[1] for p in pngs] == ["latency.png", "sweep.png"]
    assert all(min(png_size(p)) > 100 for p in pngs)
    printed = capsys.readouterr().out
    assert printed.count("Serving Benchmark Result") == 2 and "p99 TTFT" in printed
    assert "Synthetic tasks (exact match)" in printed


def test_random_chat_prompts_with_poisson_arrivals(model_server, tmp_path):
    rc = main(["--base-url", model_server, "--endpoint", "chat", "--num-prompts", "6",
               "--random-input-len", "200", "--random-output-len", "8", "--ignore-eos",
               "--request-rate", "50", "--burstiness", "0.5", "--save-result",
               "--result-dir", str(tmp_path), "--disable-tqdm"])
    assert rc == 0
    result, _ = result_files(tmp_path)
    (run,) = result["runs"]
    assert run["completed"] == 6 and run["total_output_tokens"] == 6 * 8  # ignore_eos honoured
    assert run["server_metrics"]["prompt_tokens"] == run["total_input_tokens"]
    assert "requests" not in run and "approximated" in result["tokenizer"]
    assert result["request_rate"] == 50.0 and result["parameters"]["request_rate"] == 50.0


def test_api_key_is_sent_and_never_recorded(tmp_path, capsys):
    config = engine_config(DEFAULT_MODEL_DIR, served_model_name=DEFAULT_MODEL_NAME)
    with serve_in_thread(config, ServerOptions(api_keys=("bench-key-1",))) as url:
        args = ["--base-url", url, "--num-prompts", "2", "--random-input-len", "64",
                "--random-output-len", "4", "--disable-tqdm", "--save-result",
                "--result-dir", str(tmp_path)]
        assert main(args) == 2
        assert "401" in capsys.readouterr().err
        assert main([*args, "--api-key", "bench-key-1"]) == 0
    text = next(tmp_path.glob("*.json")).read_text()
    assert json.loads(text)["runs"][0]["completed"] == 2 and "bench-key-1" not in text


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize("model_args, message", [
    ([], "cannot reach"), (["--model", "m"], "the ready check")])
def test_nothing_listening_fails_fast_and_says_why(model_args, message, capsys):
    start = time.monotonic()
    rc = main(["--base-url", closed_port_url(), "--num-prompts", "3", "--disable-tqdm",
               *model_args])
    assert rc == 2 and time.monotonic() - start < 10
    err = capsys.readouterr().err
    assert message in err and "ConnectError" in err


def test_failing_requests_are_counted_not_raised():
    def handler(request: httpx.Request):
        n = int(json.loads(request.content)["prompt"])
        if n % 3 == 0:
            raise httpx.ConnectError("connection refused")
        if n % 3 == 1:
            return httpx.Response(503, json={"error": {"message": "draining"}})
        return httpx.Response(200, content=b'data: {"choices": [{"text": "x"}]}\n\n'
                                           b"data: [DONE]\n\n")

    requests = [BenchRequest(str(i), 1, 1) for i in range(9)]

    async def go():
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await run_level(client, Target("http://x", "completions", "m"), requests,
                                   [0.0] * 9, concurrency=2, progress=False)
    results, duration = asyncio.run(go())
    summary = summarize(results, duration)
    assert (summary["completed"], summary["failed"]) == (3, 6)
    assert sorted(e["error"] for e in error_samples(results)) == [
        "ConnectError: connection refused", "HTTP 503 Service Unavailable: draining"]


@pytest.mark.parametrize("option", [["--max-concurrency", "0"], ["--num-prompts", "0"],
                                    ["--request-rate", "0"], ["--random-range-ratio", "1"]])
def test_bad_options_are_refused_before_sending(option, capsys):
    assert main(["--base-url", closed_port_url(), *option]) == 2
    assert option[0] in capsys.readouterr().err
