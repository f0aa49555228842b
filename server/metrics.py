"""Prometheus metrics under vLLM's names (dashboards built for vLLM work unchanged), plus ShadowKV's.

Gauges and counters the engine keeps are read from `engine.stats()` at scrape time, so they can
never drift from the engine. Latency histograms and finished-request counts are observed here,
per request, as the server sees them. Each app has its own registry: several servers in one
process (tests, Ray replicas) do not share or collide on metrics.
"""
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from shadowkv_engine.outputs import RequestOutput

# vLLM's bucket boundaries, so histograms from both servers can be compared bucket by bucket.
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
               120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)


class EngineStatsCollector:
    """Turns `EngineStats` snapshots into metric families at each scrape: one engine's, or, behind
    a data-parallel router, one sample per replica under the same names with a `replica` label
    (a replica that is down has no samples; one that restarted counts again from zero, which
    Prometheus reads as a counter reset)."""

    def __init__(self, state, model_name: str):
        self.state = state
        self.model_name = model_name

    def collect(self):
        engine = self.state.engine
        if engine is None:  # still loading: nothing to report yet
            return
        replica_stats = getattr(engine, "replica_stats", None)
        if replica_stats is None:
            label_names, snapshots = ["model_name"], [([self.model_name], engine.stats())]
        else:
            label_names = ["model_name", "replica"]
            snapshots = [([self.model_name, replica], stats)
                         for replica, stats in replica_stats().items() if stats is not None]

        def family(kind, name, doc, value):
            metric = kind(name, doc, labels=label_names)
            for labels, stats in snapshots:
                metric.add_metric(labels, value(stats))
            return metric

        def gauge(name, doc, value):
            return family(GaugeMetricFamily, name, doc, value)

        def counter(name, doc, value):
            return family(CounterMetricFamily, name, doc, value)

        yield gauge("vllm:num_requests_running", "Requests in the running batch.",
                    lambda s: s.num_running)
        yield gauge("vllm:num_requests_waiting", "Requests waiting to be scheduled.",
                    lambda s: s.num_waiting)
        yield gauge("vllm:kv_cache_usage_perc", "Fraction of GPU KV blocks in use (0-1).",
                    lambda s: s.gpu_usage)
        # The pre-V1 name of the same gauge, still used by many dashboards.
        yield gauge("vllm:gpu_cache_usage_perc", "Fraction of GPU KV blocks in use (0-1).",
                    lambda s: s.gpu_usage)
        yield gauge("shadowkv:cpu_kv_usage_perc",
                    "Fraction of the CPU value pool (offloaded ShadowKV values) in use (0-1).",
                    lambda s: s.cpu_usage)
        yield gauge("shadowkv:gpu_value_usage_perc",
                    "Fraction of the value store's GPU-memory pages in use (0-1; 0 without them).",
                    lambda s: s.gpu_value_usage)
        yield gauge("shadowkv:hit_rate",
                    "Fraction of selected chunks already resident on the GPU, since start.",
                    lambda s: s.shadowkv_hit_rate)
        yield counter("vllm:prompt_tokens", "Prompt tokens processed (prefill).",
                      lambda s: s.prompt_tokens_total)
        yield counter("vllm:generation_tokens", "Tokens generated.",
                      lambda s: s.generation_tokens_total)
        yield counter("vllm:num_preemptions", "Preemptions (recompute) of running requests.",
                      lambda s: s.num_preemptions_total)
        yield counter("shadowkv:cpu_bytes_fetched",
                      "Value bytes gathered from the CPU store (over PCIe).",
                      lambda s: s.cpu_bytes_fetched_total)
        yield counter("shadowkv:chunks_selected",
                      "Chunk selections over all decode steps (sequences x layers x KV heads).",
                      lambda s: s.shadowkv_chunks_selected_total)
        yield counter("shadowkv:chunk_hits",
                      "Selected chunks already on the GPU from the step before (no fetch).",
                      lambda s: s.shadowkv_chunk_hits_total)
        if replica_stats is not None:
            yield from self._replicas(engine)

    def _replicas(self, router):
        up = GaugeMetricFamily("shadowkv:replica_up",
                               "1 while the replica takes requests, 0 while down or starting.",
                               labels=["model_name", "replica"])
        for replica, state in router.replica_states().items():
            up.add_metric([self.model_name, replica], 1.0 if state == "ready" else 0.0)
        yield up
        routed = CounterMetricFamily("shadowkv:replica_requests",
                                     "Engine requests the router sent to the replica (over its "
                                     "restarts).", labels=["model_name", "replica"])
        for replica, count in router.replica_requests().items():
            routed.add_metric([self.model_name, replica], count)
        yield routed


class ServerMetrics:
    def __init__(self, state, model_name: str):
        self.registry = CollectorRegistry()
        self.model_name = model_name
        self.registry.register(EngineStatsCollector(state, model_name))
        self.ttft = Histogram("vllm:time_to_first_token_seconds",
                              "Time from request arrival to its first generated token.",
                              ["model_name"], buckets=TTFT_BUCKETS, registry=self.registry)
        self.e2e = Histogram("vllm:e2e_request_latency_seconds",
                             "Time from request arrival to its last token.",
                             ["model_name"], buckets=E2E_BUCKETS, registry=self.registry)
        self.queue = Histogram("vllm:request_queue_time_seconds",
                               "Time from request arrival to its first engine step.",
                               ["model_name"], buckets=E2E_BUCKETS, registry=self.registry)
        self.success = Counter("vllm:request_success", "Requests that finished in the engine.",
                               ["model_name", "finished_reason"], registry=self.registry)

    def observe_first_token(self, seconds: float):
        self.ttft.labels(self.model_name).observe(seconds)

    def observe_finished(self, output: RequestOutput, seconds: float):
        self.e2e.labels(self.model_name).observe(seconds)
        timing = output.metrics
        if timing is not None and timing.first_scheduled_time is not None:
            self.queue.labels(self.model_name).observe(
                max(0.0, timing.first_scheduled_time - timing.arrival_time))
        # One count per choice: vLLM runs each of the n choices as its own request.
        for choice in output.outputs:
            self.success.labels(self.model_name, choice.finish_reason).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
