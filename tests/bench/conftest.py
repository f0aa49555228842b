"""Fixtures: the real server (uvicorn, the engine, the embedded trained model on the CPU) on
127.0.0.1, started the way the server tests start it."""
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from server_harness import engine_config, serve_in_thread  # noqa: E402

from shadowkv_engine.default_model import DEFAULT_MODEL_DIR, DEFAULT_MODEL_NAME  # noqa: E402


@pytest.fixture(scope="module")
def model_server() -> Iterator[str]:
    config = engine_config(DEFAULT_MODEL_DIR, served_model_name=DEFAULT_MODEL_NAME)
    with serve_in_thread(config) as url:
        yield url
