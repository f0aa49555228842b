"""Repetition, presence and frequency penalties from per-sequence state kept on the device.

Each sequence that uses penalties owns a slot: a row of `prompt_mask` (its prompt's tokens,
uploaded once; prompts can be 128K tokens) and a row of `output_counts` (its generated tokens).
The sampler counts each token it samples for a penalty row on the device (`record`), so the next
step's penalties need no token from the host (async scheduling reads them a step later); output
tokens the cache has not counted (a new slot, or a caller that does not record) are uploaded
from the host. A step then gathers the slots of its penalty rows, so the cost is one [P, V]
pass, whatever the prompt length.
"""
from dataclasses import dataclass

import torch

from .metadata import upload
from .request import SampleRequest


@dataclass
class _Slot:
    index: int
    num_prompt: int
    num_counted: int = 0  # output tokens already in output_counts


class PenaltyCache:
    def __init__(self, device: torch.device):
        self.device = device
        self.prompt_mask = torch.zeros(0, 0, dtype=torch.bool, device=device)
        self.output_counts = torch.zeros(0, 0, dtype=torch.int32, device=device)
        self.slots: dict[int, _Slot] = {}
        self.free: list[int] = []

    def apply(self, logits: torch.Tensor, rows: list[int], requests: list[SampleRequest]) -> None:
        """Penalizes logits[rows] in place, as vLLM does: repetition over prompt and output
        tokens (divide positive logits, multiply negative ones), then presence and frequency
        over output tokens."""
        slots, count_slots, count_tokens = [], [], []
        for row in rows:
            req = requests[row]
            slot = self._slot(req, logits.shape[-1])
            new = req.output_token_ids[slot.num_counted:]
            count_slots += [slot.index] * len(new)
            count_tokens += new
            slot.num_counted += len(new)
            slots.append(slot.index)
        if count_tokens:
            pairs = upload([count_slots, count_tokens], self.device)
            ones = torch.ones(len(count_tokens), dtype=torch.int32, device=self.device)
            self.output_counts.index_put_((pairs[0], pairs[1]), ones, accumulate=True)

        params = [requests[row].params for row in rows]
        weights = upload([[p.repetition_penalty, p.presence_penalty, p.frequency_penalty]
                          for p in params], self.device, torch.float32)
        index = upload([rows, slots], self.device)
        block = logits[index[0]]
        counts = self.output_counts[index[1]]
        generated = counts > 0
        if any(p.repetition_penalty != 1.0 for p in params):
            repetition = weights[:, 0:1]
            seen = self.prompt_mask[index[1]] | generated
            penalized = torch.where(block > 0, block / repetition, block * repetition)
            block = torch.where(seen, penalized, block)
        if any(p.presence_penalty or p.frequency_penalty for p in params):
            block = block - (weights[:, 2:3] * counts + weights[:, 1:2] * generated)
        logits[index[0]] = block

    def record(self, rows: list[int], tokens: torch.Tensor, requests: list[SampleRequest]) -> None:
        """Counts the tokens just sampled for the penalty rows (tokens: [B] on the device)."""
        slots = [self.slots[requests[row].key] for row in rows]
        index = upload([rows, [slot.index for slot in slots]], self.device)
        ones = torch.ones(len(rows), dtype=torch.int32, device=self.device)
        self.output_counts.index_put_((index[1], tokens[index[0]]), ones, accumulate=True)
        for slot in slots:
            slot.num_counted += 1

    def release(self, key: int) -> None:
        slot = self.slots.pop(key, None)
        if slot is not None:
            self.free.append(slot.index)

    def _slot(self, req: SampleRequest, vocab_size: int) -> _Slot:
        slot = self.slots.get(req.key)
        if slot is not None and (slot.num_prompt == len(req.prompt_token_ids) and
                                 slot.num_counted <= len(req.output_token_ids) + req.num_pending):
            return slot
        if req.num_pending:
            raise RuntimeError(f"penalty state of sequence {req.key} cannot be rebuilt while "
                               f"{req.num_pending} of its tokens are in flight")
        # new, or reset since the last step (output shorter than counted): rebuild from scratch
        index = slot.index if slot is not None else self._allocate(vocab_size)
        slot = self.slots[req.key] = _Slot(index, len(req.prompt_token_ids))
        self.output_counts[index] = 0
        self.prompt_mask[index] = False
        if req.prompt_token_ids:
            prompt = upload(req.prompt_token_ids, self.device)
            self.prompt_mask[index, prompt] = True
        return slot

    def _allocate(self, vocab_size: int) -> int:
        if not self.free:
            # grow by doubling: slots outlive many steps, so reallocation is rare
            old = self.output_counts.shape[0]
            new = max(8, 2 * old)
            self.prompt_mask = _grow(self.prompt_mask, new, vocab_size)
            self.output_counts = _grow(self.output_counts, new, vocab_size)
            self.free = list(range(new - 1, old - 1, -1))
        return self.free.pop()


def _grow(table: torch.Tensor, rows: int, vocab_size: int) -> torch.Tensor:
    grown = torch.zeros(rows, vocab_size, dtype=table.dtype, device=table.device)
    grown[:table.shape[0], :table.shape[1]] = table
    return grown
