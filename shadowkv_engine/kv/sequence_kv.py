"""The cache of one sequence, as plain state: its exact tokens in GPU pages, its compressed store
once its prompt is compressed (ShadowKV), and the batch slot it holds while it runs.

Before a step the block manager asks `plan_growth(n)` what the next n tokens allocate (so the
scheduler can admit, wait or preempt) and, if it fits, `grow(plan)` allocates exactly that; the
step writes and attends through the per-step metadata (`step_metadata.py`); after it,
`advance(n)` moves the counters, and the engine compresses and folds in a batched post-step
phase (`compression.py`).
"""
from dataclasses import dataclass

from ..config import ShadowKVConfig
from .page_pool import PagePool
from .paged_tokens import PagedTokens
from .shadowkv import ShadowKV
from .storage import KVStorage
from .value_pool import TieredValuePool


@dataclass(frozen=True)
class Growth:
    """Pages the next step of a sequence allocates."""
    tail: int = 0  # exact token pages
    u: int = 0  # coefficient pages of new tokens (compressed sequences)
    fold_lm: int = 0  # landmark page of a folded chunk
    fold_values: int = 0  # value-store page of a folded chunk
    compress_gpu: int = 0  # the compressed store made at the end of this step's prefill
    compress_values: int = 0

    @property
    def gpu(self) -> int:
        return self.tail + self.u + self.fold_lm + self.compress_gpu

    @property
    def value_pages(self) -> int:
        return self.fold_values + self.compress_values


class SequenceKV:
    def __init__(self, storage: KVStorage, gpu_pool: PagePool, value_pool: TieredValuePool,
                 shadowkv: ShadowKVConfig | None, compress_at: int | None, slot: int):
        """compress_at: the prompt length after which to compress, or None to stay dense."""
        self.storage, self.gpu_pool, self.value_pool = storage, gpu_pool, value_pool
        self.shadowkv_config = shadowkv
        self.compress_at = compress_at
        self.slot = slot
        self.tokens = PagedTokens(storage, gpu_pool)
        self.shadow: ShadowKV | None = None
        self.pending: ShadowKV | None = None  # allocated, filled when this step's prefill ends

    @property
    def compressed(self) -> bool:
        return self.shadow is not None

    @property
    def num_tokens(self) -> int:
        return self.tokens.num_tokens

    def compresses_after(self, num_new: int) -> bool:
        return (not self.compressed and self.compress_at is not None
                and self.num_tokens + num_new == self.compress_at)

    def plan_growth(self, num_new: int) -> Growth:
        tail = self.tokens.pages_needed(num_new)
        if self.shadow is not None:
            u, lm, cpu = self.shadow.growth(num_new)
            return Growth(tail=tail, u=u, fold_lm=lm, fold_values=cpu)
        if self.compresses_after(num_new):
            gpu, cpu = ShadowKV.pages_to_compress(self.compress_at, self.shadowkv_config,
                                                  self.storage.layout)
            return Growth(tail=tail, compress_gpu=sum(gpu.values()), compress_values=cpu)
        return Growth(tail=tail)

    def grow(self, growth: Growth) -> None:
        self.tokens.reserve(growth.tail)
        if self.shadow is not None:
            self.shadow.grow(growth.u, growth.fold_lm, growth.fold_values)
        elif growth.compress_gpu or growth.compress_values:
            self.pending = ShadowKV(self.storage, self.gpu_pool, self.value_pool,
                                    self.shadowkv_config, self.tokens, self.compress_at)

    def advance(self, num_new: int) -> None:
        self.tokens.num_tokens += num_new

    def free(self) -> None:
        for store in (self.shadow, self.pending):
            if store is not None:
                store.free()
        self.shadow = self.pending = None
        self.tokens.free()
