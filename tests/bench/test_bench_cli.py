"""`bench serve` registers itself on the `shadowkv` command's subparsers."""
import argparse

import pytest

from shadowkv_engine.bench.cli import add_parser, redacted_command, run


@pytest.fixture
def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shadowkv")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def test_bench_serve_options(parser):
    args = parser.parse_args(["bench", "serve", "--max-concurrency", "1", "4", "16",
                              "--goodput", "ttft:500", "tpot:50", "--endpoint",
                              "/v1/chat/completions", "--synthetic-length", "32k"])
    assert args.func is run and args.max_concurrency == [1, 4, 16]
    assert args.goodput == [("ttft", 500.0), ("tpot", 50.0)] and args.endpoint == "chat"
    assert args.synthetic_length == 32768 and args.request_rate == float("inf")


@pytest.mark.parametrize("argv", [["bench"], ["bench", "serve", "--goodput", "ttft"],
                                  ["bench", "serve", "--tasks", "nope"],
                                  ["bench", "serve", "--endpoint", "embeddings"]])
def test_bad_command_lines_are_usage_errors(parser, argv):
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(argv)
    assert exit_.value.code == 2


def test_api_key_is_hidden_in_the_recorded_command():
    assert redacted_command(["shadowkv", "--api-key", "s3", "--api-key=s4", "--seed", "1"]) == \
        "shadowkv --api-key <set> --api-key=<set> --seed 1"
