"""Device state of the ShadowKV decode, one row per batch slot, read and written inside the step.

A sequence holds a batch slot while it runs (`BlockManager` hands them out). Its row keeps, per
layer and KV head, the chunk id held by each selected-chunk slot (`resident`, -1 = empty: the
hit/miss plan's memory between steps), its outlier chunk ids (left out of selection), and its
counters: chunk hits, and chunks whose values were read from host memory (over PCIe). Padded
rows of a captured step use the extra dummy row. A freed slot's counters are added to the
`released` totals on the device, so freeing a sequence never makes the host wait for the GPU.
"""
import torch

from ..config import ShadowKVConfig


class SparseDecodeState:
    def __init__(self, num_slots: int, num_layers: int, num_kv_heads: int, cfg: ShadowKVConfig,
                 device: torch.device):
        self.dummy_slot = num_slots
        rows = (num_slots + 1, num_layers, num_kv_heads)
        self.resident = torch.full(rows + (cfg.budget_chunks,), -1, dtype=torch.int32,
                                   device=device)
        self.outliers = torch.full(rows + (max(1, cfg.outlier_chunks),), -1, dtype=torch.int32,
                                   device=device)
        self.hits = torch.zeros(num_slots + 1, dtype=torch.long, device=device)
        self.host_fetches = torch.zeros(num_slots + 1, dtype=torch.long, device=device)
        self.released = torch.zeros(2, dtype=torch.long, device=device)  # freed slots' counters

    def reset(self, slot: int) -> None:
        self.resident[slot] = -1
        self.outliers[slot] = -1
        self.hits[slot] = 0
        self.host_fetches[slot] = 0

    def release(self, slot: int) -> None:
        """Adds the slot's counters to the released totals and clears it (queued, no wait)."""
        self.released[0] += self.hits[slot]
        self.released[1] += self.host_fetches[slot]
        self.reset(slot)

    def read_counters(self, slot: int) -> tuple[int, int]:
        """(chunk hits, chunks fetched from host memory) of the slot so far; reads the device."""
        return int(self.hits[slot]), int(self.host_fetches[slot])

    def totals(self, slots: list[int]) -> tuple[int, int]:
        """(chunk hits, chunks fetched from host memory) of the freed slots and of `slots`;
        reads the device once."""
        totals = self.released.clone()
        if slots:
            index = torch.tensor(slots, device=self.hits.device)
            totals += torch.stack([self.hits[index].sum(), self.host_fetches[index].sum()])
        hits, fetched = totals.tolist()
        return hits, fetched
