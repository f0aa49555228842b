"""Page-locked host memory of exactly the size asked for, for the CPU value store.

`torch.empty(..., pin_memory=True)` goes through torch's caching host allocator, which rounds
every request up to a power of two: a 96 GiB value pool asks the driver for 128 GiB, and on a
host with 128 GiB of RAM that fails ("CUDA error: out of memory"), while 64 GiB succeeds. So the
store is allocated as ordinary memory and page-locked in place with `cudaHostRegister` (portable,
mapped: the GPU reads it over PCIe at the same address, as the zero-copy kernels expect).

The memory belongs to a numpy array that every tensor view keeps alive (torch.from_numpy holds
it); the registration is undone when that array is freed, after the last view is gone.
"""
import weakref

import numpy as np
import torch

HOST_REGISTER_PORTABLE_MAPPED = 0x01 | 0x02  # cudaHostRegisterPortable | cudaHostRegisterMapped


def pinned_empty(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised page-locked CPU tensor of `shape` (needs CUDA)."""
    nbytes = int(np.prod(shape)) * dtype.itemsize
    if nbytes == 0:
        return torch.empty(shape, dtype=dtype, pin_memory=True)
    # Whole 4 KiB pages, so that no page is shared with another allocation while locked.
    buffer = np.empty(nbytes + 4096, dtype=np.uint8)
    start = (-buffer.ctypes.data) % 4096
    region = buffer[start:start + nbytes]
    cudart = torch.cuda.cudart()
    error = int(cudart.cudaHostRegister(region.ctypes.data, nbytes,
                                        HOST_REGISTER_PORTABLE_MAPPED))
    if error != 0:
        reason = cudart.cudaGetErrorString(cudart.cudaError(error))
        raise RuntimeError(
            f"could not page-lock {nbytes / 2**30:.1f} GiB of host memory for the CPU value store "
            f"(cudaHostRegister: {reason}); lower cpu_offload_gb or num_cpu_blocks")
    # _unregister is looked up when the buffer dies, not now (the tests watch it).
    weakref.finalize(buffer, lambda address: _unregister(address), region.ctypes.data)
    return torch.from_numpy(region).view(dtype).view(shape)


def _unregister(address: int) -> None:
    torch.cuda.cudart().cudaHostUnregister(address)
