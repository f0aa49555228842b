"""Engine-side deltas from two /metrics scrapes."""
from shadowkv_engine.bench.prom import deltas, parse

BEFORE = """# TYPE vllm:num_preemptions counter
vllm:num_preemptions_total{model_name="m"} 2.0
vllm:num_preemptions_created{model_name="m"} 1.7e9
# TYPE vllm:prompt_tokens counter
vllm:prompt_tokens_total{model_name="m"} 100.0
# TYPE vllm:generation_tokens counter
vllm:generation_tokens_total{model_name="m"} 10.0
# TYPE shadowkv:cpu_bytes_fetched counter
shadowkv:cpu_bytes_fetched_total{model_name="m"} 1000.0
# TYPE shadowkv:hit_rate gauge
shadowkv:hit_rate{model_name="m"} 0.5
"""


def test_deltas_of_our_server_metrics():
    later = (BEFORE.replace("_total{model_name=\"m\"} 2.0", "_total{model_name=\"m\"} 3.0")
             .replace("} 100.0", "} 612.0").replace("} 10.0", "} 42.0")
             .replace("} 1000.0", "} 5096.0").replace("} 0.5", "} 0.75"))
    d = deltas(parse(BEFORE), parse(later))
    assert d["available"] and d["preemptions"] == 1 and d["prompt_tokens"] == 512
    assert d["generation_tokens"] == 32 and d["cpu_bytes_fetched"] == 4096
    assert d["shadowkv_hit_rate"] == 0.75 and d["shadowkv_hit_rate_scope"] == "since server start"
    assert d["mean_queue_time_ms"] is None
    assert "vllm:request_queue_time_seconds_sum" in d["missing"]
    assert "vllm:num_preemptions_created" not in d["counters"]


def test_hit_rate_and_queue_time_of_the_run_from_counters():
    extra = """# TYPE shadowkv:chunk_hits counter
shadowkv:chunk_hits_total {hits}
# TYPE shadowkv:chunks_selected counter
shadowkv:chunks_selected_total {selected}
# TYPE vllm:request_queue_time_seconds histogram
vllm:request_queue_time_seconds_bucket{{le="+Inf"}} {count}
vllm:request_queue_time_seconds_sum {total}
vllm:request_queue_time_seconds_count {count}
"""
    before = parse(BEFORE + extra.format(hits=10, selected=20, count=1, total=0.5))
    later = parse(BEFORE + extra.format(hits=40, selected=60, count=5, total=1.3))
    d = deltas(before, later)
    assert d["shadowkv_hit_rate"] == 0.75 and d["shadowkv_hit_rate_scope"] == "run"
    assert abs(d["mean_queue_time_ms"] - 200.0) < 1e-9 and d["missing"] == []


def test_server_without_metrics():
    d = deltas("HTTP 404 from /metrics", {})
    assert d == {"available": False, "error": "HTTP 404 from /metrics"}
