"""Exact K/V of a range of token positions, in GPU pages (a dense sequence, or ShadowKV's tail).

Positions [first_position, num_tokens) are stored; page i holds positions i*bs .. i*bs+bs-1.
Pages wholly below `first_position` have been released (their tokens were compressed).
"""
import torch

from .attention import attend, causal_mask
from .page_pool import PagePool
from .storage import KVStorage, index_tensor


class PagedTokens:
    def __init__(self, storage: KVStorage, pool: PagePool):
        self.storage = storage
        self.pool = pool
        self.block_size = storage.layout.block_size
        self.pages: dict[int, int] = {}
        self.first_position = 0
        self.num_tokens = 0
        self._table: torch.Tensor | None = None  # device copy of the page ids, by page index
        self._table_low = 0

    def pages_needed(self, num_new: int) -> int:
        if num_new <= 0:
            return 0
        first = self.num_tokens // self.block_size
        last = (self.num_tokens + num_new - 1) // self.block_size
        return sum(1 for i in range(first, last + 1) if i not in self.pages)

    def reserve(self, num_new: int) -> None:
        first = self.num_tokens // self.block_size
        last = (self.num_tokens + num_new - 1) // self.block_size
        for i in range(first, last + 1):
            if i not in self.pages:
                self.pages[i] = self.pool.allocate()[0]
                self._table = None

    def _page_table(self, first: int, last: int) -> torch.Tensor:
        """Page ids of page indices first..last, from a device table rebuilt only when the
        pages change (every block_size tokens), not at every layer of every step."""
        if self._table is None:
            self._table_low = min(self.pages)
            self._table = index_tensor(
                [self.pages[i] for i in range(self._table_low, max(self.pages) + 1)],
                self.storage.device)
        return self._table[first - self._table_low:last - self._table_low + 1]

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor, start: int) -> None:
        """k, v: [T, H, D] for positions start .. start+T-1."""
        bs = self.block_size
        positions = torch.arange(start, start + k.shape[0], device=k.device)
        pages = self._page_table(start // bs, (start + k.shape[0] - 1) // bs)
        pages, offsets = pages[positions // bs - start // bs], positions % bs
        kv = self.storage.kv
        kv[pages, layer, 0, :, offsets] = k
        kv[pages, layer, 1, :, offsets] = v

    def read(self, layer: int, start: int, end: int):
        """K and V of positions [start, end) as [H, end-start, D] each."""
        bs = self.block_size
        first, last = start // bs, (end - 1) // bs
        kv = self.storage.kv[self._page_table(first, last), layer]  # [n, 2, H, bs, D]
        n, _, heads, _, dim = kv.shape
        kv = kv.permute(1, 2, 0, 3, 4).reshape(2, heads, n * bs, dim)
        lo = start - first * bs
        return kv[0, :, lo:lo + end - start], kv[1, :, lo:lo + end - start]

    def release_below(self, position: int) -> None:
        """Frees the pages whose every position is below `position`."""
        self.first_position = position
        dead = [i for i in self.pages if (i + 1) * self.block_size <= position]
        self.pool.free(self.pages.pop(i) for i in dead)
        self._table = None

    def free(self) -> None:
        self.pool.free(self.pages.values())
        self.pages.clear()
        self._table = None


class DenseKV:
    """A sequence attended exactly over all its tokens (dense mode, short sequences, prefills)."""

    def __init__(self, storage: KVStorage, pool: PagePool, sliding_window: int | None):
        self.tokens = PagedTokens(storage, pool)
        self.sliding_window = sliding_window

    @property
    def num_tokens(self) -> int:
        return self.tokens.num_tokens

    def pages_needed(self, num_new: int) -> tuple[int, int]:
        return self.tokens.pages_needed(num_new), 0

    def reserve(self, num_new: int) -> None:
        self.tokens.reserve(num_new)

    def attend(self, layer, q, k_pre, k, v):
        start = self.tokens.num_tokens
        self.tokens.write(layer, k, v, start)
        end = start + q.shape[0]
        window = self.sliding_window
        lo = 0 if window is None else max(0, start - window + 1)
        keys, values = self.tokens.read(layer, lo, end)
        mask = causal_mask(start - lo, q.shape[0], end - lo, q.device, window)
        return attend(q, keys, values, mask)

    def end_step(self, num_new: int) -> None:
        self.tokens.num_tokens += num_new

    def free(self) -> None:
        self.tokens.free()
