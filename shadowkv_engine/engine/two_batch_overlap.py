"""Two-batch overlap of a ShadowKV decode step: the batch runs as two halves, each on its own CUDA
stream, layer by layer in turn, so that one half's value fetch over PCIe runs while the other
half computes.

Why: a ShadowKV layer cannot attend before its selected chunks' values arrive from host memory,
and the next layer cannot start before this one's attention is done, so in one batch the fetch
and the GPU work run one after the other (the fetch alone is 50-60% of a step at low hit rates).
Two independent halves break the chain: the same idea as SGLang's two-batch overlap and vLLM's
dual-batch overlap, which hide communication behind computation, here applied to the PCIe link.
The price: every weight is read twice per step (once per half) and the step has twice the
kernels; it pays where the fetch is longer than the weights' read, which is ShadowKV's decode.

The halves touch disjoint state: their own rows of the KV arena, batch slots of the sparse state
and page lists. Padded rows (a captured step's) all sit in the second half, so the dummy slot and
the null page have one writer. `kv/fetch_turns.py` orders the two halves' fetches on the link.
Outputs are those of one batch: each row's computation is the same, only its neighbours differ.
"""
import contextlib
import os

import torch

from ..kv.fetch_turns import FetchTurns
from ..model.llama import LlamaForCausalLM

# Grid cap of an overlapped value fetch, in thread blocks: enough reads in flight for the PCIe
# ceiling, few enough SMs held that the other half's GEMMs and attention have the rest
# (measured: docs/benchmarks.md). SHADOWKV_OVERLAP_GATHER_BLOCKS overrides it (A/B runs).
DEFAULT_GATHER_BLOCKS = 32


def overlap_enabled(mode: str, attention: str, device: torch.device) -> bool:
    """auto: on for ShadowKV on CUDA, the one case with a PCIe fetch to hide."""
    if mode == "auto":
        return attention == "shadowkv" and device.type == "cuda"
    return mode == "on"


def split(rows: int) -> int:
    """Rows of the first half; the second takes the rest (and any padding)."""
    return (rows + 1) // 2


def gather_blocks() -> int:
    value = os.environ.get("SHADOWKV_OVERLAP_GATHER_BLOCKS", "")
    return int(value) if value else DEFAULT_GATHER_BLOCKS


class TwoBatchOverlap:
    def __init__(self, model: LlamaForCausalLM, device: torch.device):
        self.model = model
        self.num_layers = len(model.model.layers)
        self.side = torch.cuda.Stream(device) if device.type == "cuda" else None
        self.max_blocks = gather_blocks()

    def turns(self):
        """The halves' turns on the link (None off CUDA, where the halves run in sequence)."""
        if self.side is None:
            return [None, None]
        turns = FetchTurns(self.num_layers, self.max_blocks)
        return [turns.half(0), turns.half(1)]

    def logits(self, halves: list[tuple[torch.Tensor, torch.Tensor, object]]) -> torch.Tensor:
        """halves: (input_ids, positions, attention) of each half. Returns the logits of both,
        the first half's rows first, on the current stream."""
        model = self.model
        main = torch.cuda.current_stream() if self.side is not None else None
        streams = [main, self.side]
        if self.side is not None:
            self.side.wait_stream(main)  # the step's inputs were written on the main stream
        states = []
        for (ids, positions, _), stream in zip(halves, streams):
            with _on(stream):
                states.append(model.embed(ids, positions))
        for layer in model.model.layers:
            for h, ((_, _, attention), stream) in enumerate(zip(halves, streams)):
                with _on(stream):
                    x, cos, sin = states[h]
                    states[h] = (layer(x, cos, sin, attention), cos, sin)
        outputs = []
        for (x, _, _), stream in zip(states, streams):
            with _on(stream):
                outputs.append(model.compute_logits(model.model.norm(x)))
        if self.side is not None:
            main.wait_stream(self.side)
            outputs[1].record_stream(main)  # made on the side stream, read on the main one
        return torch.cat(outputs)


def _on(stream):
    return torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext()
