"""CUDA graphs of the decode step, one per padded batch size (and, in ShadowKV mode, per width of
the landmark scores), captured on first use and replayed from then on.

A captured step reads everything that changes from the step metadata's persistent device
buffers, so a replay only needs them refilled and the attention plan redone on the host. Padded
rows point at the null page and the dummy batch slot. Capture runs the step once on dummy rows
(no sequence's state is touched) before recording it.
"""
import bisect
import logging

import torch

logger = logging.getLogger(__name__)


def graph_batch_sizes(max_num_seqs: int) -> list[int]:
    """1, 2, 4, 8, then multiples of 16 (as nano-vllm), up to max_num_seqs rounded up."""
    sizes = [1, 2, 4, 8] + list(range(16, max_num_seqs + 16, 16))
    return [s for s in sizes if s < max_num_seqs] + [next(s for s in sizes if s >= max_num_seqs)]


def chunk_bucket(num_chunks: int, max_chunks: int) -> int:
    """Width of the landmark scores of a captured step: a power of two (at least 256) covering
    the batch's longest compressed store, so a handful of graphs serve every length."""
    width = 256
    while width < num_chunks:
        width *= 2
    return min(width, max_chunks)


class DecodeGraphs:
    def __init__(self, max_num_seqs: int, run_step):
        """run_step(meta) runs the model's decode step on `meta` and returns its logits."""
        self.sizes = graph_batch_sizes(max_num_seqs)
        self.run_step = run_step
        # key: (padded batch size, landmark width, first row of the second micro-batch or None)
        self.graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}
        self.pool = None

    def padded_size(self, rows: int) -> int | None:
        """The captured batch size a step of `rows` decode rows runs at, or None if too many."""
        at = bisect.bisect_left(self.sizes, rows)
        return self.sizes[at] if at < len(self.sizes) else None

    def captured(self, key: tuple) -> bool:
        return key in self.graphs

    def capture(self, key: tuple, dummy_meta, begin_step) -> None:
        """dummy_meta: step metadata of `key[0]` padded rows only; begin_step(meta) plans."""
        begin_step(dummy_meta)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            self.run_step(dummy_meta)  # warm-up: lazy initialisation stays out of the graph
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            logits = self.run_step(dummy_meta)
        self.pool = graph.pool()
        self.graphs[key] = (graph, logits)
        logger.info("captured the decode step for batch %d, landmark width %d, micro-batches "
                    "split at %s", *key)

    def replay(self, key: tuple) -> torch.Tensor:
        graph, logits = self.graphs[key]
        graph.replay()
        return logits
