"""Writes token value rows from the device into the value store.

On CUDA the fast path writes pinned host memory directly from a kernel (zero-copy over PCIe, the
reverse of the value gather), and the store's device tier from the same kernel: the copy is
queued on the current stream and the host never waits.
"""
import torch

from .extension import host_tier_readable, use_cuda_op


def offload_values(store: torch.Tensor, values: torch.Tensor, pages: torch.Tensor,
                   offsets: torch.Tensor, layer: int,
                   device_store: torch.Tensor | None = None) -> None:
    """store[pages[i], layer, :, offsets[i], :] = values[i] for every row i, where a page from
    store.shape[0] on is page `pages[i] - store.shape[0]` of device_store.
    store: [Ph, L, H, bs, D] host tier (pinned host memory when values are on CUDA);
    device_store: [Pd, L, H, bs, D] on the values' device, or None;
    values: [N, H, D] token rows on the device (any strides in N and H; last dim contiguous);
    pages, offsets: int32 or int64 [N] on the values' device. Rows must name distinct slots, and
    on the fast path they are not range-checked (that would need a host sync)."""
    if (use_cuda_op(values, pages, offsets) and host_tier_readable(store) and _vector_rows(store)
            and _vector_rows(values)):
        torch.ops.shadowkv.offload_values(store, values, pages, offsets, layer, device_store)
        return
    offload_values_torch(store, values, pages, offsets, layer, device_store)


def offload_values_torch(store, values, pages, offsets, layer, device_store=None):
    """The twin: index_puts on the tiers (a synchronous copy for the host tier of a GPU run)."""
    host_pages = store.shape[0]
    pages, offsets = pages.long(), offsets.long()
    on_host = pages < host_pages
    cpu = store.device
    store[pages[on_host].to(cpu), layer, :, offsets[on_host].to(cpu)] = values[on_host].to(cpu)
    if device_store is not None:
        on_device = ~on_host
        device_store[pages[on_device] - host_pages, layer, :, offsets[on_device]] = (
            values[on_device].to(device_store.device))


def _vector_rows(t: torch.Tensor) -> bool:
    """Whether every row of t starts on a 16-byte boundary and is a whole number of 16-byte
    vectors, as the kernel's vector copies need."""
    item = t.element_size()
    return (t.stride(-1) == 1 and t.shape[-1] * item % 16 == 0 and t.data_ptr() % 16 == 0
            and all(s * item % 16 == 0 for s in t.stride()[:-1]))
