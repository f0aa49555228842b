"""The decoder layer's fused elementwise ops: RoPE of q and k, RMSNorm with the residual add,
SiLU-and-multiply, and the KV cache write (csrc/model_fusions.cu).

At decode batch sizes these tensors are a few KiB, so each torch kernel costs its launch gap
and nothing else; the fused kernels do in one launch what the twins do in two to four. Each twin
is the model's code as it was before the fusion, and each kernel rounds where its twin
materializes a tensor, so in float16/bfloat16 the two agree bit for bit (rms_norm: see its
docstring). Float32 RoPE runs the twin everywhere: there the product in addcmul is not exact, so
whether torch's kernel fuses it into an FMA decides the last bit, which the kernel could not
promise to match; the other ops have float32 kernels.
"""
import torch
from torch import nn

from ..model.rope import apply_rope
from .extension import use_cuda_op

_ROPE_DTYPES = (torch.float16, torch.bfloat16)
_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def rope_qk(qk: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
            num_q_heads: int) -> tuple[torch.Tensor, torch.Tensor]:
    """qk: [T, Hq + Hk, D] (the q and k heads of the qkv projection, any strides with a
    contiguous last dim); cos, sin: [T, D], sin as `rope.signed_sin` gives it. Returns q
    [T, Hq, D] (contiguous, as the attention kernels take it) and k [T, Hk, D], rotated."""
    if (use_cuda_op(qk, cos, sin) and qk.dtype in _ROPE_DTYPES
            and cos.dtype == qk.dtype == sin.dtype and _rows(qk, cos, sin)):
        return torch.ops.shadowkv.rope_qk(qk, cos, sin, num_q_heads)
    return rope_qk_torch(qk, cos, sin, num_q_heads)


def rope_qk_torch(qk, cos, sin, num_q_heads):
    rotated = apply_rope(qk, cos, sin)  # q and k rotated together
    return rotated[:, :num_q_heads].contiguous(), rotated[:, num_q_heads:]


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """x: [T, N]; weight: [N]. The CUDA kernel sums the squares in another order than torch's
    rms_norm, so its rstd can differ in the last float bit and an output, rarely, by one ulp."""
    if _norm_on_cuda(x, weight):
        return torch.ops.shadowkv.rms_norm(x, weight, eps)
    return rms_norm_torch(x, weight, eps)


def rms_norm_torch(x, weight, eps):
    return nn.functional.rms_norm(x, weight.shape, weight, eps)


def fused_add_rms_norm(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor,
                       eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """In place, as vLLM's: residual += x, then x = rms_norm(residual). Returns (x, residual),
    the same tensors. The add rounds to the dtype before the norm reads it (as `x + residual`
    then `rms_norm` did); the norm's rounding is rms_norm's."""
    if _norm_on_cuda(x, weight) and residual.dtype == x.dtype and _rows(residual):
        torch.ops.shadowkv.fused_add_rms_norm(x, residual, weight, eps)
        return x, residual
    return fused_add_rms_norm_torch(x, residual, weight, eps)


def fused_add_rms_norm_torch(x, residual, weight, eps):
    residual.add_(x)
    x.copy_(rms_norm_torch(residual, weight, eps))
    return x, residual


def _norm_on_cuda(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return (use_cuda_op(x, weight) and x.dim() == 2 and x.dtype in _DTYPES
            and weight.dtype == x.dtype and weight.dim() == 1 and _rows(x, weight))


def _rows(*tensors: torch.Tensor) -> bool:
    """The kernels read rows with a contiguous last dim (every tensor the model passes has)."""
    return all(t.stride(-1) == 1 for t in tensors)


def silu_and_mul(gate_up: torch.Tensor) -> torch.Tensor:
    """gate_up: [T, 2I] = [gate | up] (the fused projection). Returns silu(gate) * up, [T, I];
    silu's result is rounded to the dtype before the product, as the two torch ops round."""
    if (use_cuda_op(gate_up) and gate_up.dim() == 2 and gate_up.dtype in _DTYPES
            and _rows(gate_up)):
        return torch.ops.shadowkv.silu_and_mul(gate_up)
    return silu_and_mul_torch(gate_up)


def silu_and_mul_torch(gate_up):
    gate, up = gate_up.chunk(2, dim=-1)
    return nn.functional.silu(gate) * up


def store_kv(kv: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pages: torch.Tensor,
             rows: torch.Tensor, layer: int) -> None:
    """kv: [pages, L, 2, H, block_size, D] (KVStorage.kv); k, v: [T, H, D] (any strides with a
    contiguous last dim); pages, rows: int [T], where each token's row goes. Writes K and V of
    `layer` in one launch. Tokens that share a slot (the padding rows of a captured batch all
    write row 0 of the null page) leave one of their values there, as index_put does."""
    if use_cuda_op(kv, k, v, pages, rows) and kv.dtype in _DTYPES and _rows(kv, k, v):
        torch.ops.shadowkv.store_kv(kv, k, v, pages, rows, layer)
        return
    store_kv_torch(kv, k, v, pages, rows, layer)


def store_kv_torch(kv, k, v, pages, rows, layer):
    kv[pages, layer, 0, :, rows] = k
    kv[pages, layer, 1, :, rows] = v
