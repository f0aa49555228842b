"""Finds the compiled CUDA ops, if this install has them."""
import functools
import os

import torch

# Head dims csrc/rebuild_keys.cu instantiates its kernel for; other dims use the twin.
REBUILD_HEAD_DIMS = (64, 128, 256)
# Head dims csrc/score_chunks.cu instantiates its kernels for.
SCORE_HEAD_DIMS = (64, 128, 256)


@functools.cache
def cuda_ops_available() -> bool:
    if os.environ.get("SHADOWKV_TORCH_OPS") == "1":
        return False  # force the plain-torch twins (debugging, A/B comparisons)
    try:
        import shadowkv_engine._C  # noqa: F401  (registers torch.ops.shadowkv.*)
    except ImportError:
        return False
    return hasattr(torch.ops, "shadowkv")


def use_cuda_op(*tensors: torch.Tensor) -> bool:
    return all(t.is_cuda for t in tensors) and cuda_ops_available()


def host_tier_readable(store: torch.Tensor) -> bool:
    """Whether the kernels can address the value store's host tier in place: pinned memory, or
    no pages at all (every value in the device tier)."""
    return store.is_pinned() or store.numel() == 0
