"""Fixtures: the demo checkpoint, one server per test module, an `openai` client for it."""
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from server_harness import HTTP_TIMEOUT, engine_config, serve_in_thread

from shadowkv_engine.demo_model import ensure_demo_model


@pytest.fixture(scope="session")
def demo_model(tmp_path_factory) -> Path:
    return ensure_demo_model(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def base_url(demo_model) -> Iterator[str]:
    with serve_in_thread(engine_config(demo_model)) as url:
        yield url


@pytest.fixture
def client(base_url) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", timeout=HTTP_TIMEOUT,
                         max_retries=0)


def pytest_configure(config):
    config.addinivalue_line("markers", "fuzz: random requests against a running server "
                                       "(run alone with -m fuzz)")
