"""The cache of one sequence: dense while it prefills, ShadowKV once its prompt is compressed.

The engine talks only to this class: before a step it asks `pages_needed(n)` (so the scheduler
can admit, wait or preempt) and calls `reserve(n)`; during the step each layer calls `attend`;
after it `end_step(n)`, which compresses the sequence when its prompt has just been prefilled.
"""
from ..config import ShadowKVConfig
from ..model.rope import RotaryEmbedding
from .dense import DenseKV
from .page_pool import PagePool
from .shadowkv import ShadowKV
from .storage import KVStorage


class SequenceKV:
    def __init__(self, storage: KVStorage, gpu_pool: PagePool, cpu_pool: PagePool,
                 rotary: RotaryEmbedding, sliding_window: int | None,
                 shadowkv: ShadowKVConfig | None, compress_at: int | None):
        """compress_at: the prompt length after which to compress, or None to stay dense."""
        self.storage, self.gpu_pool, self.cpu_pool = storage, gpu_pool, cpu_pool
        self.rotary = rotary
        self.shadowkv_config = shadowkv
        self.compress_at = compress_at
        self.cache: DenseKV | ShadowKV = DenseKV(storage, gpu_pool, sliding_window)

    @property
    def compressed(self) -> bool:
        return isinstance(self.cache, ShadowKV)

    @property
    def num_tokens(self) -> int:
        return self.cache.num_tokens

    def _compresses_after(self, num_new: int) -> bool:
        return (not self.compressed and self.compress_at is not None
                and self.num_tokens + num_new == self.compress_at)

    def pages_needed(self, num_new: int) -> tuple[int, int]:
        """(GPU pages, CPU pages) the next step of num_new tokens will allocate."""
        gpu, cpu = self.cache.pages_needed(num_new)
        if self._compresses_after(num_new):
            extra_gpu, extra_cpu = ShadowKV.pages_to_compress(
                self.compress_at, self.shadowkv_config, self.storage.layout)
            gpu, cpu = gpu + extra_gpu, cpu + extra_cpu
        return gpu, cpu

    def reserve(self, num_new: int) -> None:
        self.cache.reserve(num_new)

    def attend(self, layer, q, k_pre, k, v):
        return self.cache.attend(layer, q, k_pre, k, v)

    def end_step(self, num_new: int) -> None:
        compress = self._compresses_after(num_new)
        self.cache.end_step(num_new)
        if compress:
            shadow = ShadowKV(self.storage, self.gpu_pool, self.cpu_pool, self.shadowkv_config,
                              self.rotary, self.cache.tokens)
            shadow.compress()
            self.cache = shadow

    def free(self) -> None:
        self.cache.free()
