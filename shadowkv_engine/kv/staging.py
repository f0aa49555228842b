"""Host staging buffers in pinned memory paired with device buffers of the same shape.

The step's metadata is written on the host into numpy views of pinned memory, then uploaded with
one asynchronous copy per buffer. The device buffers never move, so a captured CUDA graph reads
each step's values from the addresses it was captured with.
"""
import numpy as np
import torch


class Staged:
    def __init__(self, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device):
        pin = device.type == "cuda"
        self.host_tensor = torch.zeros(shape, dtype=dtype, pin_memory=pin)
        self.host = self.host_tensor.numpy()
        # On the CPU the device buffer is the host buffer itself: nothing to copy.
        self.device = torch.zeros(shape, dtype=dtype, device=device) if pin else self.host_tensor

    def upload(self, rows: int) -> torch.Tensor:
        """Copies the first `rows` rows to the device; returns the device view of them."""
        view = self.device[:rows]
        if self.device is not self.host_tensor and rows:
            view.copy_(self.host_tensor[:rows], non_blocking=True)
        return view


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def csr(lengths: np.ndarray) -> np.ndarray:
    """[n + 1] int32 offsets of consecutive runs of the given lengths."""
    indptr = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=indptr[1:])
    return indptr
