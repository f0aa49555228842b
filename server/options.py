"""What the HTTP server enforces on top of the engine: API keys, CORS, and request size limits.

Every limit has a default that no ordinary client reaches and that keeps one request from
taking the server from everyone else; each is a `shadowkv serve` flag.
"""
import argparse
import os
from dataclasses import dataclass

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

    def __post_init__(self):
        for name in LIMITS:
            if getattr(self, name) < 1:
                raise InvalidRequestError(f"{name} must be at least 1, got "
                                          f"{getattr(self, name)}", param=name)
        if any(not key for key in self.api_keys):
            raise InvalidRequestError("an API key must not be empty", param="api_keys")


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


def server_options(args: argparse.Namespace) -> ServerOptions:
    keys = split_list(args.api_key) or split_list([os.environ.get(API_KEY_ENV, "")])
    cors = {f"allowed_{name}": split_list(getattr(args, f"allowed_{name}"))
            for name in ("origins", "methods", "headers")}
    return ServerOptions(api_keys=keys, **{k: v for k, v in cors.items() if v},
                         **{name: getattr(args, name) for name in LIMITS})


def split_list(values: list[str] | None) -> tuple[str, ...]:
    """Flag values that may repeat and may each hold several comma-separated items."""
    return tuple(item.strip() for value in values or () for item in value.split(",")
                 if item.strip())
