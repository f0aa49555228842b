"""`shadowkv eval`: accuracy of the engine (dense or ShadowKV attention) on the synthetic tasks.

    shadowkv eval --model PATH --attention shadowkv --shadowkv-sparse-budget 256
                  --tasks passkey,niah_single --lengths 4k,8k --samples 20 --output out.json
    shadowkv eval --split heldout --answer-mode both --lengths 2k,4k --samples 20

--split heldout draws each prompt's layout (instruction, filler, needle and question wording,
key format) from pools that training never sees (blind, blind2, blind3, blind4, blind5, blind6
and blind7 are seven more such splits); --answer-mode free lets the model write the whole answer,
as a user's request would, instead of supplying its first words.

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
from .tasks import ANSWER_MODES, LAYOUT_TASKS, SPLITS, TASKS, parse_length

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "assets" / "default_model"
DEFAULT_TASKS = "passkey,niah_single,niah_multikey,niah_multivalue,niah_multiquery,vt,fwe"
DEFAULT_LAYOUT_TASKS = ",".join(LAYOUT_TASKS)  # the tasks of the varied splits (all but classic)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `eval` on the `shadowkv` command's subparsers; the parsed args carry `func`."""
    from ..cli import add_engine_args

    p = subparsers.add_parser("eval", help="accuracy on synthetic long-context tasks",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_engine_args(p)
    p.add_argument("--model", dest="model_path", metavar="PATH",
                   help="checkpoint folder, as the positional argument (default: the embedded "
                        "trained model)")
    add_task_args(p)
    p.add_argument("--lengths", default="4k", help="comma-separated token lengths, e.g. 4k,16k,32k")
    p.add_argument("--samples", type=int, default=20, help="samples per task, length and answer mode")
    p.add_argument("--batch-size", type=int, default=8, help="prompts handed to the engine at once")
    p.add_argument("--output", help="write per-sample results and the summary as JSON here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def add_task_args(p: argparse.ArgumentParser) -> None:
    """--tasks, --split and --answer-mode (shared with training/evaluate_hf.py)."""
    p.add_argument("--tasks", default=None,
                   help=f"comma-separated, from: {', '.join(TASKS)} (default: {DEFAULT_TASKS}; "
                        f"with any other --split, from and by default: {DEFAULT_LAYOUT_TASKS})")
    p.add_argument("--split", choices=SPLITS, default="classic",
                   help="prompt layouts: classic (each task's one fixed layout, as trained), train "
                        "(varied, from the pools training draws from), heldout (varied, from "
                        "pools training never sees), blind (a second such split, never used to "
                        "choose training data), blind2 (a third, written before any model was "
                        "trained on data chosen after reading blind's results), blind3 (a "
                        "fourth, written after blind2 was read and before the next model), "
                        "blind4 (a fifth, written after blind3 was read and before the next "
                        "model), blind5 (a sixth, written after blind4 was read and before the "
                        "next model), blind6 (a seventh, written after blind5 was read, "
                        "without reading training's parts) or blind7 (an eighth, written after "
                        "blind6 was read, without reading training's parts) (default: "
                        "%(default)s)")
    p.add_argument("--answer-mode", choices=(*ANSWER_MODES, "both"), default="prefixed",
                   help="prefixed: the prompt ends with the answer's first words ('The pass key "
                        "is') and the model completes the value; free: the model writes the whole "
                        "answer after the chat template's assistant header, scored by the answer "
                        "items it gives (docs/accuracy.md); both: each sample in each mode "
                        "(default: %(default)s)")


def answer_modes(flag: str) -> tuple[str, ...]:
    return ANSWER_MODES if flag == "both" else (flag,)


def parse_tasks(text: str | None, split: str = "classic") -> list[str]:
    known = TASKS if split == "classic" else LAYOUT_TASKS
    if text is None:
        text = DEFAULT_TASKS if split == "classic" else DEFAULT_LAYOUT_TASKS
    tasks = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in tasks if name not in known]
    if unknown or not tasks:
        raise ValueError(f"unknown task(s) {unknown} for split {split}; known: {', '.join(known)}")
    return tasks


def run(args: argparse.Namespace) -> int:
    from ..cli import engine_config
    from ..llm import LLM
    from ..sampling_params import SamplingParams

    tasks = parse_tasks(args.tasks, args.split)
    modes = answer_modes(args.answer_mode)
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
                       progress=not args.no_progress, split=args.split, modes=modes)
    # The engine's resolved settings (rank and landmark as the model recommends, if it does).
    shadowkv = dataclasses.asdict(llm.engine.config.shadowkv)
    print(f"model={config.model} attention={config.attention} split={args.split} "
          f"answer_mode={','.join(modes)}"
          + (f" shadowkv={json.dumps(shadowkv)}" if config.attention == "shadowkv" else ""))
    print(format_table(results))
    if args.output:
        meta = {"model": config.model, "attention": config.attention, "shadowkv": shadowkv,
                "device": config.device, "dtype": config.dtype, "samples": args.samples,
                "split": args.split, "answer_modes": list(modes),
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
