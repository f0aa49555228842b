"""Owns the KV memory: the GPU page arena and the value store (pinned host pages, and a device
tier where the arena has memory to spare: value_tier_plan.py), who holds what, and the batch
slots of running sequences.

Admission is by both budgets: a sequence joins only when the GPU pages for its whole remaining
prefill (plus what compressing it allocates) and the value pages it needs are free. A sequence that
could never fit, even alone, is rejected when it is added. During a step, `allocate(seq, n)` is the
one call that counts and takes the pages a sequence's next n tokens need.
"""
import logging

import torch

from ..config import EngineConfig
from ..errors import InvalidRequestError, RequestTooLargeError
from ..kv.page_pool import PagePool
from ..kv.sequence_kv import Growth, SequenceKV
from ..kv.shadowkv import ShadowKV, chunk_counts
from ..kv.sparse_state import SparseDecodeState
from ..kv.storage import NULL_PAGE, KVStorage, PageLayout
from ..kv.value_pool import TieredValuePool
from ..model.config import ModelConfig
from .sequence import Sequence
from .value_tier_plan import SequencePages, auto_device_tier, sequences_that_fit

logger = logging.getLogger(__name__)
GIB = 1 << 30
# Device memory kept out of the KV pool besides a step's activations: attention workspaces,
# staging buffers, captured graphs.
RESERVED_BYTES = 1 * GIB
PIN_GIB_PER_S = 1.4  # pinning host memory, measured on the GPU machine (DESIGN.md section 5)


class BlockManager:
    def __init__(self, config: EngineConfig, model_config: ModelConfig, dtype: torch.dtype,
                 device: torch.device, num_gpu_pages: int, num_cpu_pages: int,
                 max_model_len: int | None = None):
        """num_gpu_pages: the KV budget in arena pages, part of which may become the value
        store's device tier (planned for sequences of max_model_len; None: no automatic tier)."""
        self.config = config
        self.shadowkv = config.shadowkv if config.attention == "shadowkv" else None
        self.layout = PageLayout(model_config.num_layers, model_config.num_kv_heads,
                                 model_config.head_dim, config.block_size)
        moved = self._device_tier_pages(num_gpu_pages, num_cpu_pages, dtype, device,
                                        max_model_len)
        num_gpu_pages -= moved
        if moved and self._device_tier_holds_every_sequence(2 * moved, max_model_len):
            # No batch the engine can run reaches the host store: do not pin memory for it.
            logger.info("the GPU value store holds the values of max_num_seqs (%d) sequences of "
                        "%s tokens: no pinned CPU value store", config.max_num_seqs,
                        max_model_len)
            num_cpu_pages = 0
        self.storage = KVStorage(self.layout, num_gpu_pages, num_cpu_pages, dtype, device,
                                 self.shadowkv.rank if self.shadowkv else None, 2 * moved)
        self.gpu_pool = PagePool("GPU KV", num_gpu_pages, first_id=NULL_PAGE + 1)
        self.value_pool = TieredValuePool(num_cpu_pages, 2 * moved)
        self.free_slots = list(range(config.max_num_seqs - 1, -1, -1))
        self.sparse_state = (SparseDecodeState(config.max_num_seqs, model_config.num_layers,
                                               model_config.num_kv_heads, self.shadowkv, device)
                             if self.shadowkv else None)
        # Chunks selected by sequences already freed (their hits and host fetches are summed on
        # the device: SparseDecodeState.release).
        self.released_selected = 0

    @staticmethod
    def page_counts(config: EngineConfig, model_config: ModelConfig, dtype: torch.dtype,
                    device: torch.device, max_model_len: int) -> tuple[int, int]:
        layout = PageLayout(model_config.num_layers, model_config.num_kv_heads,
                            model_config.head_dim, config.block_size)
        gpu_page = layout.gpu_page_bytes(dtype)
        if config.num_gpu_blocks is not None:
            gpu = config.num_gpu_blocks
        elif device.type == "cuda":
            free, total = torch.cuda.mem_get_info(device)
            # Leave room for activations of a full step: the MLP's of every token, float32
            # logits (and the sampler's copies) of one row per sequence.
            activations = (config.max_num_batched_tokens * model_config.intermediate_size * 3
                           * dtype.itemsize + config.max_num_seqs * model_config.vocab_size * 16)
            if config.attention == "shadowkv":
                # Compression holds a prompt's keys and values, and its float32 pre-RoPE keys.
                key_width = model_config.num_kv_heads * model_config.head_dim
                activations += max_model_len * key_width * (2 * dtype.itemsize + 8)
            budget = (total * config.gpu_memory_utilization - (total - free) - activations
                      - RESERVED_BYTES)
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

    def _device_tier_pages(self, budget: int, host_value_pages: int, dtype: torch.dtype,
                           device: torch.device, max_model_len: int | None) -> int:
        """Arena pages of the KV budget that become device-tier value pages (two each)."""
        config = self.config
        if self.shadowkv is None:
            return 0
        if config.gpu_value_store_gb is not None:
            moved = -(-int(config.gpu_value_store_gb * GIB) // self.layout.gpu_page_bytes(dtype))
            if moved >= budget:
                raise InvalidRequestError(
                    f"gpu_value_store_gb ({config.gpu_value_store_gb}) takes the whole GPU KV "
                    f"budget ({budget} pages of {self.layout.gpu_page_bytes(dtype)} bytes); "
                    "lower it or give the engine more GPU memory", param="gpu_value_store_gb")
            return moved
        # Automatic only where device memory is the scarce kind and its size was not given.
        if device.type != "cuda" or config.num_gpu_blocks is not None or max_model_len is None:
            return 0
        return self.auto_device_tier_pages(budget, host_value_pages, max_model_len)

    def _longest_sequence(self, max_model_len: int | None) -> SequencePages | None:
        """Pages one compressed sequence of max_model_len holds; None if it would stay dense."""
        if max_model_len is None or not self._compresses(max_model_len - 1):
            return None
        peak, values = self.peak_pages(max_model_len - 1, max_model_len, True)
        steady, _ = self.steady_pages(max_model_len, True)
        return SequencePages(peak, steady, values)

    def _device_tier_holds_every_sequence(self, device_pages: int,
                                          max_model_len: int | None) -> bool:
        seq = self._longest_sequence(max_model_len)
        return seq is not None and device_pages >= self.config.max_num_seqs * seq.values

    def auto_device_tier_pages(self, budget: int, host_value_pages: int,
                               max_model_len: int) -> int:
        """The automatic split (value_tier_plan.py) for sequences of max_model_len."""
        seq = self._longest_sequence(max_model_len)
        if seq is None:
            return 0
        return auto_device_tier(budget, host_value_pages, seq, self.config.max_num_seqs)

    # ---- per sequence ----------------------------------------------------------------------
    def compress_at(self, seq: Sequence) -> int | None:
        """The prompt length after which the sequence is compressed, or None: it stays dense."""
        if self.shadowkv is None or not self._compresses(seq.num_prompt_tokens):
            return None
        return seq.num_prompt_tokens

    def new_cache(self, seq: Sequence) -> SequenceKV:
        """A cache for a sequence joining the running batch; it takes a batch slot."""
        return SequenceKV(self.storage, self.gpu_pool, self.value_pool, self.shadowkv,
                          self.compress_at(seq), self.free_slots.pop())

    def check_fits(self, seq: Sequence) -> None:
        """Raises RequestTooLargeError if the sequence cannot fit even with the pools empty."""
        gpu, cpu = self.peak_pages(seq.num_prompt_tokens, seq.num_prompt_tokens + seq.max_tokens,
                                   self.compress_at(seq) is not None)
        if gpu > self.gpu_pool.num_pages or cpu > self.value_pool.num_pages:
            raise RequestTooLargeError(
                f"the request needs {gpu} GPU KV pages and {cpu} value pages at its longest "
                f"({seq.num_prompt_tokens} prompt + {seq.max_tokens} generated tokens), but the "
                f"engine has {self.gpu_pool.num_pages} GPU KV and {self.value_pool.num_pages} "
                "value pages in all; shorten the request or give the engine more KV memory",
                param="max_tokens")

    def peak_pages(self, prompt_len: int, max_len: int, compressed: bool) -> tuple[int, int]:
        """(GPU, CPU) pages of a sequence at its largest: while its prompt is still dense and
        being compressed, or once it has all its tokens."""
        steady_gpu, cpu = self.steady_pages(max_len, compressed)
        if not compressed:
            return steady_gpu, cpu
        return max(self._prefill_pages(prompt_len, True)[0], steady_gpu), cpu

    def _prefill_pages(self, num_tokens: int, compressed: bool) -> tuple[int, int]:
        """(GPU, CPU) pages a prefill of num_tokens holds at its end: its dense pages, plus the
        compressed store made from them when it compresses."""
        dense = -(-num_tokens // self.layout.block_size)
        if not compressed:
            return dense, 0
        gpu, cpu = ShadowKV.pages_to_compress(num_tokens, self.shadowkv, self.layout)
        return dense + sum(gpu.values()), cpu

    def steady_pages(self, max_len: int, compressed: bool) -> tuple[int, int]:
        """(GPU, CPU) pages of a sequence of max_len tokens after its prefill."""
        bs = self.layout.block_size
        if not compressed:
            return -(-max_len // bs), 0
        cfg = self.shadowkv
        final, final_cpu = ShadowKV.pages_to_compress(max_len, cfg, self.layout)
        tail = -(-(cfg.local_tokens + cfg.chunk_size) // bs) + 1
        return sum(final.values()) + tail, final_cpu

    def max_concurrent_sequences(self, prompt_len: int, max_len: int) -> int:
        """The most sequences of this shape both pools hold at once, when they are prefilled one
        after another as admission does (one at its prefill peak, the others compressed)."""
        compressed = self.shadowkv is not None and self._compresses(prompt_len)
        peak, values = self.peak_pages(prompt_len, max_len, compressed)
        steady, _ = self.steady_pages(max_len, compressed)
        return sequences_that_fit(self.gpu_pool.num_pages, self.value_pool.num_pages,
                                  SequencePages(peak, steady, values), self.config.max_num_seqs)

    def memory_plan(self, max_len: int) -> str:
        """One line for the start-up log: the pools, the pages of one max_len sequence by kind,
        the largest batch at that length and how long pinning the value store takes."""
        dtype = self.storage.dtype
        gpu_gib = self.gpu_pool.num_pages * self.layout.gpu_page_bytes(dtype) / GIB
        value_page = self.layout.cpu_page_bytes(dtype)
        cpu_gib = self.value_pool.host.num_pages * value_page / GIB
        device_gib = self.value_pool.device.num_pages * value_page / GIB
        pinning = (f"pinned, ~{cpu_gib / PIN_GIB_PER_S:.0f} s to pin"
                   if self.storage.values.is_pinned() else "not pinned")
        compressed = self.shadowkv is not None and self._compresses(max_len - 1)
        if compressed:
            kinds, cpu = ShadowKV.pages_to_compress(max_len, self.shadowkv, self.layout)
            steady, _ = self.steady_pages(max_len, True)
            kinds["tail"] = steady - sum(kinds.values())
            per_seq = ", ".join(f"{kind} {count}" for kind, count in kinds.items())
            per_seq = f"GPU pages {per_seq}; value pages {cpu}"
        else:
            per_seq = f"GPU pages {self.steady_pages(max_len, False)[0]}"
        largest = self.max_concurrent_sequences(max_len - 1, max_len)
        return (f"{self.gpu_pool.num_pages} GPU KV pages ({gpu_gib:.1f} GiB), "
                f"{self.value_pool.host.num_pages} CPU value pages ({cpu_gib:.1f} GiB, "
                f"{pinning}), {self.value_pool.device.num_pages} GPU value pages "
                f"({device_gib:.1f} GiB); "
                f"a sequence of {max_len} tokens: {per_seq}; largest batch at that length: "
                f"{largest}")

    def _compresses(self, prompt_len: int) -> bool:
        cfg = self.shadowkv
        return prompt_len >= max(cfg.min_context_len, 1) and chunk_counts(prompt_len, cfg)[0] > 0

    def can_admit(self, seq: Sequence, running: list[Sequence]) -> bool:
        """True when the pages for the rest of this sequence's prefill are free now, beyond those
        the unfinished prefills of running sequences will still take: a sequence admitted now
        must not take the pages of one admitted before, which would then be preempted (at the
        memory edge it was, 15 times over 19 prefills of 122K; docs/benchmarks.md, run N)."""
        if not self.free_slots:
            return False
        compress_at = self.compress_at(seq)
        gpu, cpu = self._prefill_pages(compress_at or len(seq.token_ids), compress_at is not None)
        promised_gpu, promised_values = self.outstanding_prefill(running)
        return (gpu + promised_gpu <= self.gpu_pool.num_free
                and cpu + promised_values <= self.value_pool.num_free)

    @staticmethod
    def outstanding_prefill(running: list[Sequence]) -> tuple[int, int]:
        """(GPU, value) pages the running sequences' unfinished prefills (and their compression)
        will still allocate."""
        gpu = values = 0
        for seq in running:
            kv = seq.kv
            if kv is None or kv.compressed:
                continue
            remaining = (kv.compress_at or len(seq.token_ids)) - kv.num_tokens
            if remaining <= 0:
                continue
            growth = kv.plan_growth(remaining)
            if kv.pending is not None:  # its compressed store is allocated already
                growth = Growth(tail=growth.tail)
            gpu, values = gpu + growth.gpu, values + growth.value_pages
        return gpu, values

    def allocate(self, seq: Sequence, num_new: int) -> bool:
        """Takes the pages the sequence's next num_new tokens need (and, if they end its prompt,
        its compressed store's); False, taking nothing, when they are not all free."""
        growth = seq.kv.plan_growth(num_new)
        if growth.gpu > self.gpu_pool.num_free or growth.value_pages > self.value_pool.num_free:
            return False
        seq.kv.grow(growth)
        return True

    def release(self, seq: Sequence) -> None:
        kv = seq.kv
        if kv is None:
            return
        if kv.compressed:
            self.released_selected += kv.shadow.chunks_selected
        if self.sparse_state is not None:
            self.sparse_state.release(kv.slot)
        kv.free()
        self.free_slots.append(kv.slot)
        seq.kv = None

    def shadowkv_counters(self, running: list[Sequence]) -> tuple[int, int, int]:
        """(chunks selected, chunk hits, value bytes fetched from host memory) over the engine's
        lifetime. Every selected chunk that was not a hit was fetched, from the host store (over
        PCIe, counted by the gather) or from the device tier."""
        if self.sparse_state is None:
            return 0, 0, 0
        live = [seq.kv for seq in running if seq.kv is not None and seq.kv.compressed]
        selected = self.released_selected + sum(kv.shadow.chunks_selected for kv in live)
        hits, host_fetches = self.sparse_state.totals([kv.slot for kv in live])
        chunk_bytes = self.shadowkv.chunk_size * self.layout.head_dim * self.storage.dtype.itemsize
        return selected, hits, host_fetches * chunk_bytes
