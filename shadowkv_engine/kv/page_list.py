"""An ordered list of page ids kept as a growable int32 array (the host copy the per-step metadata
is filled from) with a device copy made on demand and cached until the list changes."""
import numpy as np
import torch

from .storage import to_device


class PageList:
    def __init__(self, device: torch.device):
        self.device = device
        self._ids = np.zeros(8, dtype=np.int32)
        self._len = 0
        self._tensor: torch.Tensor | None = None

    def __len__(self) -> int:
        return self._len

    @property
    def array(self) -> np.ndarray:
        """The ids as an int32 array view (valid until the list next grows)."""
        return self._ids[:self._len]

    def extend(self, ids: list[int]) -> None:
        needed = self._len + len(ids)
        if needed > len(self._ids):
            grown = np.zeros(max(needed, 2 * len(self._ids)), dtype=np.int32)
            grown[:self._len] = self._ids[:self._len]
            self._ids = grown
        self._ids[self._len:needed] = ids
        self._len = needed
        self._tensor = None

    def tensor(self) -> torch.Tensor:
        """int64 page ids on the device (a single 0, the null page, when empty)."""
        if self._tensor is None:
            ids = self.array if self._len else np.zeros(1, dtype=np.int32)
            self._tensor = to_device(ids.astype(np.int64), self.device)
        return self._tensor

    def clear(self) -> list[int]:
        ids = self.array.tolist()
        self._len, self._tensor = 0, None
        return ids

