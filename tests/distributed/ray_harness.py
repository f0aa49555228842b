"""Two engine replicas on a local Ray cluster behind the real server on 127.0.0.1, and the
per-replica reading of /metrics. Builds on tests/server/server_harness.py."""
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).parents[1] / "server"))

from server_harness import (START_TIMEOUT, engine_config, is_healthy,  # noqa: E402
                            serve_app_in_thread, wait_until)

from server.app import build_app  # noqa: E402
from server.options import ServerOptions  # noqa: E402
from shadowkv_engine.default_model import DEFAULT_MODEL_DIR  # noqa: E402

REPLICAS = 2
__all__ = ["REPLICAS", "START_TIMEOUT", "is_healthy", "replica_samples", "serve_replicas",
           "wait_until"]


@contextmanager
def serve_replicas(replicas: int = REPLICAS, **engine_options) -> Iterator[tuple[str, object]]:
    """The embedded model on `replicas` CPU replicas (the Ray cluster already running); yields
    the base URL and the app's router, for tests that reach past HTTP (to kill a replica)."""
    app = build_app(engine_config(DEFAULT_MODEL_DIR, **engine_options),
                    options=ServerOptions(data_parallel_size=replicas, distributed_backend="ray"))
    with serve_app_in_thread(app) as base_url:
        yield base_url, app.state.server.engine


def replica_samples(base_url: str, name: str) -> dict[str, float]:
    """One /metrics sample per replica label, for a metric name as exposed (counters: `_total`)."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    return {sample.labels["replica"]: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.name == name and "replica" in sample.labels}
