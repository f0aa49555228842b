"""Training batches made by a pool of CPU processes, a few steps ahead of the GPU.

Rendering and tokenizing 30K+ tokens of text per step is too slow for one Python process to keep
a GPU busy, so workers build the batches. Batch i is a pure function of (seed, i, its length), and
the length of batch i is the curriculum's length when it was queued, `prefetch` steps earlier: the
data stream does not depend on timing. With data parallelism (data_parallel.py) rank r of w takes
batches r, r + w, r + 2w, ...: together the ranks read the single-process stream, w at a time.
"""
import multiprocessing as mp
from collections import deque

import numpy as np
from tokenizers import Tokenizer

from . import real_text
from .documents import training_sequence

_tokenizer: Tokenizer | None = None
MAX_BATCH = 1 << 16  # sequence index = batch index * MAX_BATCH + position in batch


def _init_worker(tokenizer_json: str) -> None:
    global _tokenizer
    _tokenizer = Tokenizer.from_str(tokenizer_json)


def make_batch(seed: int, index: int, length: int, batch_size: int) -> tuple[np.ndarray, ...]:
    """(ids int32, loss bool, kind uint8), each [batch_size, length]."""
    sequences = [training_sequence(_tokenizer, length, seed, index * MAX_BATCH + j)
                 for j in range(batch_size)]
    return tuple(np.stack([getattr(s, name) for s in sequences]) for name in ("ids", "loss", "kind"))


class BatchFeeder:
    def __init__(self, tokenizer: Tokenizer, seed: int, batch_tokens: int, workers: int,
                 prefetch: int | None = None, start: int = 0, rank: int = 0, world: int = 1):
        """start: steps already taken (a resumed run starts at the batches after them)."""
        self.seed, self.batch_tokens = seed, batch_tokens
        self._index, self._stride = start * world + rank, world
        self._queue: deque = deque()
        self._prefetch = prefetch if prefetch is not None else 2 * workers
        real_text.passages()  # read once, before the fork: every worker shares them
        if workers > 0:
            # fork: workers start at once and inherit the imports; they never touch CUDA.
            self._pool = mp.get_context("fork").Pool(workers, _init_worker, (tokenizer.to_str(),))
        else:
            self._pool = None
            _init_worker(tokenizer.to_str())

    def batch_size(self, length: int) -> int:
        return max(1, self.batch_tokens // length)

    def next(self, length: int) -> tuple[np.ndarray, ...]:
        """The next batch; batches queued from now on have sequences of `length` tokens."""
        if self._pool is None:
            self._index += self._stride
            return make_batch(self.seed, self._index - self._stride, length,
                              self.batch_size(length))
        while len(self._queue) <= self._prefetch:
            args = (self.seed, self._index, length, self.batch_size(length))
            self._queue.append(self._pool.apply_async(make_batch, args))
            self._index += self._stride
        return self._queue.popleft().get()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
