"""Exact K/V of a range of token positions in GPU pages: a dense sequence, or ShadowKV's tail.

Positions [first_position, num_tokens) are stored; page index i holds positions i*bs .. i*bs+bs-1
in GPU page `pages.array[i]`. Page indices below `first_page` have been released (their tokens
were compressed); their entries stay in the array so that indices never shift.
"""
import numpy as np
import torch

from .page_list import PageList
from .page_pool import PagePool
from .storage import KVStorage, to_device


class PagedTokens:
    def __init__(self, storage: KVStorage, pool: PagePool):
        self.storage = storage
        self.pool = pool
        self.block_size = storage.layout.block_size
        self.pages = PageList(storage.device)
        self.first_page = 0
        self.num_tokens = 0

    def pages_needed(self, num_new: int) -> int:
        if num_new <= 0:
            return 0
        return max(0, (self.num_tokens + num_new - 1) // self.block_size + 1 - len(self.pages))

    def reserve(self, count: int) -> None:
        """Appends `count` pages (what pages_needed counted)."""
        if count:
            self.pages.extend(self.pool.allocate(count))

    def slot(self, position: int) -> tuple[int, int]:
        return int(self.pages.array[position // self.block_size]), position % self.block_size

    def slots(self, start: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """(page id, row in page) of positions start .. start+count-1, for writing new K/V."""
        positions = np.arange(start, start + count)
        return self.pages.array[positions // self.block_size], positions % self.block_size

    def read(self, layer: int, start: int, end: int) -> tuple[torch.Tensor, torch.Tensor]:
        """K and V of positions [start, end) as [H, end-start, D] each (a copy)."""
        bs = self.block_size
        first, last = start // bs, (end - 1) // bs
        pages = to_device(self.pages.array[first:last + 1].astype(np.int64), self.storage.device)
        kv = self.storage.kv[pages, layer]  # [n, 2, H, bs, D]
        n, _, heads, _, dim = kv.shape
        kv = kv.permute(1, 2, 0, 3, 4).reshape(2, heads, n * bs, dim)
        lo = start - first * bs
        return kv[0, :, lo:lo + end - start], kv[1, :, lo:lo + end - start]

    def release_below(self, position: int) -> None:
        """Frees the pages whose every position is below `position`."""
        last_dead = position // self.block_size
        if last_dead > self.first_page:
            self.pool.free(self.pages.array[self.first_page:last_dead].tolist())
            self.first_page = last_dead

    def free(self) -> None:
        self.pool.free(self.pages.array[self.first_page:].tolist())
        self.pages.clear()
        self.first_page = 0
