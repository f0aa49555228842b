"""Loads the model and runs one scheduled batch through it: builds the step metadata, runs the
forward eagerly or replays a captured decode step, and ends the step (counters, compression,
folding). Logits stay on the device for the sampler."""
import logging

import numpy as np
import torch

from ..config import EngineConfig
from ..kv import compression
from ..kv.attention_flashinfer import FlashInferAttention, flashinfer_available
from ..kv.attention_torch import TorchAttention
from ..kv.step_attention import StepAttention
from ..kv.step_metadata import DecodeRow, PrefillRow, StepMetadata, StepMetadataBuilder
from ..kv.storage import to_device
from ..model.config import TORCH_DTYPES, ModelConfig
from ..model.llama import LlamaForCausalLM
from ..model.loader import load_weights
from .block_manager import BlockManager
from .cuda_graphs import DecodeGraphs, chunk_bucket
from .host_range import host_range
from .in_flight import PreviousTokens
from .scheduler import ScheduledBatch
from .two_batch import TwoBatchOverlap, first_half

logger = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available here")
    return device


def resolve_dtype(name: str, model_config: ModelConfig, device: torch.device) -> torch.dtype:
    if name != "auto":
        return TORCH_DTYPES[name]
    if device.type == "cpu":
        return torch.float32  # CPU half-precision matmuls are slow and imprecise
    return model_config.torch_dtype if model_config.torch_dtype != torch.float32 else torch.bfloat16


def resolve_attention_backend(name: str, device: torch.device, dtype: torch.dtype) -> str:
    """flashinfer's kernels need CUDA and 16-bit K/V; "auto" takes them where they apply."""
    usable = device.type == "cuda" and dtype in (torch.float16, torch.bfloat16)
    if name == "flashinfer":
        if not usable:
            raise RuntimeError(f"attention_backend 'flashinfer' needs a CUDA device and float16 "
                               f"or bfloat16, got {device} and {dtype}")
        if not flashinfer_available():
            raise RuntimeError("attention_backend 'flashinfer' was asked for but flashinfer is "
                               "not installed; pip install 'shadowkv-engine[gpu]' (see README)")
        return name
    if name == "auto":
        return "flashinfer" if usable and flashinfer_available() else "torch"
    return name


@torch.no_grad()
def randomize_weights(model: torch.nn.Module, seed: int) -> None:
    """Random weights of the checkpoint's shapes (`load_format="dummy"`): throughput does not
    depend on weight values, so benchmarks of real shapes need no download."""
    generator = torch.Generator(device=model.lm_head.weight.device).manual_seed(seed)
    for name, param in model.named_parameters():
        if name.endswith("norm.weight"):
            param.fill_(1.0)
        elif name.endswith("bias"):
            param.zero_()
        else:
            param.normal_(0.0, 0.02, generator=generator)


def take_rows(out: torch.Tensor, rows: list[int]) -> torch.Tensor:
    """out[rows] without a host sync: indexing a CUDA tensor with a Python list copies the index
    from pageable memory, which waits for everything queued (async scheduling would stall)."""
    if rows == list(range(len(rows))):
        return out[:len(rows)]
    return out[to_device(np.array(rows, dtype=np.int64), out.device)]


class ModelRunner:
    def __init__(self, config: EngineConfig, model_config: ModelConfig, max_model_len: int):
        self.config = config
        self.model_config = model_config
        self.max_model_len = max_model_len
        self.device = resolve_device(config.device)
        self.dtype = resolve_dtype(config.dtype, model_config, self.device)
        # Built in place on the device and in the target dtype: an 8B model never exists as a
        # float32 copy in host memory.
        default_dtype = torch.get_default_dtype()
        torch.set_default_dtype(self.dtype)
        try:
            with torch.device(self.device):
                model = LlamaForCausalLM(model_config, max_model_len)
        finally:
            torch.set_default_dtype(default_dtype)
        if config.load_format == "dummy":
            randomize_weights(model, config.seed)
        else:
            load_weights(model, config.model, model_config.tie_word_embeddings)
        self.model = model.eval()
        self.backend_name = resolve_attention_backend(config.attention_backend, self.device,
                                                      self.dtype)
        self._inputs_staged: torch.cuda.Event | None = None  # recorded after a step's uploads

    def bind_kv(self, blocks: BlockManager) -> None:
        """Attaches the KV memory: metadata staging, the attention backend, decode graphs."""
        self.blocks = blocks
        self.storage = blocks.storage
        self.shadowkv = blocks.shadowkv
        use_graphs = (self.device.type == "cuda" and self.backend_name == "flashinfer"
                      and not self.config.enforce_eager)
        self.graphs = DecodeGraphs(self.config.max_num_seqs, self._forward) if use_graphs else None
        self.overlap = TwoBatchOverlap(self.config.two_batch_overlap, self.device,
                                       self.shadowkv is not None)
        max_rows = self.graphs.sizes[-1] if self.graphs else self.config.max_num_seqs
        if self.graphs and self.overlap.possible:
            max_rows *= 2  # two halves, each padded to a captured size
        self.builder = StepMetadataBuilder(self.config, self.storage, self.max_model_len, max_rows)
        # One backend per micro-batch: each keeps its own plan (and flashinfer workspace).
        self.backends = [self._new_backend(prefill=True)]
        if self.overlap.possible:
            self.backends.append(self._new_backend(prefill=False))
        self.backend = self.backends[0]
        logger.info("attention backend %s, decode CUDA graphs %s, two-batch overlap %s",
                    self.backend_name, "on" if self.graphs else "off",
                    self.config.two_batch_overlap)

    def _new_backend(self, prefill: bool):
        window = self.model_config.sliding_window
        if self.backend_name == "flashinfer":
            return FlashInferAttention(self.storage, self.model_config.num_heads, window,
                                       len(self.builder.decode_indices.host), prefill)
        return TorchAttention(self.storage, window)

    def _forward(self, meta: StepMetadata) -> torch.Tensor:
        """The model over the step's tokens; logits of its decode rows ([rows, vocab], float32)
        when it is a decode-only step, else the final hidden states of every token."""
        if meta.split_at is not None:
            return self._forward_two(meta)
        attention = StepAttention(meta, self.storage, self.backend, self.blocks.sparse_state,
                                  self.shadowkv, self.model.rotary.inv_freq)
        hidden = self.model(meta.input_ids, meta.positions, attention)
        if meta.prefill is None:
            return self.model.compute_logits(hidden)
        return hidden

    def _forward_two(self, meta: StepMetadata) -> torch.Tensor:
        """A decode-only step as two micro-batches, the second on the side stream; the logits
        of all its rows."""
        turns = self.overlap.fetch_turns()
        batches = []
        for half, backend in zip(meta.micro_batches, self.backends):
            attention = StepAttention(half, self.storage, backend, self.blocks.sparse_state,
                                      self.shadowkv, self.model.rotary.inv_freq, turns,
                                      self.overlap.fetch_blocks)
            batches.append((half.input_ids, half.positions, attention))
        self.overlap.fork()
        logits = self.model.forward_interleaved(batches, self.overlap.streams(), logits=True)
        self.overlap.join(logits[1:])
        return torch.cat(logits)

    @torch.inference_mode()
    def run(self, batch: ScheduledBatch, sample_rows: list[int],
            previous: PreviousTokens | None = None) -> torch.Tensor:
        """Runs the batch; returns float32 logits (on the device) of the last scheduled token of
        each sequence listed in sample_rows (indices into batch.sequences). A decode row whose
        input token the host does not have yet (async scheduling) reads it from `previous`."""
        if self._inputs_staged is not None:
            # The staging buffers (and flashinfer's plan buffers) of the step before are reused:
            # wait until the GPU has copied them, i.e. until it has started that step.
            self._inputs_staged.synchronize()
        decode, prefill, token_row, from_previous = [], [], {}, []
        for i, (seq, n) in enumerate(zip(batch.sequences, batch.num_tokens)):
            if n == 1:
                token_row[i] = len(decode)
                if seq.num_computed < len(seq.token_ids):
                    token = seq.token_ids[seq.num_computed]
                else:  # sampled by the step in flight
                    token = 0
                    from_previous.append((len(decode), previous.row_of[seq.seq_id]))
                decode.append(DecodeRow(seq.kv, token, seq.num_computed))
        at = len(decode)
        for i, (seq, n) in enumerate(zip(batch.sequences, batch.num_tokens)):
            if n > 1:
                prefill.append(PrefillRow(seq.kv, seq.token_ids[seq.num_computed:
                                                                 seq.num_computed + n],
                                          seq.num_computed))
                at += n
                token_row[i] = at - 1
        logits = self._run_rows(decode, prefill, token_row, sample_rows,
                                (previous.tokens, from_previous) if from_previous else None)
        with host_range("end_step"):
            self._end_step(batch, decode)
        return logits

    def _run_rows(self, decode, prefill, token_row, sample_rows, from_previous) -> torch.Tensor:
        n = len(decode)
        split = not prefill and self.overlap.applies(decode)
        graphed = bool(self.graphs and not prefill and self.graphs.padded_size(n))
        placement, split_at = None, first_half(n) if split else None
        if graphed and split:  # each half padded to a captured size, the first half's padding
            half = self.graphs.padded_size(split_at)  # between them
            placement = list(range(split_at)) + list(range(half, half + n - split_at))
            padded, split_at = 2 * half, half
        elif graphed:
            padded = self.graphs.padded_size(n)

        def row(i: int) -> int:  # the row of token row i (decode rows may move, see above)
            return placement[i] if placement is not None else i

        if from_previous is not None:
            tokens, pairs = from_previous
            from_previous = tokens, [(row(at), previous) for at, previous in pairs]
        if graphed:
            out = self._replay(decode, padded, from_previous, placement, split_at)
        else:
            out = self._run_eager(decode, prefill, from_previous, split_at)
        rows = take_rows(out, [row(token_row[i]) for i in sample_rows])
        if prefill:  # the forward returned hidden states: logits of the sampled rows only
            return self.model.compute_logits(rows)
        return rows

    @property
    def _dummy_slot(self) -> int:
        return self.blocks.sparse_state.dummy_slot if self.blocks.sparse_state else 0

    def _run_eager(self, decode, prefill, from_previous, split_at) -> torch.Tensor:
        with host_range("metadata"):
            meta = self.builder.build(decode, prefill, len(decode), self._dummy_slot,
                                      split_at=split_at)
        self._finish_inputs(meta, from_previous)
        with host_range("launch"):
            return self._forward(meta)

    def _replay(self, decode, padded: int, from_previous, placement, split_at) -> torch.Tensor:
        """A decode-only step from its CUDA graph, captured on first use (on padded rows only)."""
        longest = max((row.kv.shadow.n_chunks for row in decode if row.kv.shadow), default=0)
        width = chunk_bucket(longest, self.builder.max_chunks) if self.shadowkv else 0
        key = (padded, width, split_at)

        def bucket(_):
            return width

        if not self.graphs.captured(key):
            dummy_meta = self.builder.build([], [], padded, self._dummy_slot, bucket,
                                            split_at=split_at)
            self.graphs.capture(key, dummy_meta,
                                lambda m: self._begin_step(m, graph_batch=padded))
        with host_range("metadata"):
            meta = self.builder.build(decode, [], padded, self._dummy_slot, bucket, placement,
                                      split_at)
        self._finish_inputs(meta, from_previous, graph_batch=padded)
        with host_range("launch"):
            return self.graphs.replay(key)

    def _finish_inputs(self, meta: StepMetadata, from_previous, graph_batch=None) -> None:
        """After the metadata upload: the input tokens sampled by the step in flight, written
        into the step's (persistent) input buffer on the device; the attention plan; then the
        event after which the staging buffers may be rewritten."""
        with host_range("plan"):
            tokens, rows = from_previous or (None, None)
            if tokens is not None:  # None: that step's sampling failed, its requests fail too
                index = to_device(np.array(rows, dtype=np.int64).T, meta.input_ids.device)
                meta.input_ids[index[0]] = tokens[index[1]]
            self._begin_step(meta, graph_batch)
            if self.device.type == "cuda":
                self._inputs_staged = torch.cuda.Event()
                self._inputs_staged.record()

    def _begin_step(self, meta: StepMetadata, graph_batch: int | None) -> None:
        """The attention plan: one per micro-batch, each backend planning its half."""
        if meta.split_at is None:
            self.backend.begin_step(meta, graph_batch=graph_batch)
            return
        for half, backend in zip(meta.micro_batches, self.backends):
            backend.begin_step(half, graph_batch=None if graph_batch is None else half.num_decode)

    def _end_step(self, batch: ScheduledBatch, decode: list[DecodeRow]) -> None:
        """Counters forward, then the batched post-step work: compress prompts that were just
        prefilled, fold the oldest tail chunk of sequences whose tail is full."""
        per_chunk = self.model_config.num_layers * self.model_config.num_kv_heads
        for row in decode:
            if row.kv.shadow is not None:
                row.kv.shadow.chunks_selected += row.kv.shadow.num_selected * per_chunk
        to_compress, to_fold = [], []
        for seq, n in zip(batch.sequences, batch.num_tokens):
            seq.kv.advance(n)
            seq.num_computed += n
            kv = seq.kv
            if kv.pending is not None and kv.num_tokens == kv.compress_at:
                to_compress.append(kv)
            elif kv.shadow is not None and kv.shadow.folds_after(0):
                to_fold.append(kv)
        compression.compress(to_compress, self.model.rotary, self.blocks.sparse_state)
        compression.fold(to_fold)
