"""Benchmarks the ShadowKV CUDA ops against their ceilings and naive alternatives.

  python benchmarks/bench_kernels.py [--out results.json]

- HBM ceiling: a large device-to-device copy (bytes read + written), measured in the same run.
- Value gather: random 2 KiB chunks (C=8, D=128, bf16) from pinned host memory into GPU slot pages,
  against a naive loop of one copy per chunk. Ceiling: 50.6 GB/s zero-copy gather measured on an
  H100 (../shared/reference/bench_pcie_hbm_h100_result.txt), 55 GB/s bulk pinned copy.
- Key rebuild: achieved bandwidth for the bytes it must move (coefficient rows and output keys of
  every fetched chunk, the head's basis once per (sequence, head)) over the measured HBM ceiling.
- Value gather beside other work (--gather-sweep, alone): the gather capped at N blocks
  (max_blocks, as two-batch overlap runs it), timed alone, and on a side stream while the main
  stream copies HBM; "hidden" is the share of the shorter of the two that ran concurrently.
- Plan: latency of the GPU planner against the plain-torch twin.
- Landmark scoring: the CUDA op reading the landmark pages in place (B=1 and B=32 sequences,
  16384 chunks), achieved bandwidth for the landmark bytes over the HBM ceiling, against its
  plain-torch twin (landmark gather + scores); top-k (torch.topk, no kernel yet): latency.
Times are medians of CUDA-event-timed repetitions after warm-up.
"""
import argparse
import functools
import itertools
import json
import os
import statistics

import torch

from shadowkv_engine import ops
from shadowkv_engine.kv.storage import PageLayout
from shadowkv_engine.ops.chunk_plan import plan_chunk_reuse_torch
from shadowkv_engine.ops.chunk_scores import score_chunks_paged_torch
from shadowkv_engine.ops.extension import cuda_ops_available
from shadowkv_engine.ops.key_rebuild import rebuild_keys_torch
from shadowkv_engine.ops.paged import PagedTables

GB = 1e9


def median_ms(fn, iters=20, warmup=3):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def graph_us(fn, reps=20):
    """GPU time of one call, from replays of a CUDA graph of `reps` calls (no launch overhead)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(reps):
            fn()
    return median_ms(graph.replay, iters=20) * 1e3 / reps


def hbm_copy_gbs(gib=2):
    x = torch.empty(gib << 30, dtype=torch.uint8, device="cuda").random_()
    y = torch.empty_like(x)
    ms = median_ms(lambda: y.copy_(x), iters=10)
    return 2 * x.numel() / (ms * 1e-3) / GB


class Workload:
    """B sequences x H KV heads x K slots of C tokens, all storage paged as in kv/storage.py."""

    def __init__(self, batch, heads, head_dim, chunk, budget, rank, context, fetched, block=16,
                 dtype=torch.bfloat16, with_store=False, seed=0):
        torch.manual_seed(seed)
        self.layout = PageLayout(1, heads, head_dim, block)
        self.batch, self.heads, self.chunk, self.rank = batch, heads, chunk, rank
        self.k = budget // chunk
        u_per_seq = -(-context // self.layout.u_tokens_per_page(rank))
        basis_per_seq = -(-rank // self.layout.head_rows_per_page)
        slot_per_seq = budget // block
        per_seq = u_per_seq + basis_per_seq + slot_per_seq
        ids = torch.randperm(batch * per_seq).int().view(batch, per_seq)
        store_per_seq = context // block
        self.arena = torch.randn(batch * per_seq, self.layout.page_elems, dtype=dtype,
                                 device="cuda")
        if with_store:
            self.store = torch.empty(batch * store_per_seq, 1, heads, block, head_dim,
                                     dtype=dtype, pin_memory=True)
            self.store.view(torch.uint8).random_(1, 255)  # non-zero bytes; PCIe ignores values
        u_pages, basis_pages, slot_pages = ids.split([u_per_seq, basis_per_seq, slot_per_seq], 1)
        self.tables = PagedTables(
            u_pages=u_pages.contiguous().cuda(), basis_pages=basis_pages.contiguous().cuda(),
            slot_pages=slot_pages.contiguous().cuda(),
            store_pages=torch.randperm(batch * store_per_seq).int().view(batch, -1).cuda(),
            row_offset=torch.zeros(batch, dtype=torch.int32, device="cuda"))
        chunks = torch.rand(batch * heads, context // chunk).argsort(dim=1)[:, : self.k]
        chunks[torch.rand(chunks.shape) >= fetched] = -1
        self.fetch = chunks.int().view(batch, heads, self.k).cuda()
        self.inv_freq = 1.0 / (500000.0 ** (torch.arange(0, head_dim, 2).float() / head_dim))
        self.inv_freq = self.inv_freq.cuda()
        self.kv = self.layout.kv_view(self.arena)
        self.u_rows = self.layout.u_rows_view(self.arena, rank)
        self.head_rows = self.layout.head_rows_view(self.arena)
        self.itemsize = dtype.itemsize
        self.head_dim = head_dim

    def fetched_chunks(self):
        return int((self.fetch >= 0).sum())

    def gather(self):
        ops.gather_values(self.store, self.kv, self.tables, self.fetch, 0, self.chunk)

    def rebuild(self):
        ops.rebuild_keys(self.u_rows, self.head_rows, self.kv, self.tables, self.fetch,
                         self.inv_freq, 0, self.chunk, self.rank)

    def rebuild_twin(self):
        rebuild_keys_torch(self.u_rows, self.head_rows, self.kv, self.tables, self.fetch,
                           self.inv_freq, 0, self.chunk, self.rank)

    def gather_bytes(self):
        return self.fetched_chunks() * self.chunk * self.head_dim * self.itemsize

    def rebuild_bytes(self):
        heads_used = int((self.fetch >= 0).any(dim=2).sum())
        per_chunk = self.chunk * (self.rank + self.head_dim) * self.itemsize
        basis = self.rank * self.head_dim * self.itemsize
        return self.fetched_chunks() * per_chunk + heads_used * basis

    def naive_gather_gbs(self, chunks=4096):
        """One copy per chunk (a cudaMemcpyAsync each), as a per-chunk Python loop would do."""
        w = self
        idx = (w.fetch >= 0).nonzero()[:chunks].tolist()
        src = w.store[:, 0].reshape(w.store.shape[0], w.heads, -1, w.chunk, w.head_dim)
        dst = w.kv[:, 0, 1].reshape(w.kv.shape[0], w.heads, -1, w.chunk, w.head_dim)
        store_pages, slot_pages = w.tables.store_pages.tolist(), w.tables.slot_pages.tolist()
        per_page = w.layout.block_size // w.chunk
        fetch = w.fetch.tolist()
        plan = []
        for b, h, s in idx:
            c = fetch[b][h][s]
            plan.append((src[store_pages[b][c // per_page], h, c % per_page],
                         dst[slot_pages[b][s // per_page], h, s % per_page]))

        def run():
            for s, d in plan:
                d.copy_(s, non_blocking=True)

        ms = median_ms(run, iters=3, warmup=1)
        return len(plan) * w.chunk * w.head_dim * w.itemsize / (ms * 1e-3) / GB


def gather_beside_copy(w, blocks_list=(8, 16, 32, 64, 128, 0), copy_gib=4):
    """The gather capped at each block count: alone, and on a side stream beside an HBM copy."""
    x = torch.empty(copy_gib << 30, dtype=torch.uint8, device="cuda").random_()
    y = torch.empty_like(x)
    side = torch.cuda.Stream()

    def copy():
        y.copy_(x)

    copy_ms = median_ms(copy, iters=10)
    r = {"copy_ms": copy_ms}
    for blocks in blocks_list:
        def gather(blocks=blocks):
            ops.gather_values(w.store, w.kv, w.tables, w.fetch, 0, w.chunk, max_blocks=blocks)

        def both(gather=gather):
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                gather()
            copy()
            torch.cuda.current_stream().wait_stream(side)

        alone, together = median_ms(gather), median_ms(both, iters=10)
        hidden = (alone + copy_ms - together) / min(alone, copy_ms)
        r[f"blocks_{blocks}"] = {"gather_ms": alone, "gbs": w.gather_bytes() / (alone * 1e-3) / GB,
                                 "beside_copy_ms": together, "hidden": hidden}
        print(f"gather max_blocks={blocks or 'all'}: {alone:.3f} ms = "
              f"{w.gather_bytes() / (alone * 1e-3) / GB:.1f} GB/s alone; with a {copy_ms:.3f} ms "
              f"HBM copy beside it {together:.3f} ms ({hidden:.0%} of the shorter hidden)",
              flush=True)
    return r


def plan_latency_us(rows, k):
    """(op called eagerly, op inside a CUDA graph, twin eagerly) in microseconds."""
    gen = torch.Generator().manual_seed(0)
    ids = torch.rand(rows, 3 * k, generator=gen).argsort(dim=1).int()
    resident = ids[:, :k].cuda()
    selected = torch.cat([ids[:, : k // 2], ids[:, k: 2 * k - k // 2]], 1).cuda()

    def op():
        return torch.ops.shadowkv.plan_chunk_reuse(resident, selected)

    return (median_ms(op, iters=50) * 1e3, graph_us(op),
            median_ms(lambda: plan_chunk_reuse_torch(resident, selected), iters=50) * 1e3)


def scoring_latency_us(q_heads=32, kv_heads=8, num_chunks=16384, dim=128, budget_chunks=256,
                       layers=4):
    """Landmark scoring, GPU time in microseconds per (batch of sequences, layer):
    - score_twin_us, topk_twin_us: plain-torch score_chunks on gathered landmarks and top-k,
      one sequence;
    - score_op_b{B}_us / _gbs: the CUDA op reading the landmark pages in place, and the bytes of
      landmarks it reads (B*H*N*D*2) per second; score_paged_twin_b{B}_us: its twin (landmark
      gather + scores). Calls rotate over `layers` layers, so the landmarks read (128 MiB a
      sequence) do not sit in L2 between calls."""
    r = {}
    q = torch.randn(q_heads, dim, device="cuda", dtype=torch.bfloat16)
    landmarks = torch.randn(kv_heads, num_chunks, dim, device="cuda", dtype=torch.bfloat16)
    excluded = torch.randint(0, num_chunks, (kv_heads, 48), device="cuda")
    scores = ops.score_chunks(q, landmarks, excluded)
    r["score_twin_us"] = graph_us(lambda: ops.score_chunks(q, landmarks, excluded))
    r["topk_twin_us"] = graph_us(lambda: scores.topk(budget_chunks, -1))
    del landmarks

    layout = PageLayout(layers, kv_heads, dim, 16)
    per_seq = -(-num_chunks // layout.head_rows_per_page)
    for batch in (1, 32):
        arena = torch.randn(batch * per_seq, layout.page_elems, dtype=torch.bfloat16,
                            device="cuda")
        case = dict(q=torch.randn(batch, q_heads, dim, dtype=torch.bfloat16, device="cuda"),
                    head_rows=layout.head_rows_view(arena),
                    lm_pages=torch.randperm(batch * per_seq).int().view(batch, -1).cuda(),
                    n_chunks=torch.full((batch,), num_chunks, dtype=torch.int32, device="cuda"),
                    excluded=torch.randint(0, num_chunks, (batch, kv_heads, 48), device="cuda"),
                    max_chunks=num_chunks)
        calls = itertools.count()

        def op(fn=ops.score_chunks_paged):
            return fn(**case, layer=next(calls) % layers)

        us = graph_us(op)
        r[f"score_op_b{batch}_us"] = us
        r[f"score_op_b{batch}_gbs"] = batch * kv_heads * num_chunks * dim * 2 / (us * 1e-6) / GB
        twin = functools.partial(op, fn=score_chunks_paged_torch)
        r[f"score_paged_twin_b{batch}_us"] = (graph_us(twin) if batch == 1 else
                                             median_ms(twin, iters=5, warmup=1) * 1e3)
        print(f"score_chunks_paged B={batch}: {us:.1f} us = {r[f'score_op_b{batch}_gbs']:.0f} "
              f"GB/s; twin {r[f'score_paged_twin_b{batch}_us']:.1f} us", flush=True)
        del arena, case
        torch.cuda.empty_cache()
    return r


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--gather-sweep", action="store_true",
                        help="only the value gather's block-count sweep beside an HBM copy")
    args = parser.parse_args()
    assert torch.cuda.is_available(), "needs a CUDA GPU"
    assert cuda_ops_available(), "build the extension first: pip install --no-build-isolation -e ."
    r = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
         "commit": os.environ.get("GIT_COMMIT", "unknown")}
    common = dict(batch=32, heads=8, head_dim=128, chunk=8, budget=2048, context=16384)
    if args.gather_sweep:
        r["gather_sweep"] = gather_beside_copy(Workload(rank=160, fetched=1.0, with_store=True,
                                                        **common))
        if args.out:
            with open(args.out, "w") as f:
                json.dump(r, f, indent=1)
        return
    r["hbm_copy_gbs"] = hbm_copy_gbs()
    print(f"HBM copy: {r['hbm_copy_gbs']:.0f} GB/s", flush=True)

    for name, fetched in (("all_miss", 1.0), ("hit60", 0.4)):
        w = Workload(rank=160, fetched=fetched, with_store=True, **common)
        ms = median_ms(w.gather)
        r[f"gather_{name}_ms"] = ms
        r[f"gather_{name}_gbs"] = w.gather_bytes() / (ms * 1e-3) / GB
        r[f"gather_{name}_mib"] = w.gather_bytes() / 2**20
        print(f"gather {name}: {w.gather_bytes() / 2**20:.0f} MiB in {ms:.3f} ms = "
              f"{r[f'gather_{name}_gbs']:.1f} GB/s", flush=True)
        if name == "all_miss":
            r["gather_naive_gbs"] = w.naive_gather_gbs()
            print(f"gather naive per-chunk copies: {r['gather_naive_gbs']:.2f} GB/s", flush=True)
        for rank in (160, 1024):
            if rank != 160:
                w = Workload(rank=rank, fetched=fetched, **common)
            ms = median_ms(w.rebuild)
            key = f"rebuild_{name}_r{rank}"
            r[key + "_ms"] = ms
            r[key + "_gbs"] = w.rebuild_bytes() / (ms * 1e-3) / GB
            flops = w.fetched_chunks() * w.chunk * 2 * rank * w.head_dim
            r[key + "_tflops"] = flops / (ms * 1e-3) / 1e12
            if rank == 160:  # at rank 1024 the twin's [M, rank, D] float basis needs > 14 GB
                r[key + "_twin_ms"] = median_ms(w.rebuild_twin, iters=5, warmup=1)
                for kernel in ("streaming", "mma_sync"):  # A/B against the other kernels
                    os.environ["SHADOWKV_REBUILD_KERNEL"] = kernel
                    r[f"{key}_{kernel}_ms"] = median_ms(w.rebuild)
                del os.environ["SHADOWKV_REBUILD_KERNEL"]
            print(f"rebuild {name} rank {rank}: {w.rebuild_bytes() / 2**20:.0f} MiB in {ms:.3f} ms "
                  f"= {r[key + '_gbs']:.0f} GB/s, {r[key + '_tflops']:.0f} TFLOP/s", flush=True)
            del w
            torch.cuda.empty_cache()

    for k in (256, 1024):
        eager, graph, twin = plan_latency_us(256, k)
        r[f"plan_k{k}_us"], r[f"plan_k{k}_graph_us"], r[f"plan_k{k}_twin_us"] = eager, graph, twin
    r.update(scoring_latency_us())

    if args.out:
        with open(args.out, "w") as f:
            json.dump(r, f, indent=1)
    hbm = r["hbm_copy_gbs"]
    print(f"\n=== {r['device']}, torch {r['torch']}, commit {r['commit']} ===")
    print(f"{'measure':52s} {'value':>12s} {'ratio':>22s}")
    print(f"{'HBM d2d copy (ceiling)':52s} {hbm:9.0f} GB/s")
    for name in ("all_miss", "hit60"):
        gbs = r[f"gather_{name}_gbs"]
        print(f"{'gather 2KiB chunks ' + name + ' (B32 H8 K256)':52s} {gbs:9.1f} GB/s "
              f"{gbs / 50.6:8.0%} of 50.6 zero-copy")
    print(f"{'gather naive per-chunk copy':52s} {r['gather_naive_gbs']:9.2f} GB/s "
          f"{r['gather_all_miss_gbs'] / r['gather_naive_gbs']:8.0f}x slower than op")
    for name in ("all_miss", "hit60"):
        for rank in (160, 1024):
            key = f"rebuild_{name}_r{rank}"
            twin = (f", {r[key + '_twin_ms'] / r[key + '_ms']:.0f}x twin, "
                    f"{r[key + '_streaming_ms'] / r[key + '_ms']:.2f}x streaming, "
                    f"{r[key + '_mma_sync_ms'] / r[key + '_ms']:.2f}x mma_sync"
                    if key + "_twin_ms" in r else "")
            print(f"{'rebuild ' + name + f' rank {rank} (B32 H8 K256 D128)':52s} "
                  f"{r[key + '_gbs']:9.0f} GB/s {r[key + '_gbs'] / hbm:8.0%} of HBM{twin}")
    for k in (256, 1024):
        print(f"{'plan 256 rows x ' + str(k) + ' slots (eager | in graph)':52s} "
              f"{r[f'plan_k{k}_us']:9.1f} us {r[f'plan_k{k}_graph_us']:8.1f} us in graph, "
              f"{r[f'plan_k{k}_twin_us'] / r[f'plan_k{k}_us']:.0f}x twin")
    print(f"{'score_chunks twin (32 q heads, 16384 chunks, 1 seq)':52s} "
          f"{r['score_twin_us']:9.1f} us (GPU time, graph)")
    for b in (1, 32):
        us, twin = r[f"score_op_b{b}_us"], r[f"score_paged_twin_b{b}_us"]
        print(f"{f'score_chunks_paged op, B={b} (H8 Hq32 N16384 D128)':52s} {us:9.1f} us "
              f"{r[f'score_op_b{b}_gbs']:6.0f} GB/s = {r[f'score_op_b{b}_gbs'] / hbm:.0%} "
              f"of HBM, {twin / us:.0f}x twin ({twin:.0f} us)")
    print(f"{'top-256 of 16384 (torch.topk), 8 heads, 1 seq':52s} "
          f"{r['topk_twin_us']:9.1f} us (GPU time, graph)")


if __name__ == "__main__":
    main()
