"""The server's /metrics before and after a run, and the engine-side deltas between them.

Names are vLLM's (so a vLLM server reports the same fields) plus ShadowKV's. A metric the server
does not export is reported as None and listed under `missing`; a server without /metrics gives
`available: false`. The ShadowKV hit rate of the run needs the chunk counters; a server that only
exports the since-start gauge gets that gauge, labelled so.
"""
import httpx
from prometheus_client.parser import text_string_to_metric_families

PREEMPTIONS = "vllm:num_preemptions_total"
PROMPT_TOKENS = "vllm:prompt_tokens_total"
GENERATION_TOKENS = "vllm:generation_tokens_total"
CPU_BYTES = "shadowkv:cpu_bytes_fetched_total"
CHUNK_HITS = "shadowkv:chunk_hits_total"
CHUNKS_SELECTED = "shadowkv:chunks_selected_total"
HIT_RATE_GAUGE = "shadowkv:hit_rate"
QUEUE_SUM = "vllm:request_queue_time_seconds_sum"
QUEUE_COUNT = "vllm:request_queue_time_seconds_count"


def parse(text: str) -> dict[str, float]:
    """Samples by name, summed over label sets; `_created` timestamps dropped."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.endswith("_created"):
                totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


async def scrape(client: httpx.AsyncClient, base_url: str,
                 headers: dict[str, str]) -> dict[str, float] | str:
    """The samples, or the reason there are none."""
    try:
        response = await client.get(base_url.rstrip("/") + "/metrics", headers=headers,
                                    timeout=30)
    except httpx.HTTPError as e:
        return f"{type(e).__name__}: {e}"
    if response.status_code != 200:
        return f"HTTP {response.status_code} from /metrics"
    try:
        return parse(response.text)
    except ValueError as e:
        return f"/metrics is not Prometheus text: {e}"


def deltas(before: dict[str, float] | str, after: dict[str, float] | str) -> dict:
    if isinstance(before, str) or isinstance(after, str):
        return {"available": False,
                "error": before if isinstance(before, str) else after}
    missing = []

    def delta(name: str) -> float | None:
        if name in before and name in after:
            return after[name] - before[name]
        missing.append(name)
        return None

    out = {"available": True, "preemptions": delta(PREEMPTIONS),
           "prompt_tokens": delta(PROMPT_TOKENS), "generation_tokens": delta(GENERATION_TOKENS),
           "cpu_bytes_fetched": delta(CPU_BYTES)}
    if CHUNK_HITS in after and CHUNKS_SELECTED in after:
        hits, selected = delta(CHUNK_HITS), delta(CHUNKS_SELECTED)
        out["shadowkv_hit_rate"] = hits / selected if selected else None
        out["shadowkv_hit_rate_scope"] = "run"
    elif HIT_RATE_GAUGE in after:
        out["shadowkv_hit_rate"] = after[HIT_RATE_GAUGE]
        out["shadowkv_hit_rate_scope"] = "since server start"
    else:
        out["shadowkv_hit_rate"] = None
        missing.append(CHUNK_HITS)
    queued, count = delta(QUEUE_SUM), delta(QUEUE_COUNT)
    out["mean_queue_time_ms"] = 1000 * queued / count if queued is not None and count else None
    out["missing"] = missing
    out["counters"] = {name: after[name] - before[name] for name in sorted(after)
                       if name in before and name.endswith(("_total", "_sum", "_count"))
                       and after[name] != before[name]}
    return out
