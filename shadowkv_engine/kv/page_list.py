"""An ordered list of page ids with a cached device copy, rebuilt only when the list grows."""
import torch

from .storage import index_tensor


class PageList:
    def __init__(self, device: torch.device):
        self.ids: list[int] = []
        self.device = device
        self._tensor: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def extend(self, ids: list[int]) -> None:
        self.ids.extend(ids)
        self._tensor = None

    def tensor(self) -> torch.Tensor:
        """int64 page ids on the device (a single 0 when empty, so tables keep their shape)."""
        if self._tensor is None:
            self._tensor = index_tensor(self.ids or [0], self.device)
        return self._tensor

    def clear(self) -> list[int]:
        ids, self.ids, self._tensor = self.ids, [], None
        return ids
