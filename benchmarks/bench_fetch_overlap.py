"""How much of the value fetch can hide behind other GPU work, by the fetch's grid cap.

  python benchmarks/bench_fetch_overlap.py [--out results.json]

Two-batch overlap (engine/two_batch_overlap.py) runs one half's zero-copy value gather (PCIe)
while the other half's GEMMs run (HBM). That works only if the gather leaves SMs free: the
uncapped gather holds every SM's warp slots until it ends. For each grid cap (thread blocks;
0 = uncapped) this times, with CUDA events: the gather alone (GB/s over PCIe), a stream of
decode-sized GEMMs alone (an 8B layer's MLP weights, batch 8), and both at once on two streams.
"hidden" is the share of the shorter one that the concurrent run saved:
(gather + gemm - both) / min(gather, gemm); 100% is perfect overlap.
"""
import argparse
import json
import os

import torch

from bench_kernels import GB, Workload, median_ms

CAPS = (8, 16, 32, 64, 132, 264, 0)


def gemm_loop(iters: int):
    x = torch.randn(8, 4096, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(2 * 14336, 4096, device="cuda", dtype=torch.bfloat16)  # gate_up, 235 MB

    def run():
        for _ in range(iters):
            torch.nn.functional.linear(x, w)
    return run


def concurrent(first, second):
    side = torch.cuda.Stream()

    def run():
        side.wait_stream(torch.cuda.current_stream())
        first()
        with torch.cuda.stream(side):
            second()
        torch.cuda.current_stream().wait_stream(side)
    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    w = Workload(batch=16, heads=8, head_dim=128, chunk=8, budget=2048, context=16384, rank=160,
                 fetched=1.0, with_store=True)
    fetch_bytes = w.gather_bytes()
    r = {"device": torch.cuda.get_device_name(), "commit": os.environ.get("GIT_COMMIT", "unknown"),
         "fetch_mib": fetch_bytes / 2**20, "caps": {}}
    full_ms = median_ms(lambda: torch.ops.shadowkv.gather_values(
        w.store, w.kv, w.tables.store_pages, w.tables.slot_pages, w.tables.row_offset, w.fetch,
        0, w.chunk, 0))
    # GEMMs of about the gather's length
    one = median_ms(gemm_loop(10)) / 10
    gemm = gemm_loop(max(1, round(full_ms / one)))
    gemm_ms = median_ms(gemm)
    r["gemm_ms"] = gemm_ms
    print(f"fetch {fetch_bytes / 2**20:.0f} MiB; GEMM stream {gemm_ms:.2f} ms "
          f"({235e6 / one / 1e6:.0f} GB/s of weights)", flush=True)
    print(f"{'grid cap':>9} {'gather ms':>10} {'GB/s':>7} {'both ms':>8} {'hidden':>7}")
    for cap in CAPS:
        def gather(cap=cap):
            torch.ops.shadowkv.gather_values(w.store, w.kv, w.tables.store_pages,
                                             w.tables.slot_pages, w.tables.row_offset, w.fetch,
                                             0, w.chunk, cap)
        alone = median_ms(gather)
        both = median_ms(concurrent(gather, gemm))
        hidden = (alone + gemm_ms - both) / min(alone, gemm_ms)
        r["caps"][cap] = {"gather_ms": alone, "gather_gbs": fetch_bytes / (alone * 1e-3) / GB,
                          "both_ms": both, "hidden": hidden}
        print(f"{cap or 'none':>9} {alone:10.3f} {r['caps'][cap]['gather_gbs']:7.1f} "
              f"{both:8.3f} {100 * hidden:6.0f}%", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(r, f, indent=1)


if __name__ == "__main__":
    main()
