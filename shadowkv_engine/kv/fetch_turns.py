"""The PCIe link as a baton between the two halves of an overlapped decode step.

In a two-batch-overlapped step (engine/two_batch_overlap.py) each half of the batch runs its own
copy of the model on its own CUDA stream. Left alone, two identical chains tend to run in step:
both compute at once, then both wait on PCIe at once, and nothing overlaps. So the value fetches
take turns, in the order A0 B0 A1 B1 ... (half A's fetch of layer L waits for B's of layer L-1,
B's of layer L for A's of layer L): the link is never idle while one half computes between its
fetches, and each half's compute falls in the other's fetch.

Each fetch also runs on a capped grid (`max_blocks`), so that it holds a few SMs and leaves the
others to the half that computes meanwhile.
"""
import torch


class FetchTurns:
    def __init__(self, num_layers: int, max_blocks: int):
        self.max_blocks = max_blocks
        # Recorded after each half's fetch of each layer; waited on by the other half.
        self.fetched = [[torch.cuda.Event() for _ in range(num_layers)] for _ in range(2)]

    def half(self, index: int) -> "HalfTurn":
        return HalfTurn(self, index)


class HalfTurn:
    """What one half's attention calls around its value fetch of each layer."""

    def __init__(self, turns: FetchTurns, index: int):
        self.turns, self.index = turns, index
        self.max_blocks = turns.max_blocks

    def before_fetch(self, layer: int) -> None:
        # The events were recorded (host order) before this wait is issued: the caller issues
        # layer by layer, half A then half B.
        previous = layer if self.index == 1 else layer - 1
        if previous >= 0:
            torch.cuda.current_stream().wait_event(self.turns.fetched[1 - self.index][previous])

    def after_fetch(self, layer: int) -> None:
        self.turns.fetched[self.index][layer].record()
