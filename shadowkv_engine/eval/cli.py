"""`shadowkv eval`: accuracy of the engine (dense or ShadowKV attention) on the synthetic tasks.

    shadowkv eval --model PATH --attention shadowkv --shadowkv-sparse-budget 256
                  --tasks passkey,niah_single --lengths 4k,8k --samples 20 --output out.json

It takes the same engine and `--shadowkv-*` flags as `shadowkv serve`, so a setting evaluated
here is a setting that can be served.
"""
import argparse
import dataclasses
import datetime
import json
import subprocess
import sys
from pathlib import Path

from .runner import evaluate, format_table, write_json
from .tasks import TASKS, parse_length

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "assets" / "default_model"
DEFAULT_TASKS = "passkey,niah_single,niah_multikey,niah_multivalue,niah_multiquery,vt,fwe"


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `eval` on the `shadowkv` command's subparsers; the parsed args carry `func`."""
    from ..cli import add_engine_args

    p = subparsers.add_parser("eval", help="accuracy on synthetic long-context tasks",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_engine_args(p)
    p.add_argument("--model", dest="model_path", metavar="PATH",
                   help="checkpoint folder, as the positional argument (default: the embedded "
                        "trained model)")
    p.add_argument("--tasks", default=DEFAULT_TASKS,
                   help=f"comma-separated, from: {', '.join(TASKS)} (default: %(default)s)")
    p.add_argument("--lengths", default="4k", help="comma-separated token lengths, e.g. 4k,16k,32k")
    p.add_argument("--samples", type=int, default=20, help="samples per task and length")
    p.add_argument("--batch-size", type=int, default=8, help="prompts handed to the engine at once")
    p.add_argument("--output", help="write per-sample results and the summary as JSON here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def parse_tasks(text: str) -> list[str]:
    tasks = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in tasks if name not in TASKS]
    if unknown or not tasks:
        raise ValueError(f"unknown task(s) {unknown}; known: {', '.join(TASKS)}")
    return tasks


def run(args: argparse.Namespace) -> int:
    from ..cli import engine_config
    from ..llm import LLM
    from ..sampling_params import SamplingParams

    tasks = parse_tasks(args.tasks)
    lengths = [parse_length(x) for x in args.lengths.split(",") if x.strip()]
    args.model = args.model or args.model_path or (
        str(DEFAULT_MODEL_DIR) if (DEFAULT_MODEL_DIR / "config.json").is_file() else None)
    config = engine_config(args)
    if config.max_model_len is None:
        config = dataclasses.replace(config, max_model_len=max(lengths))
    llm = LLM(**config.to_dict())
    tokenizer = llm.get_tokenizer()

    def generate(prompts: list[list[int]], max_tokens: int) -> list[str]:
        outputs = llm.generate(prompts, SamplingParams(temperature=0.0, max_tokens=max_tokens),
                               use_tqdm=False)
        return [out.outputs[0].text for out in outputs]

    results = evaluate(generate, tokenizer, tasks, lengths, args.samples, args.batch_size,
                       progress=not args.no_progress)
    shadowkv = dataclasses.asdict(config.shadowkv)
    print(f"model={config.model} attention={config.attention}"
          + (f" shadowkv={json.dumps(shadowkv)}" if config.attention == "shadowkv" else ""))
    print(format_table(results))
    if args.output:
        meta = {"model": config.model, "attention": config.attention, "shadowkv": shadowkv,
                "device": config.device, "dtype": config.dtype, "samples": args.samples,
                "date": datetime.date.today().isoformat(), "commit": git_commit(),
                "command": " ".join(["shadowkv"] + sys.argv[1:])}
        write_json(args.output, results, meta)
        print(f"wrote {args.output}")
    return 0


def git_commit() -> str | None:
    """The repo's commit, so a stored result names the code that produced it."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None
