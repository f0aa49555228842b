"""Owns the KV memory: the GPU page arena and the pinned CPU value pages, and who holds what.

Admission is by both budgets: a sequence joins only when the GPU pages for its whole remaining
prefill (plus what compressing it allocates) and the CPU pages it needs are free. A sequence that
could never fit, even alone, is rejected when it is added.
"""
import logging

import torch

from ..config import EngineConfig
from ..errors import RequestTooLargeError
from ..kv.page_pool import PagePool
from ..kv.sequence_kv import SequenceKV
from ..kv.shadowkv import ShadowKV, chunk_counts
from ..kv.storage import KVStorage, PageLayout
from ..model.config import ModelConfig
from ..model.rope import RotaryEmbedding
from .sequence import Sequence

logger = logging.getLogger(__name__)
GIB = 1 << 30


class BlockManager:
    def __init__(self, config: EngineConfig, model_config: ModelConfig, dtype: torch.dtype,
                 device: torch.device, rotary: RotaryEmbedding, num_gpu_pages: int,
                 num_cpu_pages: int):
        self.config = config
        self.shadowkv = config.shadowkv if config.attention == "shadowkv" else None
        self.layout = PageLayout(model_config.num_layers, model_config.num_kv_heads,
                                 model_config.head_dim, config.block_size)
        self.sliding_window = model_config.sliding_window
        self.rotary = rotary
        self.storage = KVStorage(self.layout, num_gpu_pages, num_cpu_pages, dtype, device,
                                 self.shadowkv.rank if self.shadowkv else None)
        self.gpu_pool = PagePool("GPU KV", num_gpu_pages)
        self.cpu_pool = PagePool("CPU value", num_cpu_pages)
        # ShadowKV counters (chunks selected, hits, bytes fetched) of sequences already freed.
        self.released_counters = [0, 0, 0]

    @staticmethod
    def page_counts(config: EngineConfig, model_config: ModelConfig, dtype: torch.dtype,
                    device: torch.device, model_bytes: int) -> tuple[int, int]:
        layout = PageLayout(model_config.num_layers, model_config.num_kv_heads,
                            model_config.head_dim, config.block_size)
        gpu_page = layout.gpu_page_bytes(dtype)
        if config.num_gpu_blocks is not None:
            gpu = config.num_gpu_blocks
        elif device.type == "cuda":
            free, total = torch.cuda.mem_get_info(device)
            # Leave room for activations of a full step (logits dominate for small models).
            activations = config.max_num_batched_tokens * (
                model_config.vocab_size * 4 + model_config.intermediate_size * 2 * dtype.itemsize
                * 3)
            budget = total * config.gpu_memory_utilization - (total - free) - activations
            gpu = int(budget // gpu_page)
        else:
            gpu = int(config.cpu_kv_pool_gb * GIB // gpu_page)
        if config.num_cpu_blocks is not None:
            cpu = config.num_cpu_blocks
        elif config.attention == "shadowkv":
            cpu = int(config.cpu_offload_gb * GIB // layout.cpu_page_bytes(dtype))
        else:
            cpu = 0
        if gpu < 1:
            raise RuntimeError(f"no memory left for the KV cache ({gpu_page} bytes a page); "
                               "lower the model size, raise gpu_memory_utilization or set "
                               "num_gpu_blocks")
        return gpu, cpu

    # ---- per sequence ----------------------------------------------------------------------
    def compress_at(self, seq: Sequence) -> int | None:
        cfg = self.shadowkv
        if cfg is None or seq.num_prompt_tokens < max(cfg.min_context_len, 1):
            return None
        if chunk_counts(seq.num_prompt_tokens, cfg)[0] == 0:
            return None
        return seq.num_prompt_tokens

    def new_cache(self, seq: Sequence) -> SequenceKV:
        return SequenceKV(self.storage, self.gpu_pool, self.cpu_pool, self.rotary,
                          self.sliding_window, self.shadowkv, self.compress_at(seq))

    def check_fits(self, seq: Sequence) -> None:
        """Raises RequestTooLargeError if the sequence cannot fit even with the pools empty."""
        gpu, cpu = self.peak_pages(seq.num_prompt_tokens, seq.num_prompt_tokens + seq.max_tokens,
                                   self.compress_at(seq) is not None)
        if gpu > self.gpu_pool.num_pages or cpu > self.cpu_pool.num_pages:
            raise RequestTooLargeError(
                f"the request needs {gpu} GPU KV pages and {cpu} CPU value pages at its longest "
                f"({seq.num_prompt_tokens} prompt + {seq.max_tokens} generated tokens), but the "
                f"engine has {self.gpu_pool.num_pages} GPU and {self.cpu_pool.num_pages} CPU "
                "pages in all; shorten the request or give the engine more KV memory",
                param="max_tokens")

    def peak_pages(self, prompt_len: int, max_len: int, compressed: bool) -> tuple[int, int]:
        bs = self.layout.block_size
        dense = -(-max_len // bs)
        if not compressed:
            return dense, 0
        cfg = self.shadowkv
        prefill = -(-prompt_len // bs)
        compress_gpu, _ = ShadowKV.pages_to_compress(prompt_len, cfg, self.layout)
        final_gpu, final_cpu = ShadowKV.pages_to_compress(max_len, cfg, self.layout)
        tail = -(-(cfg.local_tokens + cfg.chunk_size) // bs) + 1
        return max(prefill + compress_gpu, final_gpu + tail), final_cpu

    def can_admit(self, seq: Sequence) -> bool:
        """True when the pages for the rest of this sequence's prefill are free now."""
        gpu, cpu = seq.kv.pages_needed(seq.num_uncomputed) if seq.kv else self._admission_need(seq)
        return gpu <= self.gpu_pool.num_free and cpu <= self.cpu_pool.num_free

    def _admission_need(self, seq: Sequence) -> tuple[int, int]:
        probe = self.new_cache(seq)
        target = probe.compress_at or len(seq.token_ids)
        return probe.pages_needed(target)

    def can_grow(self, seq: Sequence, num_new: int) -> bool:
        gpu, cpu = seq.kv.pages_needed(num_new)
        return gpu <= self.gpu_pool.num_free and cpu <= self.cpu_pool.num_free

    def release(self, seq: Sequence) -> None:
        if seq.kv is not None:
            if seq.kv.compressed:
                self._add_counters(self.released_counters, seq.kv.cache.counters())
            seq.kv.free()
            seq.kv = None

    def shadowkv_counters(self, running: list[Sequence]) -> tuple[int, int, int]:
        """(chunks selected, chunk hits, value bytes fetched) over the engine's lifetime."""
        total = list(self.released_counters)
        for seq in running:
            if seq.kv is not None and seq.kv.compressed:
                self._add_counters(total, seq.kv.cache.counters())
        return tuple(total)

    @staticmethod
    def _add_counters(total: list[int], counters: tuple[int, int, int]) -> None:
        for i, value in enumerate(counters):
            total[i] += value
