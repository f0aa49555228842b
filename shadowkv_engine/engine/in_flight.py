"""A step whose tokens are still being sampled on the device (asynchronous scheduling).

The engine launches step t+1 before it reads step t's tokens, as vLLM's async scheduling does:
the host schedules, builds the metadata and launches the next step while the GPU runs the
current one, so host time hides behind device time. A decode row whose input token was sampled
by the step in flight reads it from that step's device tensor (`PreviousTokens`); the host learns
the token one step later, when it processes that step's outputs.
"""
from dataclasses import dataclass

import torch

from ..sample.sampler import SampledBatch
from .scheduler import ScheduledBatch
from .sequence import Sequence


@dataclass
class PreviousTokens:
    """Where a decode row of the next step finds an input token the host does not have yet."""
    tokens: torch.Tensor | None  # int64 [n] on the device; None: that step's sampling failed
    row_of: dict[int, int]  # seq_id -> row of `tokens`


@dataclass
class InFlightStep:
    batch: ScheduledBatch
    sequences: list[Sequence]  # the sampled sequences, in row order
    sampled: SampledBatch | None  # None: sampling failed (the sequences' requests fail)
    scheduled_at: float

    def previous_tokens(self) -> PreviousTokens:
        return PreviousTokens(self.sampled.tokens if self.sampled is not None else None,
                              {seq.seq_id: row for row, seq in enumerate(self.sequences)})
