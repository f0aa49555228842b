"""Replays chosen eval samples through the engine under other ShadowKV settings: which answers
that one setting lost come back under another (docs/accuracy.md, the ShadowKV sections).

    python -m shadowkv_engine.eval.compare dense.json shadowkv.json --lost lost.json
    python benchmarks/replay_samples.py lost.json --length 32k --split heldout \
        --setting '{"landmark": "minmax"}' --setting '{"rank": 96}' --setting dense

lost.json: [[task, seed], ...] (seeds as in `shadowkv eval`'s JSON records). Each setting is a
JSON object of ShadowKV options (engine defaults for the rest) or "dense"; each runs every sample
one at a time, greedy, free answers unless --answer-mode says otherwise, and prints the output,
whether it is right, and a count. On the CPU, float32: about a minute a 32K sample.
"""
import argparse
import json
import time

from shadowkv_engine import LLM, SamplingParams
from shadowkv_engine.default_model import DEFAULT_MODEL_DIR
from shadowkv_engine.eval.scoring import is_correct
from shadowkv_engine.eval.tasks import make_sample, parse_length


def replay(setting, samples: list[tuple[str, int]], args) -> int:
    dense = setting == "dense"
    llm = LLM(model=args.model, device=args.device, max_model_len=args.length,
              attention="dense" if dense else "shadowkv", shadowkv=None if dense else setting)
    tokenizer, right, start = llm.get_tokenizer(), 0, time.time()
    for task, seed in samples:
        sample = make_sample(task, tokenizer, args.length, seed, args.split, args.answer_mode)
        params = SamplingParams(temperature=0.0, max_tokens=sample.max_new_tokens)
        text = llm.generate([sample.prompt_token_ids], params, use_tqdm=False)[0].outputs[0].text
        ok = is_correct(text, sample)
        right += ok
        print(f"{json.dumps(setting)} {task} {seed} {sample.answers} {'right' if ok else 'wrong'}"
              f" {text[:70]!r}", flush=True)
    print(f"== {json.dumps(setting)}: {right}/{len(samples)} right in {time.time() - start:.0f} s",
          flush=True)
    return right


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("samples", help="JSON file: [[task, seed], ...]")
    parser.add_argument("--setting", action="append", required=True,
                        help='a JSON object of ShadowKV options, or "dense"; repeatable')
    parser.add_argument("--model", default=str(DEFAULT_MODEL_DIR))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--length", type=parse_length, default=32768)
    parser.add_argument("--split", default="heldout")
    parser.add_argument("--answer-mode", default="free", choices=["free", "prefixed"])
    args = parser.parse_args()
    with open(args.samples) as f:
        samples = [(task, int(seed)) for task, seed in json.load(f)]
    for text in args.setting:
        replay("dense" if text == "dense" else json.loads(text), samples, args)


if __name__ == "__main__":
    main()
