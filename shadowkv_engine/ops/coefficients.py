"""Coefficient rows of new tokens: each decode row's pre-RoPE key projected on its basis.

u[r] = sum over KV heads h and dims d of k_pre[h, d] * basis_h[r, d]: the rank-r row that, times
the basis, gives back the keys of all KV heads of the layer (kv/shadowkv.py). Written straight
into the coefficient pages; on CUDA one kernel reads the basis in place (csrc/
project_coefficients.cu), with float32 accumulation.
"""
import torch

from .extension import use_cuda_op
from .paged import gather_head_rows

# The CUDA kernel holds a lane's share of a basis row in registers: H*D*itemsize up to 8 KiB.
MAX_ROW_BYTES = 8192


def project_coefficients(k_pre: torch.Tensor, head_rows: torch.Tensor, basis_pages: torch.Tensor,
                         layer: int, rank: int, u_rows: torch.Tensor, u_page: torch.Tensor,
                         u_row: torch.Tensor) -> None:
    """k_pre: [B, H, D] pre-RoPE keys; head_rows: [pages, L, H, rows, D] (basis rows of sequence b
    at basis_pages[b]); u_rows: [pages, L, tokens, rank]; u_page, u_row: int64 [B], where row b's
    coefficients go (u_rows[u_page[b], layer, u_row[b]])."""
    item = k_pre.element_size()
    if (use_cuda_op(k_pre, head_rows, basis_pages, u_rows) and k_pre.stride(-1) == 1
            and k_pre.shape[1] * k_pre.shape[2] * item <= MAX_ROW_BYTES
            and k_pre.stride(0) * item % 16 == 0 and k_pre.stride(1) * item % 16 == 0
            and k_pre.data_ptr() % 16 == 0):
        torch.ops.shadowkv.project_coefficients(k_pre, head_rows, basis_pages, layer, rank,
                                                u_rows, u_page, u_row)
        return
    project_coefficients_torch(k_pre, head_rows, basis_pages, layer, rank, u_rows, u_page, u_row)


def project_coefficients_torch(k_pre, head_rows, basis_pages, layer, rank, u_rows, u_page, u_row):
    basis = gather_head_rows(head_rows, basis_pages, layer, rank)  # [B, H, rank, D]
    # In the storage dtype: the GEMM accumulates in float32 and the row is stored in it anyway.
    u_rows[u_page, layer, u_row] = torch.einsum("bhd,bhrd->br", k_pre, basis)
