"""Landmark scoring and the device-tier value gather on two arena layouts, one GPU, one run.

page-major (kv/storage.py today): a page holds its rows for every layer, [pages, L, ...], so one
layer's rows of a sequence lie one page (2 MiB at Llama-3.1-8B's shape) apart. layer-major: the
same views with [L, pages, ...] memory order, so one layer's rows lie together. The ops are
stride-generic, so both run unchanged; the question is what the GPU's address translation
costs when a layer's reads are spread over the whole arena.

    python benchmarks/probe_arena_layout.py --arena-gib 64 --store-gib 16
"""
import argparse

import torch

from bench_kernels import median_ms
from shadowkv_engine import ops
from shadowkv_engine.ops.extension import cuda_ops_available
from shadowkv_engine.ops.paged import PagedTables

L, H, BS, D, C, G = 32, 8, 16, 128, 8, 4  # Llama-3.1-8B shape, block 16, chunk 8, GQA 4


def arena(pages, inner, layer_major):
    """A [pages, L, *inner] bf16 view, memory ordered page-major or layer-major."""
    if layer_major:
        t = torch.zeros((L, pages) + inner, dtype=torch.bfloat16, device="cuda")
        return t.transpose(0, 1)
    return torch.zeros((pages, L) + inner, dtype=torch.bfloat16, device="cuda")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--arena-gib", type=float, default=64)
    p.add_argument("--store-gib", type=float, default=16)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--chunks", type=int, default=4092)
    p.add_argument("--budget", type=int, default=2048)
    args = p.parse_args()
    if not cuda_ops_available():
        raise SystemExit("the CUDA extension is not built (python setup.py build_ext --inplace)")
    gen = torch.Generator().manual_seed(0)
    page_bytes = L * 2 * H * BS * D * 2
    pages = int(args.arena_gib * 2**30) // page_bytes
    store_pages = int(args.store_gib * 2**30) // (page_bytes // 2)
    B, rows = args.batch, 2 * BS
    lm_cols = -(-args.chunks // rows)
    q = torch.randn(B, H * G, D, dtype=torch.bfloat16, device="cuda")
    perm = torch.randperm(pages - 1, generator=gen)[: B * lm_cols] + 1
    lm_pages = perm.view(B, lm_cols).int().cuda()
    n_chunks = torch.full((B,), args.chunks, dtype=torch.int32, device="cuda")
    excluded = torch.randint(0, args.chunks, (B, H, 48), generator=gen).int().cuda()
    slots = args.budget // C
    fetch = torch.randint(0, args.chunks, (B, H, slots), generator=gen).int().cuda()
    tok_pages = -(-args.chunks * C // BS)
    store_page_ids = torch.randint(0, store_pages, (B, tok_pages), generator=gen).int().cuda()
    slot_cols = -(-args.budget // BS)
    slot_page_ids = (torch.randperm(pages - 1, generator=gen)[: B * slot_cols] + 1)
    tables = PagedTables(None, None, slot_page_ids.view(B, slot_cols).int().cuda(),
                         store_page_ids, torch.zeros(B, dtype=torch.int32, device="cuda"))
    scores = torch.empty(B, H, args.chunks, dtype=torch.float32, device="cuda")
    landmark_bytes = B * H * args.chunks * D * 2
    value_bytes = 2 * B * H * slots * C * D * 2  # read + written
    print(f"arena {pages} pages ({pages * page_bytes / 2**30:.0f} GiB), value store "
          f"{store_pages} pages; batch {B}, {args.chunks} chunks, {slots} fetched per head")
    for layer_major in (False, True):
        name = "layer-major" if layer_major else "page-major"
        head_rows = arena(pages, (2 * H * BS * D,), layer_major).unflatten(2, (H, rows, D))
        kv = head_rows.flatten(2).unflatten(2, (2, H, BS, D))
        us = 1e3 * median_ms(lambda: torch.ops.shadowkv.score_chunks_paged(
            q, head_rows, lm_pages, n_chunks, excluded, 5, scores))
        print(f"{name}: landmark scoring {us:.1f} us = {landmark_bytes / us / 1e3:.0f} GB/s")
        store = arena(store_pages, (H, BS, D), layer_major)
        # An empty host tier (every page on the device) with the device tier's strides.
        host = torch.empty_strided((0,) + store.shape[1:], store.stride(), dtype=store.dtype)
        us = 1e3 * median_ms(lambda: ops.gather_values(host, kv, tables, fetch, 5, C, store))
        print(f"{name}: value gather {us:.1f} us = {value_bytes / us / 1e3:.0f} GB/s "
              "(read + write)")
        del head_rows, kv, store
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
