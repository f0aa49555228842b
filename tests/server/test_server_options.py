"""`shadowkv serve` flags for API keys, CORS and request limits."""
import pytest

from server.options import API_KEY_ENV, ServerOptions, server_options
from shadowkv_engine.cli import build_parser
from shadowkv_engine.errors import InvalidRequestError


def options_of(*argv) -> ServerOptions:
    return server_options(build_parser().parse_args(["serve", *argv]))


def test_defaults_mean_no_key_no_cors_and_the_documented_limits(monkeypatch):
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    assert options_of() == ServerOptions()
    assert ServerOptions().api_keys == () and ServerOptions().allowed_origins == ()
    assert ServerOptions().max_request_body_bytes == 16 * 1024 * 1024


def test_keys_repeat_or_come_comma_separated_from_the_environment(monkeypatch):
    monkeypatch.setenv(API_KEY_ENV, "env-a, env-b")
    assert options_of().api_keys == ("env-a", "env-b")
    assert options_of("--api-key", "a", "--api-key", "b,c").api_keys == ("a", "b", "c")


def test_cors_and_limit_flags():
    options = options_of("--allowed-origins", "https://a.example,https://b.example",
                         "--allowed-methods", "GET", "--allowed-methods", "POST",
                         "--max-request-body-bytes", "1000", "--max-n", "4",
                         "--max-batch-prompts", "2", "--max-stop-strings", "3",
                         "--max-stop-string-chars", "5")
    assert options.allowed_origins == ("https://a.example", "https://b.example")
    assert options.allowed_methods == ("GET", "POST") and options.allowed_headers == ("*",)
    assert (options.max_request_body_bytes, options.max_n, options.max_batch_prompts,
            options.max_stop_strings, options.max_stop_string_chars) == (1000, 4, 2, 3, 5)


def test_a_limit_below_one_is_refused_by_name():
    with pytest.raises(InvalidRequestError, match="max_n"):
        options_of("--max-n", "0")
