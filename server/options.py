"""What the HTTP server enforces on top of the engine: API keys, CORS, and request size limits.

Every limit has a default that no ordinary client reaches and that keeps one request from
taking the server from everyone else; each is a `shadowkv serve` flag.
"""
import argparse
import importlib.util
import os
from dataclasses import dataclass

from shadowkv_engine.distributed import RAY_INSTALL_HINT  # the package imports no Ray
from shadowkv_engine.errors import InvalidRequestError

API_KEY_ENV = "SHADOWKV_API_KEY"


@dataclass(frozen=True)
class ServerOptions:
    # Bearer keys accepted on /v1/*; empty: no authentication (/health and /metrics stay open).
    api_keys: tuple[str, ...] = ()
    # CORS is off unless origins are given; methods and headers then default to all, as in vLLM.
    allowed_origins: tuple[str, ...] = ()
    allowed_methods: tuple[str, ...] = ("*",)
    allowed_headers: tuple[str, ...] = ("*",)
    # 16 MiB holds a 1M-token prompt as text or as token ids; the body is refused before it is
    # read (Content-Length) or as soon as the bytes received pass the limit.
    max_request_body_bytes: int = 16 * 1024 * 1024
    max_n: int = 16  # choices per prompt; each is a sequence in the running batch
    max_batch_prompts: int = 64  # prompts in one /v1/completions request
    max_stop_strings: int = 16
    max_stop_string_chars: int = 256  # each one; the engine holds back this much text
    # Engine replicas behind this server (docs/distributed.md); more than one needs a backend.
    data_parallel_size: int = 1
    distributed_backend: str | None = None  # None: the engine runs in this process; "ray"
    ray_address: str | None = None  # None: a local Ray started on demand; "auto": this node's

    def __post_init__(self):
        for name in LIMITS:
            if getattr(self, name) < 1:
                raise InvalidRequestError(f"{name} must be at least 1, got "
                                          f"{getattr(self, name)}", param=name)
        if any(not key for key in self.api_keys):
            raise InvalidRequestError("an API key must not be empty", param="api_keys")
        if self.data_parallel_size < 1:
            raise InvalidRequestError(f"data_parallel_size must be at least 1, got "
                                      f"{self.data_parallel_size}", param="data_parallel_size")
        if self.distributed_backend not in DISTRIBUTED_BACKENDS:
            raise InvalidRequestError(f"distributed_backend must be one of "
                                      f"{DISTRIBUTED_BACKENDS}, got {self.distributed_backend!r}",
                                      param="distributed_backend")
        if self.data_parallel_size > 1 and self.distributed_backend is None:
            raise InvalidRequestError("--data-parallel-size above 1 needs --distributed-backend "
                                      "ray", param="data_parallel_size")
        if self.ray_address is not None and self.distributed_backend != "ray":
            raise InvalidRequestError("--ray-address needs --distributed-backend ray",
                                      param="ray_address")
        if self.distributed_backend == "ray" and importlib.util.find_spec("ray") is None:
            raise InvalidRequestError(f"--distributed-backend ray needs Ray, which is not "
                                      f"installed: {RAY_INSTALL_HINT}",
                                      param="distributed_backend")


DISTRIBUTED_BACKENDS = (None, "ray")

LIMITS = {
    "max_request_body_bytes": "larger bodies get 413 before they are read",
    "max_n": "most choices (n) per prompt",
    "max_batch_prompts": "most prompts in one /v1/completions request",
    "max_stop_strings": "most stop strings per request",
    "max_stop_string_chars": "longest stop string, in characters",
}


def add_server_args(parser: argparse.ArgumentParser):
    defaults = ServerOptions()
    group = parser.add_argument_group("access and limits")
    group.add_argument("--api-key", action="append", metavar="KEY",
                       help=f"require 'Authorization: Bearer KEY' on /v1/* (repeat for several "
                            f"keys); default: ${API_KEY_ENV} (comma-separated), else no key")
    for name, what in (("origins", "origins allowed to call the API from a browser (CORS; "
                                   "repeatable or comma-separated); default: none, CORS off"),
                       ("methods", "with --allowed-origins: methods allowed (default: *)"),
                       ("headers", "with --allowed-origins: headers allowed (default: *)")):
        group.add_argument(f"--allowed-{name}", action="append", metavar="ITEM", help=what)
    for name, what in LIMITS.items():
        group.add_argument("--" + name.replace("_", "-"), type=int, metavar="N",
                           default=getattr(defaults, name),
                           help=f"{what} (default: {getattr(defaults, name)})")
    group = parser.add_argument_group("data parallelism (docs/distributed.md)")
    group.add_argument("--data-parallel-size", type=int, default=defaults.data_parallel_size,
                       metavar="N", help="engine replicas, one per GPU (or CPU) of the cluster, "
                                         "behind this server (default: 1)")
    group.add_argument("--distributed-backend", choices=["ray"], default=None,
                       help="runs the replicas as Ray actors (needs: "
                            f"{RAY_INSTALL_HINT}); default: one engine in this process")
    group.add_argument("--ray-address", metavar="ADDR", default=None,
                       help="Ray cluster to join ('auto': the one this node joined with `ray "
                            "start`); default: start a local one")


def server_options(args: argparse.Namespace) -> ServerOptions:
    keys = split_list(args.api_key) or split_list([os.environ.get(API_KEY_ENV, "")])
    cors = {f"allowed_{name}": split_list(getattr(args, f"allowed_{name}"))
            for name in ("origins", "methods", "headers")}
    return ServerOptions(api_keys=keys, **{k: v for k, v in cors.items() if v},
                         **{name: getattr(args, name) for name in LIMITS},
                         data_parallel_size=args.data_parallel_size,
                         distributed_backend=args.distributed_backend,
                         ray_address=args.ray_address)


def split_list(values: list[str] | None) -> tuple[str, ...]:
    """Flag values that may repeat and may each hold several comma-separated items."""
    return tuple(item.strip() for value in values or () for item in value.split(",")
                 if item.strip())
