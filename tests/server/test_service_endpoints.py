"""/health, /v1/models, /version and /metrics, as load balancers and Prometheus read them."""
import httpx
from prometheus_client.parser import text_string_to_metric_families
from server_harness import MODEL_NAME, metrics

from shadowkv_engine import __version__

VLLM_GAUGES = ["vllm:num_requests_running", "vllm:num_requests_waiting",
               "vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"]
SHADOWKV_GAUGES = ["shadowkv:cpu_kv_usage_perc", "shadowkv:gpu_value_usage_perc",
                   "shadowkv:hit_rate"]
COUNTERS = ["vllm:prompt_tokens", "vllm:generation_tokens", "vllm:num_preemptions",
            "vllm:request_success", "shadowkv:cpu_bytes_fetched"]
HISTOGRAMS = ["vllm:time_to_first_token_seconds", "vllm:e2e_request_latency_seconds",
              "vllm:request_queue_time_seconds"]


def test_health_and_version(base_url):
    assert httpx.get(f"{base_url}/health", timeout=10).status_code == 200
    assert httpx.get(f"{base_url}/version", timeout=10).json() == {"version": __version__}


def test_models_lists_the_served_model_with_its_context_length(base_url, client):
    [model] = client.models.list().data
    assert model.id == MODEL_NAME
    card = httpx.get(f"{base_url}/v1/models", timeout=10).json()["data"][0]
    assert card["max_model_len"] == 2048


def test_metrics_use_vllm_names_and_count_requests(base_url, client):
    response = httpx.get(f"{base_url}/metrics", timeout=10)
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f.type for f in text_string_to_metric_families(response.text)}
    assert all(families[name] == "gauge" for name in VLLM_GAUGES + SHADOWKV_GAUGES)
    assert all(families[name] == "counter" for name in COUNTERS)
    assert all(families[name] == "histogram" for name in HISTOGRAMS)

    before = metrics(base_url)
    completion = client.completions.create(model=MODEL_NAME, prompt="Count me", max_tokens=5,
                                           temperature=0.0, extra_body={"ignore_eos": True})
    after = metrics(base_url)

    def grew(name):
        return after[name] - before.get(name, 0.0)

    assert grew("vllm:prompt_tokens_total") == completion.usage.prompt_tokens
    assert grew("vllm:generation_tokens_total") == 5
    assert grew("vllm:request_success_total") == 1
    assert grew("vllm:time_to_first_token_seconds_count") == 1
    assert grew("vllm:e2e_request_latency_seconds_count") == 1
    assert grew("vllm:request_queue_time_seconds_count") == 1  # what `bench serve` reads
    assert 0 <= grew("vllm:request_queue_time_seconds_sum") <= grew(
        "vllm:e2e_request_latency_seconds_sum")
    assert after["vllm:num_requests_running"] == 0
