"""Two-batch overlap of a decode step: one half's value fetch over PCIe beside the other's compute.

With values in host memory, a ShadowKV decode layer is compute (GEMMs, landmark scoring, top-k,
key rebuild, attention; HBM-bound) followed by a fetch of the missed chunks' values (bound by
PCIe), and inside one batch each waits for the other: the fetch needs the layer's query, the next
layer needs the fetched values. Split the batch in two micro-batches on two CUDA streams, layer by
layer in turn, and the fetch of one runs while the other computes (SGLang's and DeepSeek's
two-batch overlap, with PCIe where they have the network). The fetches take turns (`FetchTurns`)
so that one at a time has the whole link, and each runs on a few SMs (`FETCH_BLOCKS`) so that
the other half's kernels find room beside it. The cost is the weights read twice per step, which
is why "auto" splits only steps that read values from host memory.
"""
import torch

from ..kv.step_metadata import DecodeRow

# Blocks of the value gather while it runs beside the other half's kernels. On an H200 (the
# sweep of `benchmarks/bench_kernels.py --gather-sweep`, docs/benchmarks.md) 16 blocks already
# read at PCIe's 50 GB/s, and 64 ran entirely beside an HBM copy; 128 overlapped it only 36%, a
# grid on every SM 1% (its looping warps hold the SMs until the fetch ends).
FETCH_BLOCKS = 64


def first_half(rows: int) -> int:
    """Rows in the first micro-batch (the larger one when rows is odd)."""
    return (rows + 1) // 2


class FetchTurns:
    """Orders the micro-batches' value fetches one after another, in launch order (A0 B0 A1 B1 …):
    each fetch waits for the one launched before it, on whichever stream that ran."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.last: torch.cuda.Event | None = None

    def take(self) -> None:
        if self.enabled and self.last is not None:
            torch.cuda.current_stream().wait_event(self.last)

    def release(self) -> None:
        if self.enabled:
            self.last = torch.cuda.Event()
            self.last.record()


class TwoBatchOverlap:
    def __init__(self, mode: str, device: torch.device, sparse: bool):
        """mode: EngineConfig.two_batch_overlap; sparse: the engine runs ShadowKV."""
        self.mode, self.sparse, self.device = mode, sparse, device
        self.cuda = device.type == "cuda"
        self._side_stream: torch.cuda.Stream | None = None

    @property
    def possible(self) -> bool:
        return self.mode == "on" or (self.mode == "auto" and self.cuda and self.sparse)

    def applies(self, decode: list[DecodeRow]) -> bool:
        """Whether a decode-only step of these rows runs as two micro-batches."""
        if len(decode) < 2 or not self.possible:
            return False
        return self.mode == "on" or any(
            row.kv.shadow is not None and row.kv.shadow.host_value_pages for row in decode)

    def fetch_turns(self) -> FetchTurns:
        return FetchTurns(self.cuda)

    @property
    def fetch_blocks(self) -> int:
        return FETCH_BLOCKS if self.cuda else 0

    @property
    def side_stream(self) -> torch.cuda.Stream | None:
        """The second micro-batch's stream (None on the CPU, where the halves run in turn)."""
        if self.cuda and self._side_stream is None:
            self._side_stream = torch.cuda.Stream(self.device)
        return self._side_stream

    def streams(self) -> list[torch.cuda.Stream | None]:
        """The micro-batches' streams: the current one (None) and the side stream."""
        return [None, self.side_stream]

    def fork(self) -> None:
        """The side stream starts after everything queued so far (the step's inputs)."""
        if self.side_stream is not None:
            self.side_stream.wait_stream(torch.cuda.current_stream())

    def join(self, side_outputs: list[torch.Tensor]) -> None:
        """The current stream waits for the side stream; its outputs are used there."""
        if self.side_stream is not None:
            current = torch.cuda.current_stream()
            current.wait_stream(self.side_stream)
            for tensor in side_outputs:
                tensor.record_stream(current)
