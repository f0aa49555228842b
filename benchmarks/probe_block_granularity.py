"""What HBM gives scattered blocks, and what flashinfer's page size costs ShadowKV's attention.

1. Random blocks of 1-16 KiB copied out of a 32 GiB buffer (torch.index_select, the same bytes
   for every size), read + write GB/s: the rate a value gather or a chunk-paged attention can
   expect, against a linear copy's.
2. ShadowKV's sparse decode posed as flashinfer paged decode, one request per (sequence, KV head)
   over outlier + selected + tail rows, with pages of 8 (a chunk, as the engine does), 16 or 32
   rows scattered over a 4 GiB pool.

    python benchmarks/probe_block_granularity.py      # needs a GPU and flashinfer
"""
import torch

from bench_kernels import median_ms


def scattered_blocks(buffer_gib=32, total_mib=32):
    big = torch.zeros(buffer_gib << 30, dtype=torch.uint8, device="cuda")
    total = total_mib << 20
    for kib in (1, 2, 4, 8, 16):
        rows = big.view(-1, kib * 1024 // 16, 16)  # 16-byte elements
        n = total // (kib * 1024)
        index = torch.randint(0, rows.shape[0], (n,), device="cuda")
        out = torch.empty(n, rows.shape[1], 16, dtype=torch.uint8, device="cuda")
        us = 1e3 * median_ms(lambda: torch.index_select(rows, 0, index, out=out))
        print(f"random {kib} KiB blocks: {us:.1f} us, {2 * total / us / 1e3:.0f} GB/s "
              "(read + write)")


def sparse_decode_pages(batch=8, q_heads=32, kv_heads=8, head_dim=128):
    import flashinfer

    rows = 48 * 8 + 2048 + 32  # outlier chunks + budget + tail
    requests = batch * kv_heads
    workspace = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
    q = torch.randn(requests, q_heads // kv_heads, head_dim, device="cuda", dtype=torch.bfloat16)
    pool_rows = 1 << 24
    for page in (8, 16, 32):
        pages = -(-rows // page)
        pool = pool_rows // page
        kv = torch.randn(pool, 2, 1, page, head_dim, device="cuda", dtype=torch.bfloat16)
        indptr = torch.arange(0, requests + 1, device="cuda", dtype=torch.int32) * pages
        indices = torch.randperm(pool, device="cuda", dtype=torch.int32)[:requests * pages]
        last = torch.full((requests,), rows - (pages - 1) * page, device="cuda",
                          dtype=torch.int32)
        wrapper = flashinfer.BatchDecodeWithPagedKVCacheWrapper(workspace, "HND",
                                                                use_tensor_cores=True)
        wrapper.plan(indptr, indices.contiguous(), last, q_heads // kv_heads, 1, head_dim, page,
                     q_data_type=torch.bfloat16, kv_data_type=torch.bfloat16)
        us = 1e3 * median_ms(lambda: wrapper.run(q, kv))
        nbytes = requests * rows * head_dim * 2 * 2
        print(f"flashinfer sparse decode, pages of {page} rows: {us:.1f} us "
              f"({nbytes / us / 1e3:.0f} GB/s)")
        del kv


if __name__ == "__main__":
    torch.manual_seed(0)
    scattered_blocks()
    sparse_decode_pages()
