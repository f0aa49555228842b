"""Top-k recall and attention-output error of ShadowKV against exact attention, on synthetic
keys with planted needles, at the paper's settings (8 KV heads x 128, GQA 4, rank 160, chunk 8,
budget 2048, 48 outlier chunks). Runs on the CPU or a GPU.

    python benchmarks/shadowkv_fidelity.py --contexts 16384 32768 --seeds 3
"""
import argparse
import time

from shadowkv_engine.config import ShadowKVConfig
from shadowkv_engine.eval.attention_fidelity import run_fidelity


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contexts", type=int, nargs="+", default=[16384, 32768])
    parser.add_argument("--budgets", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--rank", type=int, default=160)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(f"{'context':>8} {'budget':>7} {'seed':>4} {'rel.err':>8} {'recall':>7} "
          f"{'needles':>8} {'hit2':>5} {'sec':>5}")
    for context in args.contexts:
        for budget in args.budgets:
            for seed in range(args.seeds):
                cfg = ShadowKVConfig(rank=args.rank, chunk_size=8, sparse_budget=budget,
                                     outlier_chunks=48, local_chunks=4, min_context_len=0)
                start = time.time()
                r = run_fidelity(context, cfg, seed=seed, device=args.device)
                print(f"{context:>8} {budget:>7} {seed:>4} {r.relative_error:>8.3f} "
                      f"{r.topk_recall:>7.3f} {r.needles_selected:>3}/{r.needles_total:<4} "
                      f"{r.hit_rate_second_step:>5.2f} {time.time() - start:>5.1f}", flush=True)


if __name__ == "__main__":
    main()
