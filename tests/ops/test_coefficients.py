"""Coefficient rows of new tokens written into their pages: the twin against a float64 reference,
and the CUDA op (csrc/project_coefficients.cu) against the same reference."""
import pytest
import torch

from shadowkv_engine.ops.coefficients import project_coefficients, project_coefficients_torch
from shadowkv_engine.ops.paged import gather_head_rows
from paged_case import make_case, needs_cuda_ops


def case(batch, heads, head_dim, rank, dtype, device, seed=0):
    """A paged case, each row's new token at a random (page, row) of its coefficient pages, and
    its pre-RoPE key as a strided slice of a wider projection output (as the model has it)."""
    c = make_case(batch, heads, head_dim, 8, 256, rank, dtype, device, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    tokens = c.u_rows.shape[2]
    cols = torch.randint(0, c.tables.u_pages.shape[1], (batch,), generator=gen)
    u_page = c.tables.u_pages.cpu()[torch.arange(batch), cols].long().to(device)
    u_row = torch.randint(0, tokens, (batch,), generator=gen).to(device)
    qkv = torch.randn(batch, 3 * heads + 2, head_dim, generator=gen, dtype=dtype).to(device)
    k_pre = qkv[:, 2 * heads: 3 * heads]
    return c, k_pre, u_page, u_row


def reference(c, k_pre):
    basis = gather_head_rows(c.head_rows, c.tables.basis_pages, c.layer, c.rank)
    return torch.einsum("bhd,bhrd->br", k_pre.double(), basis.double())


def written_rows(c, u_page, u_row):
    return c.u_rows[u_page, c.layer, u_row]


def assert_only_rows_written(c, before, u_page, u_row):
    """The arena equals its copy from before the op everywhere but the rows written."""
    c.u_rows[u_page, c.layer, u_row] = 0
    c.layout.u_rows_view(before, c.rank)[u_page, c.layer, u_row] = 0
    assert torch.equal(c.arena.nan_to_num(7.0), before.nan_to_num(7.0))


@pytest.mark.parametrize("rank", [160, 100])
def test_twin_writes_the_projection_and_nothing_else(rank):
    c, k_pre, u_page, u_row = case(3, 4, 64, rank, torch.float32, "cpu")
    before = c.arena.clone()
    project_coefficients_torch(k_pre, c.head_rows, c.tables.basis_pages, c.layer, c.rank,
                               c.u_rows, u_page, u_row)
    torch.testing.assert_close(written_rows(c, u_page, u_row), reference(c, k_pre).float())
    assert_only_rows_written(c, before, u_page, u_row)


@needs_cuda_ops
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("batch,heads,head_dim,rank", [(1, 8, 128, 160), (8, 8, 128, 160),
                                                       (5, 2, 64, 100), (3, 32, 128, 256),
                                                       (2, 4, 256, 96), (2, 64, 128, 64)])
def test_cuda_op_equals_reference(batch, heads, head_dim, rank, dtype):
    c, k_pre, u_page, u_row = case(batch, heads, head_dim, rank, dtype, "cuda", seed=batch)
    before = c.arena.clone()
    project_coefficients(k_pre, c.head_rows, c.tables.basis_pages, c.layer, c.rank, c.u_rows,
                         u_page, u_row)
    got = written_rows(c, u_page, u_row).double()
    want = reference(c, k_pre).to(dtype).double()  # rounded once, like the op
    tolerance = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}[dtype]
    torch.testing.assert_close(got, want, rtol=tolerance, atol=tolerance * want.abs().max())
    assert_only_rows_written(c, before, u_page, u_row)
