"""Offline decode throughput, dense vs ShadowKV, on the same engine with random weights of a real
model's shapes (no download: timing does not depend on weight values).

    python benchmarks/throughput.py --shape llama3.1-8b --context 32768 --batches 1 4 8

Prints, per attention mode and batch size: prefill time, decode tokens/s over all sequences, and
the ShadowKV hit rate; then ShadowKV's speed-up over dense at each batch size.
"""
import argparse
import gc
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch

from shadowkv_engine import LLM, SamplingParams
from shadowkv_engine.demo_model import ensure_demo_model

SHAPES = {
    "llama3.1-8b": dict(
        architectures=["LlamaForCausalLM"], model_type="llama", vocab_size=128256,
        hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=8, head_dim=128, rms_norm_eps=1e-5, max_position_embeddings=131072,
        rope_theta=500000.0, torch_dtype="bfloat16", tie_word_embeddings=False,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}),
    # A smoke-test shape that runs on a CPU in seconds.
    "tiny": dict(
        architectures=["LlamaForCausalLM"], model_type="llama", vocab_size=1024, hidden_size=256,
        intermediate_size=512, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        head_dim=128, rms_norm_eps=1e-5, max_position_embeddings=32768, rope_theta=500000.0,
        torch_dtype="float32", tie_word_embeddings=False),
}


def shape_dir(name: str, layers: int | None) -> Path:
    """A checkpoint folder with config.json only (weights are random) and the demo tokenizer."""
    config = dict(SHAPES[name])
    if layers:
        config["num_hidden_layers"] = layers
    path = Path(tempfile.mkdtemp(prefix=f"shape-{name}-"))
    (path / "config.json").write_text(json.dumps(config))
    demo = ensure_demo_model()
    for file in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        shutil.copy(demo / file, path / file)
    return path


def value_bytes_per_token(path: Path, itemsize: int) -> int:
    config = json.loads((path / "config.json").read_text())
    return config["num_hidden_layers"] * config["num_key_value_heads"] * config["head_dim"] * itemsize


def measure(llm: LLM, batch: int, context: int, new_tokens: int) -> dict:
    g = torch.Generator().manual_seed(batch)
    prompts = [torch.randint(5, 1000, (context,), generator=g).tolist() for _ in range(batch)]
    params = SamplingParams(temperature=0.0, max_tokens=new_tokens, ignore_eos=True)
    start = time.perf_counter()
    outputs = llm.generate(prompts, params, use_tqdm=False)
    wall = time.perf_counter() - start
    first = max(o.metrics.first_token_time for o in outputs)  # every sequence decoding
    last = max(o.metrics.finished_time for o in outputs)
    decoded = sum(len(o.outputs[0].token_ids) - 1 for o in outputs)
    stats = llm.engine.stats()
    return {"batch": batch, "wall_s": wall, "prefill_s": first - min(
        o.metrics.arrival_time for o in outputs), "decode_tok_s": decoded / (last - first),
        "hit_rate": stats.shadowkv_hit_rate}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shape", default="llama3.1-8b", choices=sorted(SHAPES))
    parser.add_argument("--layers", type=int, default=None, help="fewer layers (quick runs)")
    parser.add_argument("--context", type=int, default=32768)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--budget", type=int, default=2048)
    parser.add_argument("--attention", nargs="+", default=["dense", "shadowkv"])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    path = shape_dir(args.shape, args.layers)
    results = {}
    for attention in args.attention:
        on_gpu = args.device != "cpu"
        tokens = max(args.batches) * (args.context + args.new_tokens)
        llm = LLM(model=str(path), device=args.device, dtype="bfloat16" if on_gpu else "float32",
                  attention=attention, num_gpu_blocks=None if on_gpu else 4096,
                  load_format="dummy", max_model_len=args.context + args.new_tokens + 16,
                  max_num_seqs=max(args.batches), max_num_batched_tokens=8192,
                  gpu_memory_utilization=0.92,
                  cpu_offload_gb=tokens * value_bytes_per_token(path, 2 if on_gpu else 4) / 2**30 * 1.1,
                  shadowkv={"sparse_budget": args.budget, "min_context_len": 1024})
        for batch in args.batches:
            row = measure(llm, batch, args.context, args.new_tokens)
            results[(attention, batch)] = row
            print(f"{attention:>9} batch {batch:>3}: prefill {row['prefill_s']:7.2f} s, decode "
                  f"{row['decode_tok_s']:8.1f} tok/s, hit rate {row['hit_rate']:.2f}", flush=True)
        del llm
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    device = torch.cuda.get_device_name() if args.device != "cpu" else "CPU"
    print(f"\n{device}, {args.shape}, context {args.context}, "
          f"{args.new_tokens} new tokens, budget {args.budget}")
    print(f"{'batch':>5} {'dense tok/s':>12} {'shadowkv tok/s':>15} {'ratio':>6}")
    for batch in args.batches:
        dense = results.get(("dense", batch), {}).get("decode_tok_s")
        shadow = results.get(("shadowkv", batch), {}).get("decode_tok_s")
        ratio = f"{shadow / dense:6.2f}" if dense and shadow else "     -"
        print(f"{batch:>5} {dense or 0:>12.1f} {shadow or 0:>15.1f} {ratio}")
    if args.out:
        Path(args.out).write_text(json.dumps([dict(attention=a, **r)
                                              for (a, _), r in results.items()], indent=1))


if __name__ == "__main__":
    main()
