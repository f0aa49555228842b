"""`shadowkv bench serve`: load-test an OpenAI-compatible server (ours, vLLM, SGLang), with
`vllm bench serve`'s options, metrics and console summary.

    shadowkv bench serve --base-url http://127.0.0.1:8000 --dataset long-32k \\
        --random-output-len 128 --num-prompts 64 --max-concurrency 1 4 8 16 --ignore-eos \\
        --tokenizer PATH --goodput ttft:2000 tpot:100 --save-result --plot

    shadowkv bench serve --dataset synthetic --tasks passkey,niah_single --synthetic-length 4k

Prompt lengths are exact in the tokens of --tokenizer (the served model's checkpoint folder);
without it they are approximated from characters. Token counts come from the server's usage.
Also runnable as `python benchmarks/serve.py ...`.
"""
import argparse
import asyncio
import datetime
import importlib.util
import json
import logging
import math
import os
import sys
from pathlib import Path

from ..eval.tasks import TASKS, parse_length
from .datasets import DATASETS
from .stats import parse_slo


def argument_type(parse):
    """An argparse type from a parser that raises ValueError with a message worth showing."""
    def convert(text: str):
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    convert.__name__ = parse.__name__
    return convert


def endpoint(text: str) -> str:
    names = {"completions": "completions", "/v1/completions": "completions",
             "chat": "chat", "/v1/chat/completions": "chat"}
    if text not in names:
        raise ValueError(f"unknown endpoint {text!r}: completions or chat")
    return names[text]


def task_list(text: str) -> list[str]:
    tasks = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise ValueError(f"unknown task(s) {unknown}; known: {', '.join(TASKS)}")
    return tasks


def metadata_item(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"bad --metadata item {text!r}: use KEY=VALUE")
    return key, value


def add_serve_args(p: argparse.ArgumentParser):
    target = p.add_argument_group("target")
    target.add_argument("--base-url", default="http://127.0.0.1:8000")
    target.add_argument("--endpoint", type=argument_type(endpoint), default="completions",
                        help="completions (/v1/completions) or chat (/v1/chat/completions)")
    target.add_argument("--model", help="model name to send (default: the first of /v1/models)")
    target.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY"),
                        help="sent as a Bearer token (default: $OPENAI_API_KEY)")
    target.add_argument("--tokenizer", metavar="PATH",
                        help="checkpoint folder with tokenizer.json, for exact prompt lengths")
    data = p.add_argument_group("dataset")
    data.add_argument("--dataset", "--dataset-name", choices=DATASETS, default="random",
                      help="random; long-32k/64k/128k (random prompts filling a context of "
                           "that many tokens with their output); synthetic (the eval tasks, "
                           "scored for exact match)")
    data.add_argument("--num-prompts", type=int, default=200)
    data.add_argument("--random-input-len", type=int, default=1024)
    data.add_argument("--random-output-len", type=int, default=128,
                      help="output tokens of random and long-context prompts")
    data.add_argument("--random-range-ratio", type=float, default=0.0,
                      help="lengths uniform in [len * (1 - r), len * (1 + r)]")
    data.add_argument("--tasks", type=argument_type(task_list),
                      default=["passkey", "niah_single", "niah_multikey"],
                      help=f"synthetic tasks, comma-separated, from: {', '.join(TASKS)}")
    data.add_argument("--synthetic-length", type=argument_type(parse_length), default=4096,
                      help="tokens of each synthetic prompt with its answer budget, e.g. 4k")
    load = p.add_argument_group("load")
    load.add_argument("--request-rate", type=float, default=float("inf"),
                      help="requests/s (default inf: all at once)")
    load.add_argument("--burstiness", type=float, default=1.0,
                      help="gamma shape of the arrivals: 1 Poisson, < 1 burstier, > 1 steadier")
    load.add_argument("--max-concurrency", type=int, nargs="+", default=None, metavar="N",
                      help="requests in flight at most; several values run a sweep")
    load.add_argument("--num-warmups", type=int, default=0,
                      help="requests sent before the clock starts (after the ready check)")
    load.add_argument("--request-timeout", type=float, default=3600.0,
                      help="seconds a request may wait for the server's next byte")
    sampling = p.add_argument_group("sampling")
    sampling.add_argument("--ignore-eos", action="store_true",
                          help="send ignore_eos: true (every request runs to its output length)")
    sampling.add_argument("--temperature", type=float, default=0.0)
    sampling.add_argument("--seed", type=int, default=0, help="prompts and arrivals")
    out = p.add_argument_group("output")
    out.add_argument("--goodput", type=argument_type(parse_slo), nargs="+", metavar="NAME:MS",
                     help="SLOs in ms for goodput, NAME one of ttft, tpot, e2el")
    out.add_argument("--save-result", action="store_true", help="write the JSON result")
    out.add_argument("--save-detailed", action="store_true",
                     help="include every request (timings, text) in the JSON")
    out.add_argument("--result-dir", default=".", type=Path)
    out.add_argument("--result-filename", help="default: named from the run and the time")
    out.add_argument("--plot", action="store_true",
                     help="write PNG plots next to the JSON (needs matplotlib)")
    out.add_argument("--metadata", type=argument_type(metadata_item), nargs="+",
                     metavar="KEY=VALUE", help="recorded in the JSON")
    out.add_argument("--disable-tqdm", action="store_true", help="no progress bar")


def add_parser(commands) -> argparse.ArgumentParser:
    """Register `bench` (`serve`, `throughput`, `shape`) on the `shadowkv` command's
    subparsers."""
    from . import shapes, throughput

    bench = commands.add_parser("bench", help="benchmarks: `bench serve` load-tests a server, "
                                              "`bench throughput` times the engine offline")
    kinds = bench.add_subparsers(dest="bench_command", required=True)
    described = dict(formatter_class=argparse.RawDescriptionHelpFormatter)
    serve = kinds.add_parser("serve", help="load-test an OpenAI-compatible server",
                             description=__doc__, **described)
    add_serve_args(serve)
    serve.set_defaults(func=run)
    offline = kinds.add_parser("throughput", help="offline decode throughput, dense vs ShadowKV",
                               description=throughput.__doc__, **described)
    throughput.add_throughput_args(offline)
    offline.set_defaults(func=throughput.run)
    shape = kinds.add_parser("shape", help="write a named shape's checkpoint folder (no "
                                           "weights) to serve with --load-format dummy",
                             description=shapes.__doc__, **described)
    shape.add_argument("shape", choices=sorted(shapes.SHAPES))
    shape.add_argument("directory", type=Path)
    shape.add_argument("--layers", type=int, default=None, help="fewer layers")
    shape.set_defaults(func=shapes.run_shape)
    return bench


def result_stem(args, result: dict) -> str:
    levels = "-".join(str(c) for c in args.max_concurrency or [])
    model = result["model"].rstrip("/").split("/")[-1]
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return (f"shadowkv-bench-{args.endpoint}-{result['request_rate']}qps"
            f"{'-concurrency' + levels if levels else ''}-{model}-{stamp}")


def redacted_command(argv: list[str]) -> str:
    """The command line with the value of --api-key hidden."""
    words = []
    for i, word in enumerate(argv):
        if i and argv[i - 1] == "--api-key":
            word = "<set>"
        elif word.startswith("--api-key="):
            word = "--api-key=<set>"
        words.append(word)
    return " ".join(words)


def parameters(args) -> dict:
    """Every option, as JSON values; the API key is never written out."""
    skip = {"func", "command", "bench_command"}
    params = {k: v for k, v in vars(args).items() if k not in skip}
    params.update(api_key="<set>" if args.api_key else None, goodput=dict(args.goodput or []),
                  metadata=dict(args.metadata or []), result_dir=str(args.result_dir),
                  request_rate="inf" if math.isinf(args.request_rate) else args.request_rate)
    return params


def check_args(args) -> str | None:
    """What is wrong with the options, found before anything is sent."""
    if args.num_prompts < 1:
        return "--num-prompts must be at least 1"
    if any(level < 1 for level in args.max_concurrency or []):
        return "--max-concurrency must be at least 1"
    if not (args.request_rate > 0 and args.burstiness > 0):
        return "--request-rate and --burstiness must be > 0"
    if not 0 <= args.random_range_ratio < 1:
        return "--random-range-ratio must be in [0, 1)"
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        return "--plot needs matplotlib: pip install 'shadowkv-engine[bench]'"
    return None


def save(args, result: dict):
    """The plots (--plot), then the JSON (--save-result), which names them."""
    from . import plots

    args.result_dir.mkdir(parents=True, exist_ok=True)
    stem = Path(args.result_filename).stem if args.result_filename else result_stem(args, result)
    if args.plot:
        pngs = [plots.latency_distributions(result, args.result_dir / f"{stem}-latency.png")]
        if len(result["runs"]) > 1:
            pngs.append(plots.sweep(result, args.result_dir / f"{stem}-sweep.png"))
        result["plots"] = [str(p) for p in pngs]
        print("plots: " + ", ".join(result["plots"]))
    if args.save_result:
        if not args.save_detailed:
            for level in result["runs"]:
                del level["requests"]
        path = args.result_dir / f"{stem}.json"
        path.write_text(json.dumps(result, indent=1) + "\n")
        print(f"result: {path}")


def run(args: argparse.Namespace) -> int:
    from ..eval.cli import git_commit
    from .client import BenchError
    from .report import format_run, format_sweep
    from .serve import run_benchmark

    logging.getLogger("httpx").setLevel(logging.WARNING)  # no line per request
    if problem := check_args(args):
        print(f"bench serve: {problem}", file=sys.stderr)
        return 2
    if not args.tokenizer:
        print("bench serve: no --tokenizer: prompt lengths are approximated from characters; "
              "token counts are the server's usage", file=sys.stderr)
    try:
        result = asyncio.run(run_benchmark(args))
    except (BenchError, FileNotFoundError, ValueError) as e:
        print(f"bench serve: {e}", file=sys.stderr)
        return 2
    result.update(date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                  commit=git_commit(), command=redacted_command(sys.argv),
                  metadata=dict(args.metadata or []), parameters=parameters(args))
    for level in result["runs"]:
        print(format_run(result, level))
    if len(result["runs"]) > 1:
        print(format_sweep(result))
    if args.save_result or args.plot:
        save(args, result)
    return 0 if all(level["completed"] for level in result["runs"]) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/serve.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_serve_args(parser)
    return run(parser.parse_args(argv))
