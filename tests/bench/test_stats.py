"""Run metrics against numbers computed by hand, with vLLM's definitions."""
import pytest

from shadowkv_engine.bench.stats import (RequestResult, distribution, max_concurrent, parse_slo,
                                         summarize)


def done(index, ttft, latency, output_tokens, itl=(), start=0.0, prompt_tokens=10):
    return RequestResult(index, success=True, prompt_tokens=prompt_tokens,
                         output_tokens=output_tokens, ttft=ttft, latency=latency, itl=list(itl),
                         start=start)


def test_distribution_is_in_ms_with_linear_percentiles():
    d = distribution([1.0, 2.0, 3.0, 4.0])
    assert d["mean"] == pytest.approx(2500) and d["median"] == pytest.approx(2500)
    assert d["p50"] == pytest.approx(2500)
    assert d["p90"] == pytest.approx(3700)  # rank 0.9 * 3 = 2.7: 3 s + 0.7 s
    assert d["p99"] == pytest.approx(3970)
    assert d["std"] == pytest.approx(1118.034, abs=1e-3)  # population std, as numpy's default
    assert distribution([])["p99"] == 0.0


def test_tpot_excludes_the_first_token_and_one_token_requests():
    assert done(0, 0.2, 1.0, 5).tpot == pytest.approx(0.2)  # (1.0 - 0.2) / (5 - 1)
    assert done(0, 0.2, 0.2, 1).tpot is None


def test_summary_throughputs_latencies_and_pooled_itl():
    results = [done(0, 0.1, 0.5, 5, itl=[0.1, 0.1, 0.1, 0.1], prompt_tokens=100),
               done(1, 0.3, 0.3, 1, prompt_tokens=50),
               RequestResult(2, error="HTTP 503 Service Unavailable: busy", prompt_tokens=70)]
    s = summarize(results, duration=2.0)
    assert (s["completed"], s["failed"]) == (2, 1)
    assert (s["total_input_tokens"], s["total_output_tokens"]) == (150, 6)  # failures excluded
    assert s["request_throughput"] == pytest.approx(1.0)
    assert s["output_throughput"] == pytest.approx(3.0)
    assert s["total_token_throughput"] == pytest.approx(78.0)
    assert s["ttft_ms"]["mean"] == pytest.approx(200)
    assert s["tpot_ms"]["mean"] == pytest.approx(100)  # only the 5-token request has a TPOT
    assert s["itl_ms"]["median"] == pytest.approx(100)
    assert s["e2el_ms"]["mean"] == pytest.approx(400)
    assert "request_goodput" not in s


def test_goodput_counts_requests_meeting_every_slo():
    results = [done(0, 0.1, 0.9, 5),  # TPOT 200 ms: misses tpot:50
               done(1, 0.1, 0.3, 5),  # TPOT 50 ms, TTFT 100 ms: meets both (limits inclusive)
               done(2, 0.6, 0.6, 1),  # TTFT 600 ms: misses ttft:500
               done(3, 0.4, 0.4, 1),  # one token: TPOT counts as 0, meets both
               RequestResult(4, error="timeout")]
    s = summarize(results, duration=4.0, slos={"ttft": 500.0, "tpot": 50.0})
    assert s["good_requests"] == 2 and s["request_goodput"] == pytest.approx(0.5)
    s = summarize(results, duration=4.0, slos={"e2el": 400.0})
    assert s["good_requests"] == 2  # requests 1 and 3


def test_peak_concurrency_sweeps_the_request_intervals():
    results = [done(0, 0.1, 1.0, 2, start=0.0), done(1, 0.1, 1.0, 2, start=0.5),
               done(2, 0.1, 1.0, 2, start=1.0),  # starts as request 0 ends
               done(3, 0.1, 0.2, 2, start=0.6)]
    assert max_concurrent(results) == 3


@pytest.mark.parametrize("item", ["ttft", "ttft:", "ttft:abc", "latency:5", "tpot:-1"])
def test_bad_slos_are_refused(item):
    with pytest.raises(ValueError, match="NAME:MS"):
        parse_slo(item)


def test_slo_parses_to_milliseconds():
    assert parse_slo("tpot:12.5") == ("tpot", 12.5)
