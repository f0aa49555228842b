"""ShadowKV chunk hit rate on the shipped trained model: real locality, unlike random weights.

    python benchmarks/hit_rate.py --device cpu --lengths 2k 4k 8k --samples 3
    python benchmarks/hit_rate.py --device cuda --lengths 2k 4k 8k max --samples 10

Runs eval prompts (passkey, needle-in-a-haystack; shadowkv_engine/eval/tasks.py) one at a time,
greedy, through the engine with ShadowKV at the engine's default settings and at a small budget,
and reads the hit rate from the engine's counters (deltas per request): over every decode step,
and without each request's first decode step, whose slots all start empty (the steady state a
long generation sees). Lengths default to the model's max_position_embeddings ("max"); the model
was trained up to that length (32K; config.json's shadowkv_training). Accuracy is exact match, as
in `shadowkv eval`.
"""
import argparse
import json
import time
from pathlib import Path

from shadowkv_engine import LLM, SamplingParams
from shadowkv_engine.default_model import DEFAULT_MODEL_DIR
from shadowkv_engine.eval.scoring import is_correct
from shadowkv_engine.eval.tasks import eval_samples, parse_length


def counters(engine) -> tuple[int, int]:
    stats = engine.stats()
    return stats.shadowkv_chunks_selected_total, stats.shadowkv_chunk_hits_total


def run_sample(engine, request_id: str, sample, new_tokens: int | None) -> dict:
    """One request: (selected, hits) over all decode steps and after the first, and its text."""
    params = SamplingParams(temperature=0.0, max_tokens=new_tokens or sample.max_new_tokens)
    engine.add_request(request_id, sample.prompt_token_ids, params)
    marks, text, steps = [], "", 0
    while engine.has_unfinished_requests():
        for output in engine.step():
            text = output.outputs[0].text
            steps = len(output.outputs[0].token_ids)
        if steps and len(marks) < 2:  # after prefill (first token), after the first decode step
            marks.append(counters(engine))
    end = counters(engine)
    first = marks[0] if marks else end
    warm = marks[1] if len(marks) > 1 else end
    return {"selected": end[0] - first[0], "hits": end[1] - first[1],
            "warm_selected": end[0] - warm[0], "warm_hits": end[1] - warm[1],
            "tokens": steps, "correct": is_correct(text, sample), "output": text}


def run_setting(args, name: str, shadowkv: dict, lengths: list[int]) -> list[dict]:
    llm = LLM(model=str(args.model), device=args.device, dtype=args.dtype, attention="shadowkv",
              max_model_len=min(args.limit, max(lengths) + (args.new_tokens or 0)),
              shadowkv=shadowkv, max_num_seqs=1,
              max_num_batched_tokens=args.max_num_batched_tokens,
              cpu_offload_gb=args.cpu_offload_gb,
              # the counters are read between steps: each step's tokens must be read in it
              async_scheduling=False)
    engine, tokenizer = llm.engine, llm.get_tokenizer()
    cells = []
    for length in lengths:
        for task in args.tasks:
            start = time.perf_counter()
            runs = [run_sample(engine, f"{name}-{task}-{length}-{i}", sample, args.new_tokens)
                    for i, sample in enumerate(eval_samples(task, tokenizer, length, args.samples))]
            total = {k: sum(r[k] for r in runs) for k in
                     ("selected", "hits", "warm_selected", "warm_hits", "tokens", "correct")}
            cell = {"setting": name, "shadowkv": {k: v for k, v in
                                                  vars(engine.config.shadowkv).items()},
                    "length": length, "task": task, "samples": len(runs), **total,
                    "hit_rate": total["hits"] / total["selected"] if total["selected"] else None,
                    "warm_hit_rate": (total["warm_hits"] / total["warm_selected"]
                                      if total["warm_selected"] else None),
                    "seconds": time.perf_counter() - start,
                    "outputs": [r["output"] for r in runs]}
            print(format_cell(cell), flush=True)
            cells.append(cell)
    return cells


def fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


HEADER = (f"{'setting':<22} {'length':>6} {'task':<13} {'samples':>7} {'tokens':>6} "
          f"{'hit rate':>8} {'after 1st':>9} {'correct':>7} {'seconds':>7}")


def format_cell(c: dict) -> str:
    return (f"{c['setting']:<22} {c['length']:>6} {c['task']:<13} {c['samples']:>7} "
            f"{c['tokens']:>6} {fmt(c['hit_rate']):>8} {fmt(c['warm_hit_rate']):>9} "
            f"{c['correct']:>3}/{c['samples']:<3} {c['seconds']:>7.1f}")


def per_length(cells: list[dict]) -> list[str]:
    """Hit rates pooled over tasks (chunk counts added), one line per setting and length."""
    lines = []
    for key in dict.fromkeys((c["setting"], c["length"]) for c in cells):
        group = [c for c in cells if (c["setting"], c["length"]) == key]
        sel, hits = sum(c["selected"] for c in group), sum(c["hits"] for c in group)
        wsel, whits = sum(c["warm_selected"] for c in group), sum(c["warm_hits"] for c in group)
        lines.append(f"{key[0]:<22} {key[1]:>6} {'all':<13} "
                     f"{sum(c['samples'] for c in group):>7} {sum(c['tokens'] for c in group):>6} "
                     f"{fmt(hits / sel if sel else None):>8} {fmt(whits / wsel if wsel else None):>9} "
                     f"{sum(c['correct'] for c in group):>3}/{sum(c['samples'] for c in group):<3}")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto", help="auto: float32 on CPU, bf16 on CUDA")
    parser.add_argument("--lengths", nargs="+", default=["max"],
                        help="prompt lengths in tokens (4096, 4k) or 'max' (the model's "
                             "max_position_embeddings)")
    parser.add_argument("--tasks", nargs="+", default=["passkey", "niah_single"])
    parser.add_argument("--samples", type=int, default=3, help="per task and length")
    parser.add_argument("--new-tokens", type=int, default=None,
                        help="max new tokens (default: the task's answer budget)")
    parser.add_argument("--small-budget", type=int, default=128,
                        help="also run this budget (0: only the defaults)")
    parser.add_argument("--small-outlier-chunks", type=int, default=3)
    parser.add_argument("--max-num-batched-tokens", type=int, default=8192)
    parser.add_argument("--cpu-offload-gb", type=float, default=4.0)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    args.limit = json.loads((args.model / "config.json").read_text())["max_position_embeddings"]
    lengths = sorted({args.limit if x == "max" else parse_length(x) for x in args.lengths})
    settings = {"default": {}}
    if args.small_budget:
        settings[f"budget {args.small_budget}, {args.small_outlier_chunks} outl."] = {
            "sparse_budget": args.small_budget, "outlier_chunks": args.small_outlier_chunks}
    print(f"model {args.model} (max_position_embeddings {args.limit}), device {args.device}")
    print(HEADER, flush=True)
    cells = []
    for name, shadowkv in settings.items():
        cells += run_setting(args, name, shadowkv, lengths)
    print("\npooled over tasks:\n" + HEADER + "\n" + "\n".join(per_length(cells)))
    if args.out:
        Path(args.out).write_text(json.dumps(cells, indent=1))


if __name__ == "__main__":
    main()
