"""Which part of a needle template defeats the model: a split's samples with its needle templates
replaced by each given variant in turn, everything else (instructions, fillers, questions, keys,
depths) drawn as the split draws it (docs/accuracy.md, "The blind5 split").

    python benchmarks/needle_variants.py --split blind5 --length 4k --samples 16 \
        --variant 'as_written=Reference {value} has been allocated as {subject}.' \
        --variant 'no_label={value} has been allocated as {subject}.'

Each variant is NAME=TEMPLATE, with the slots of a needle ({subject} or {Subject}, and {value},
once each). Every variant gets the same seeds; with one template in the pool, a seed draws the
rest of its sample as it would with any other single template. Our engine, greedy, free answers,
passkey and niah_single; prints one line a variant (right answers per task, in all, and for
numeric and alphanumeric keys apart). On the CPU, float32: under a minute a
variant at 4K and 16 samples a task. Only for splits already read: running it on an unread blind
split spends that split.
"""
import argparse
from dataclasses import replace

from shadowkv_engine import LLM, SamplingParams
from shadowkv_engine.default_model import DEFAULT_MODEL_DIR
from shadowkv_engine.eval import layouts
from shadowkv_engine.eval.compare import has_numeric_key
from shadowkv_engine.eval.runner import evaluate
from shadowkv_engine.eval.tasks import parse_length


def parse_variant(text: str) -> tuple[str, str]:
    name, sep, template = text.partition("=")
    if not sep or not name or "{value}" not in template:
        raise argparse.ArgumentTypeError(
            f"a variant is NAME=TEMPLATE with a {{value}} slot, got {text!r}")
    return name, template


def tally(records) -> str:
    return f"{sum(r.correct for r in records)}/{len(records)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL_DIR))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--attention", default="dense", choices=("dense", "shadowkv"))
    parser.add_argument("--split", required=True, choices=[s for s in layouts.SPLITS if s != "train"])
    parser.add_argument("--length", type=parse_length, default=4096)
    parser.add_argument("--samples", type=int, default=16, help="per task and variant")
    parser.add_argument("--tasks", nargs="+", default=["passkey", "niah_single"])
    parser.add_argument("--variant", type=parse_variant, action="append", required=True,
                        help="NAME=TEMPLATE; repeat for more")
    args = parser.parse_args()

    llm = LLM(model=args.model, device=args.device, attention=args.attention,
              max_model_len=args.length, max_num_seqs=args.samples)

    def generate(prompts, max_tokens):
        outputs = llm.generate(prompts, SamplingParams(temperature=0.0, max_tokens=max_tokens),
                               use_tqdm=False)
        return [o.outputs[0].text for o in outputs]

    pools = layouts.SPLITS[args.split]
    try:
        for name, template in args.variant:
            layouts.SPLITS[args.split] = replace(pools, needles=(template,))
            results = evaluate(generate, llm.get_tokenizer(), args.tasks, [args.length],
                               args.samples, batch_size=args.samples, progress=False,
                               split=args.split, modes=("free",))
            cells = " ".join(f"{r.task} {r.correct}/{len(r.records)}" for r in results)
            records = [record for r in results for record in r.records]
            print(f"{name:<16} {cells}  all {tally(records)}  "
                  f"numeric {tally([r for r in records if has_numeric_key(r.layout)])}  "
                  f"alphanumeric {tally([r for r in records if not has_numeric_key(r.layout)])}  "
                  f"{template!r}", flush=True)
    finally:
        layouts.SPLITS[args.split] = pools


if __name__ == "__main__":
    main()
