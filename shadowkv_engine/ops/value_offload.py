"""Writes token value rows from the device into the CPU value store.

On CUDA the fast path writes pinned host memory directly from a kernel (zero-copy over PCIe, the
reverse of the value gather): the copy is queued on the current stream and the host never waits.
"""
import torch

from .extension import use_cuda_op


def offload_values(store: torch.Tensor, values: torch.Tensor, pages: torch.Tensor,
                   offsets: torch.Tensor, layer: int) -> None:
    """store[pages[i], layer, :, offsets[i], :] = values[i] for every row i.
    store: [Pc, L, H, bs, D] value store (pinned host memory when values are on CUDA);
    values: [N, H, D] token rows on the device (any strides in N and H; last dim contiguous);
    pages, offsets: int32 or int64 [N] on the values' device. Rows must name distinct slots, and
    on the fast path they are not range-checked (that would need a host sync)."""
    if (use_cuda_op(values, pages, offsets) and store.is_pinned() and _vector_rows(store)
            and _vector_rows(values)):
        torch.ops.shadowkv.offload_values(store, values, pages, offsets, layer)
        return
    offload_values_torch(store, values, pages, offsets, layer)


def offload_values_torch(store, values, pages, offsets, layer):
    """The twin: an index_put on the store (a synchronous copy when values are on a GPU)."""
    device = store.device
    store[pages.to(device).long(), layer, :, offsets.to(device).long()] = values.to(device)


def _vector_rows(t: torch.Tensor) -> bool:
    """Whether every row of t starts on a 16-byte boundary and is a whole number of 16-byte
    vectors, as the kernel's vector copies need."""
    item = t.element_size()
    return (t.stride(-1) == 1 and t.shape[-1] * item % 16 == 0 and t.data_ptr() % 16 == 0
            and all(s * item % 16 == 0 for s in t.stride()[:-1]))
