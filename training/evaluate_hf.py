"""Full-attention accuracy of a checkpoint with plain transformers (no engine involved).

    python -m training.evaluate_hf --model shadowkv_engine/assets/default_model \
        --tasks passkey,niah_single --lengths 8k --samples 100 --output dense_hf.json
    python -m training.evaluate_hf --split heldout --answer-mode both --lengths 8k --samples 50

Same samples, scoring, table and JSON as `shadowkv eval`, so the two can be compared cell by cell.
"""
import argparse
import datetime

import torch

from shadowkv_engine.eval.cli import add_task_args, answer_modes, git_commit, parse_tasks
from shadowkv_engine.eval.runner import evaluate, format_table, write_json
from shadowkv_engine.eval.tasks import parse_length

from .hf_generate import greedy_generator, load

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def run_hf_eval(model, tokenizer, tasks: list[str], lengths: list[int], samples: int,
                progress: bool = True, split: str = "classic", modes: tuple[str, ...] = ("prefixed",)):
    eos = model.generation_config.eos_token_id
    stop = [eos] if isinstance(eos, int) else list(eos or [])
    return evaluate(greedy_generator(model, tokenizer, stop), tokenizer, tasks, lengths, samples,
                    progress=progress, split=split, modes=modes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="shadowkv_engine/assets/default_model")
    add_task_args(parser)
    parser.add_argument("--lengths", default="4k")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=DTYPES, default="float32")
    parser.add_argument("--output")
    args = parser.parse_args()

    model, tokenizer = load(args.model, args.device, DTYPES[args.dtype])
    lengths = [parse_length(x) for x in args.lengths.split(",")]
    results = run_hf_eval(model, tokenizer, parse_tasks(args.tasks, args.split), lengths,
                          args.samples, split=args.split, modes=answer_modes(args.answer_mode))
    print(format_table(results))
    if args.output:
        write_json(args.output, results, {
            "model": args.model, "attention": "dense (transformers SDPA)", "device": args.device,
            "dtype": args.dtype, "samples": args.samples, "date": datetime.date.today().isoformat(),
            "commit": git_commit(), "command": "python -m training.evaluate_hf " + " ".join(
                f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None)})


if __name__ == "__main__":
    main()
