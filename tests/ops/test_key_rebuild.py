"""Key rebuild: the twin against a float64 reference (CPU) and the CUDA op against the twin."""
import dataclasses
import math

import pytest
import torch

from shadowkv_engine.ops.key_rebuild import rebuild_keys, rebuild_keys_torch
from shadowkv_engine.ops.paged import gather_head_rows
from paged_case import GRID, GRID_IDS, make_case, needs_cuda_ops

TOLERANCE = {torch.bfloat16: 1e-2, torch.float16: 2e-3, torch.float32: 1e-5}


def rebuild_by_hand(case, kv):
    t, c, bs, tpp = case.tables, case.chunk_size, case.layout.block_size, case.u_rows.shape[2]
    basis = gather_head_rows(case.head_rows, t.basis_pages, case.layer, case.rank).double()
    half = case.layout.head_dim // 2
    for b, h, s in (case.fetch >= 0).nonzero().tolist():
        for i in range(c):
            token = int(case.fetch[b, h, s]) * c + i
            row = int(t.row_offset[b]) + s * c + i
            u = case.u_rows[t.u_pages[b, token // tpp], case.layer, token % tpp].double()
            key = u @ basis[b, h]
            angle = token * case.inv_freq.double()
            x, y = key[:half], key[half:]
            cos, sin = angle.cos(), angle.sin()
            rotated = torch.cat([x * cos - y * sin, y * cos + x * sin])
            kv[t.slot_pages[b, row // bs], case.layer, 0, h, row % bs] = rotated.to(kv.dtype)


def assert_keys_match(got_arena, want_arena, dtype):
    assert torch.equal(got_arena.isnan(), want_arena.isnan()), "written rows differ"
    written = ~want_arena.isnan()
    got, want = got_arena[written].double(), want_arena[written].double()
    assert got.numel() > 0
    error = (got - want).norm() / want.norm()
    assert error < TOLERANCE[dtype], f"relative error {error:.2e}"
    assert (got - want).abs().max() <= 4 * TOLERANCE[dtype] * want.abs().max()


def assert_op_matches_twin(case, dtype):
    """The op (CUDA where built) writes the same keys as the twin, on a copy of the arena."""
    want = case.arena.clone()
    layout = case.layout
    rebuild_keys_torch(layout.u_rows_view(want, case.rank), layout.head_rows_view(want),
                       layout.kv_view(want), case.tables, case.fetch, case.inv_freq, case.layer,
                       case.chunk_size, case.rank)
    rebuild_keys(case.u_rows, case.head_rows, case.kv, case.tables, case.fetch, case.inv_freq,
                 case.layer, case.chunk_size, case.rank)
    assert_keys_match(case.arena, want, dtype)


def test_twin_equals_float64_reference():
    case = make_case(batch=2, heads=2, head_dim=16, chunk_size=4, budget=32, rank=12,
                     dtype=torch.float32, device="cpu", seed=0)
    want = case.arena.clone()
    rebuild_by_hand(case, case.layout.kv_view(want))
    rebuild_keys_torch(case.u_rows, case.head_rows, case.kv, case.tables, case.fetch,
                       case.inv_freq, case.layer, case.chunk_size, case.rank)
    assert_keys_match(case.arena, want, torch.float32)


# SHADOWKV_REBUILD_KERNEL: "auto" takes the resident-basis kernel where the basis fits in shared
# memory (16-bit keys, ranks up to a few hundred; its product on wgmma in sm_90a builds), the
# streaming kernel elsewhere; "streaming" forces the latter; "mma_sync" the resident kernel on
# mma.sync (what sm_80 runs), which float32 keys never take.
KERNELS = ["auto", "streaming", "mma_sync"]
KERNEL_DTYPES = [(kernel, dtype) for kernel in KERNELS
                 for dtype in (torch.bfloat16, torch.float16, torch.float32)
                 if not (kernel == "mma_sync" and dtype == torch.float32)]
KERNEL_DTYPE_IDS = [f"{kernel}-{str(dtype).removeprefix('torch.')}"
                    for kernel, dtype in KERNEL_DTYPES]


@needs_cuda_ops
@pytest.mark.parametrize("kernel,dtype", KERNEL_DTYPES, ids=KERNEL_DTYPE_IDS)
@pytest.mark.parametrize("batch,gqa,heads,chunk,head_dim,budget,rank", GRID, ids=GRID_IDS)
def test_cuda_rebuild_equals_twin(batch, gqa, heads, chunk, head_dim, budget, rank, dtype, kernel,
                                  monkeypatch):
    monkeypatch.setenv("SHADOWKV_REBUILD_KERNEL", kernel)
    case = make_case(batch, heads, head_dim, chunk, budget, rank, dtype, "cuda",
                     seed=hash((batch, heads, budget, rank)) % 1000)
    assert_op_matches_twin(case, dtype)


@needs_cuda_ops
@pytest.mark.parametrize("kernel", KERNELS)
def test_cuda_rebuild_head_dim_256(kernel, monkeypatch):
    monkeypatch.setenv("SHADOWKV_REBUILD_KERNEL", kernel)
    case = make_case(batch=3, heads=2, head_dim=256, chunk_size=8, budget=512, rank=160,
                     dtype=torch.bfloat16, device="cuda", seed=11)
    assert_op_matches_twin(case, torch.bfloat16)


@needs_cuda_ops
def test_cuda_rebuild_rejects_unknown_kernel_name(monkeypatch):
    monkeypatch.setenv("SHADOWKV_REBUILD_KERNEL", "fastest")
    case = make_case(batch=1, heads=1, head_dim=64, chunk_size=8, budget=64, rank=32,
                     dtype=torch.bfloat16, device="cuda", seed=0)
    with pytest.raises(RuntimeError, match="SHADOWKV_REBUILD_KERNEL=fastest is not one of"):
        assert_op_matches_twin(case, torch.bfloat16)


@needs_cuda_ops
def test_cuda_rebuild_chunks_that_straddle_pages():
    case = make_case(batch=3, heads=2, head_dim=64, chunk_size=6, budget=384, rank=72,
                     dtype=torch.float16, device="cuda", seed=5)
    assert_op_matches_twin(case, torch.float16)


@needs_cuda_ops
@pytest.mark.parametrize("kernel", KERNELS)
def test_cuda_rebuild_at_million_token_positions(kernel, monkeypatch):
    """RoPE angles up to ~1e6 rad (a 1M-token context): the kernels' angle reduction must match
    the twin's float32 cos/sin of the same rounded angle."""
    monkeypatch.setenv("SHADOWKV_REBUILD_KERNEL", kernel)
    case = make_case(batch=2, heads=4, head_dim=128, chunk_size=8, budget=512, rank=160,
                     dtype=torch.float16, device="cuda", seed=7)
    tpp = case.u_rows.shape[2]
    shift = math.lcm(tpp, case.chunk_size) * (1_000_000 // math.lcm(tpp, case.chunk_size))
    # Column c + shift/tpp of the new page table is column c of the old one: same coefficients,
    # positions ~1M further on.
    pad = case.tables.u_pages[:, :1].expand(-1, shift // tpp)
    case.tables = dataclasses.replace(case.tables,
                                      u_pages=torch.cat([pad, case.tables.u_pages], 1).contiguous())
    case.fetch = torch.where(case.fetch >= 0, case.fetch + shift // case.chunk_size, case.fetch)
    assert_op_matches_twin(case, torch.float16)
