"""Ray stays optional: nothing imports it unless replicas are asked for, the flags are checked
before anything loads, and a missing Ray is named with the command that installs it."""
import importlib.util
import re
import subprocess
import sys

import pytest

from server.options import ServerOptions
from shadowkv_engine.cli import build_parser
from shadowkv_engine.distributed import RAY_INSTALL_HINT, require_ray
from shadowkv_engine.errors import InvalidRequestError


def options(*argv: str) -> ServerOptions:
    from server.options import server_options

    return server_options(build_parser().parse_args(["serve", *argv]))


def test_the_engine_and_the_single_replica_server_do_not_import_ray():
    code = ("import sys, server.app, server.launch, shadowkv_engine.engine.async_engine, "
            "shadowkv_engine.distributed, shadowkv_engine.cli; "
            "assert 'ray' not in sys.modules, 'ray imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def ray_installed(monkeypatch, installed: bool):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: (
        (object() if installed else None) if name == "ray" else real_find_spec(name, *args)))


def test_data_parallel_flags(monkeypatch):
    assert options() == ServerOptions()
    ray_installed(monkeypatch, True)
    parsed = options("--data-parallel-size", "2", "--distributed-backend", "ray",
                     "--ray-address", "auto")
    assert (parsed.data_parallel_size, parsed.distributed_backend,
            parsed.ray_address) == (2, "ray", "auto")
    with pytest.raises(InvalidRequestError, match="--distributed-backend ray"):
        options("--data-parallel-size", "2")
    with pytest.raises(InvalidRequestError, match="--distributed-backend ray"):
        options("--ray-address", "auto")
    with pytest.raises(InvalidRequestError, match="at least 1"):
        options("--data-parallel-size", "0")


def test_asking_for_ray_without_it_says_how_to_install_it(monkeypatch):
    ray_installed(monkeypatch, False)
    with pytest.raises(InvalidRequestError, match=re.escape(RAY_INSTALL_HINT)):
        options("--data-parallel-size", "2", "--distributed-backend", "ray")
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if not installed
    with pytest.raises(ImportError, match=re.escape(RAY_INSTALL_HINT)):
        require_ray()
