"""Aggregate metrics of a run, with `vllm bench serve`'s definitions (calculate_metrics).

- TTFT: the first streamed chunk with choices, minus the send time.
- ITL: every gap between successive chunks with choices, pooled over all requests.
- TPOT of a request: (latency - TTFT) / (output tokens - 1), only for requests of 2+ tokens.
- E2E latency: the last chunk with choices minus the send time (the trailing usage chunk does
  not count).
- Percentiles interpolate linearly between order statistics (numpy's default, as vLLM).
- Goodput: completed requests whose every SLO given is met (TTFT, TPOT, E2E; a request of one
  token has TPOT 0), per second of the run (DistServe's definition).
"""
from dataclasses import dataclass, field

import numpy as np

PERCENTILES = (50, 90, 99)
SLO_METRICS = ("ttft", "tpot", "e2el")


@dataclass
class RequestResult:
    index: int
    success: bool = False
    error: str = ""
    prompt_tokens: int = 0  # the server's usage count, else the dataset's estimate
    output_tokens: int = 0
    ttft: float = 0.0  # seconds
    latency: float = 0.0  # seconds, send to the last chunk with choices
    itl: list[float] = field(default_factory=list)  # seconds between chunks with choices
    start: float = 0.0  # send time, seconds after the run started
    queue_time: float = 0.0  # seconds spent waiting for a --max-concurrency slot
    text: str = ""

    @property
    def tpot(self) -> float | None:
        if self.output_tokens < 2:
            return None
        return (self.latency - self.ttft) / (self.output_tokens - 1)


def distribution(values_s: list[float], percentiles=PERCENTILES) -> dict[str, float]:
    """mean, median, std and percentiles, in milliseconds (zeros when there are no values)."""
    values = np.asarray(values_s, dtype=float) * 1000.0
    if values.size == 0:
        values = np.zeros(1)
    out = {"mean": float(values.mean()), "median": float(np.median(values)),
           "std": float(values.std())}
    out.update({f"p{p:g}": float(np.percentile(values, p)) for p in percentiles})
    return out


def parse_slo(item: str) -> tuple[str, float]:
    """'ttft:500' -> ('ttft', 500.0): an SLO in milliseconds."""
    name, sep, value = item.partition(":")
    try:
        ms = float(value)
    except ValueError:
        ms = -1.0
    if not sep or name not in SLO_METRICS or not ms >= 0:
        raise ValueError(f"bad SLO {item!r}: use NAME:MS with NAME one of "
                         f"{', '.join(SLO_METRICS)} and MS >= 0")
    return name, ms


def meets_slos(result: RequestResult, slos: dict[str, float]) -> bool:
    measured = {"ttft": result.ttft, "tpot": result.tpot or 0.0, "e2el": result.latency}
    return all(measured[name] * 1000.0 <= limit for name, limit in slos.items())


def max_concurrent(results: list[RequestResult]) -> int:
    """Most requests in flight at once (sweep over [start, start + latency) intervals)."""
    events = []
    for r in results:
        if r.success:
            events += [(r.start, 1), (r.start + r.latency, -1)]
    level = peak = 0
    for _, step in sorted(events):  # at equal times an end (-1) sorts before a start
        level += step
        peak = max(peak, level)
    return peak


def summarize(results: list[RequestResult], duration: float, slos: dict[str, float] | None = None,
              percentiles=PERCENTILES) -> dict:
    done = [r for r in results if r.success]
    input_tokens = sum(r.prompt_tokens for r in done)
    output_tokens = sum(r.output_tokens for r in done)
    summary = {
        "completed": len(done),
        "failed": len(results) - len(done),
        "duration_s": duration,
        "total_input_tokens": input_tokens,
        "total_output_tokens": output_tokens,
        "request_throughput": len(done) / duration,
        "output_throughput": output_tokens / duration,
        "total_token_throughput": (input_tokens + output_tokens) / duration,
        "max_concurrent_requests": max_concurrent(results),
        "ttft_ms": distribution([r.ttft for r in done], percentiles),
        "tpot_ms": distribution([t for r in done if (t := r.tpot) is not None], percentiles),
        "itl_ms": distribution([gap for r in done for gap in r.itl], percentiles),
        "e2el_ms": distribution([r.latency for r in done], percentiles),
        "client_queue_time_ms": distribution([r.queue_time for r in done], percentiles),
    }
    if slos:
        good = sum(meets_slos(r, slos) for r in done)
        summary.update(goodput_slos_ms=slos, good_requests=good, request_goodput=good / duration)
    return summary
