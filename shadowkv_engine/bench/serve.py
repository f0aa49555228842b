"""A load-test run: find the model, build the prompts, check the server answers, then for each
concurrency level send every prompt on the arrival schedule, scraping /metrics around it.

The clock of a level starts after the ready check and warm-ups, at the first send; a level's
duration ends when its last request has finished. Levels of a sweep run one after the other
on the same prompts.
"""
import asyncio
import math
import time
from collections import Counter

import httpx
from tqdm import tqdm

from . import prom
from .arrivals import send_times
from .client import BenchError, Target, send
from .datasets import (CHARS_PER_TOKEN, LONG_PRESETS, BenchRequest, is_exact,
                       load_tokenizer, long_context_requests, random_requests, synthetic_requests)
from .stats import RequestResult, summarize

CONNECT_TIMEOUT = 10.0
MAX_ERROR_SAMPLES = 10


async def discover_model(client: httpx.AsyncClient, base_url: str, headers: dict) -> str:
    """The first model of /v1/models."""
    url = base_url.rstrip("/") + "/v1/models"
    try:
        response = await client.get(url, headers=headers, timeout=CONNECT_TIMEOUT + 20)
    except httpx.HTTPError as e:
        raise BenchError(f"cannot reach {url}: {type(e).__name__}: {e or 'no answer'} (is the "
                         "server running, and is --base-url right?)") from None
    if response.status_code == 401:
        raise BenchError(f"{url} answered 401: the server wants an API key (--api-key or "
                         "OPENAI_API_KEY)")
    if response.status_code != 200:
        raise BenchError(f"{url} answered HTTP {response.status_code}; give --model")
    models = response.json().get("data") or []
    if not models:
        raise BenchError(f"{url} lists no model; give --model")
    return models[0]["id"]


def build_requests(args, tokenizer) -> list[BenchRequest]:
    if args.dataset == "synthetic":
        token_ids = args.endpoint == "completions" and is_exact(tokenizer)
        return synthetic_requests(tokenizer, args.tasks, args.synthetic_length, args.num_prompts,
                                  token_ids)
    if args.dataset in LONG_PRESETS:
        return long_context_requests(tokenizer, args.dataset, args.num_prompts,
                                     args.random_output_len, args.random_range_ratio, args.seed)
    return random_requests(tokenizer, args.num_prompts, args.random_input_len,
                           args.random_output_len, args.random_range_ratio, args.seed)


async def run_level(client: httpx.AsyncClient, target: Target, requests: list[BenchRequest],
                    times: list[float], concurrency: int | None,
                    progress: bool) -> tuple[list[RequestResult], float]:
    """Sends request i at times[i] (s) once a concurrency slot is free; (results, duration)."""
    slots = asyncio.Semaphore(concurrency or len(requests))
    label = f"concurrency {concurrency}" if concurrency else "unbounded"
    with tqdm(total=len(requests), desc=label, unit="req", disable=not progress,
              dynamic_ncols=True) as bar:
        started = time.perf_counter()

        async def one(index: int, request: BenchRequest, at: float) -> RequestResult:
            await asyncio.sleep(max(0.0, started + at - time.perf_counter()))
            arrived = time.perf_counter()
            async with slots:
                queue_time = time.perf_counter() - arrived
                result = await send(client, target, request, index, started)
            result.queue_time = queue_time
            bar.update(1)
            return result

        results = await asyncio.gather(*(one(i, r, at) for i, (r, at)
                                         in enumerate(zip(requests, times))))
        return list(results), time.perf_counter() - started


def accuracy(requests: list[BenchRequest], results: list[RequestResult]) -> dict | None:
    """Exact match of the synthetic tasks over the requests that succeeded, per task and in all."""
    per_task: dict[str, dict] = {}
    for request, result in zip(requests, results):
        if request.sample is None:
            continue
        cell = per_task.setdefault(request.sample.task, {"correct": 0, "scored": 0, "failed": 0})
        if result.success:
            cell["scored"] += 1
            cell["correct"] += bool(request.score(result.text))
        else:
            cell["failed"] += 1
    if not per_task:
        return None
    for cell in per_task.values():
        cell["exact_match"] = cell["correct"] / cell["scored"] if cell["scored"] else None
    correct = sum(c["correct"] for c in per_task.values())
    scored = sum(c["scored"] for c in per_task.values())
    return {"exact_match": correct / scored if scored else None, "correct": correct,
            "scored": scored, "failed": sum(c["failed"] for c in per_task.values()),
            "per_task": per_task}


def error_samples(results: list[RequestResult]) -> list[dict]:
    counts = Counter(r.error for r in results if not r.success)
    return [{"error": error, "count": n} for error, n in counts.most_common(MAX_ERROR_SAMPLES)]


def request_record(result: RequestResult) -> dict:
    return {"index": result.index, "success": result.success, "error": result.error,
            "prompt_tokens": result.prompt_tokens, "output_tokens": result.output_tokens,
            "start_s": result.start, "queue_time_s": result.queue_time, "ttft_s": result.ttft,
            "tpot_s": result.tpot, "latency_s": result.latency, "itl_s": result.itl,
            "text": result.text}


async def ready_check(client: httpx.AsyncClient, target: Target, request: BenchRequest):
    """One request of one token (vLLM's initial test run): fail before the clock, not during."""
    result = await send(client, target, request, -1, max_tokens=1)
    if not result.success:
        raise BenchError(f"the ready check against {target.url} failed: {result.error}")


async def run_benchmark(args) -> dict:
    """Runs every level; returns the result (JSON-ready, per-request records included)."""
    slos = dict(args.goodput or [])
    tokenizer = load_tokenizer(args.tokenizer)
    levels = args.max_concurrency or [None]
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    timeout = httpx.Timeout(args.request_timeout, connect=CONNECT_TIMEOUT, pool=None)
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=max(
        [c or args.num_prompts for c in levels]))
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        model = args.model or await discover_model(client, args.base_url, headers)
        extra = {"temperature": args.temperature}
        if args.ignore_eos:
            extra["ignore_eos"] = True
        target = Target(args.base_url, args.endpoint, model, args.api_key, extra)
        requests = build_requests(args, tokenizer)
        await ready_check(client, target, requests[0])
        if args.num_warmups:
            await asyncio.gather(*(send(client, target, requests[i % len(requests)], -1)
                                   for i in range(args.num_warmups)))
        runs = []
        for concurrency in levels:
            before = await prom.scrape(client, args.base_url, headers)
            times = send_times(len(requests), args.request_rate, args.burstiness, args.seed)
            results, duration = await run_level(client, target, requests, times, concurrency,
                                                not args.disable_tqdm)
            after = await prom.scrape(client, args.base_url, headers)
            runs.append({"max_concurrency": concurrency, **summarize(results, duration, slos),
                         "accuracy": accuracy(requests, results),
                         "server_metrics": prom.deltas(before, after),
                         "errors": error_samples(results),
                         "requests": [request_record(r) for r in results]})
    return {"model": model, "base_url": args.base_url, "endpoint": args.endpoint,
            "dataset": args.dataset, "num_prompts": len(requests),
            "request_rate": "inf" if math.isinf(args.request_rate) else args.request_rate,
            "burstiness": args.burstiness,
            "tokenizer": str(args.tokenizer) if is_exact(tokenizer) else
            f"none: lengths approximated at {CHARS_PER_TOKEN} characters per token",
            "mean_prompt_tokens_sent": sum(r.prompt_len for r in requests) / len(requests),
            "runs": runs}
