"""Decides, every step, which sequences run and how many of their tokens.

Running sequences go first, in arrival order (a decode takes one token, a chunked prefill the
next chunk of its prompt), then waiting ones, all within the step's token budget
(`max_num_batched_tokens`) and `max_num_seqs`. A prefill chunk first gets at most
`long_prefill_token_threshold` tokens (a quarter of the budget by default), so that a long prompt
leaves room for the decodes behind it and for new arrivals (vLLM's long-prefill threshold); the
budget left over at the end goes back to the prefills in order, so a prompt prefilling alone
still uses the whole budget. A threshold near the whole budget lets prefills ahead of a decode
take its token: that decode then waits a step, as in vLLM's first-come-first-served order.
A compressed (ShadowKV) sequence advances one token a step; its prefill stops exactly at the end
of the prompt so the compression sees the whole prompt and nothing more. When a running sequence
cannot get the pages for its next tokens, the newest running sequence is preempted: its memory
is freed and it goes back to the front of the queue, to be recomputed later.
With asynchronous scheduling (llm_engine.py) a step is scheduled while the previous one still
runs: a token sampled by that step counts as uncomputed (the sequence decodes it next, reading it
on the device), a sequence whose final token is in flight is skipped, and a preempted one waits
for its in-flight token before it is readmitted.
"""
from collections import deque
from dataclasses import dataclass

from ..config import EngineConfig
from .block_manager import BlockManager
from .sequence import Sequence, SequenceStatus


@dataclass
class ScheduledBatch:
    sequences: list[Sequence]
    num_tokens: list[int]

    @property
    def empty(self) -> bool:
        return not self.sequences


class Scheduler:
    def __init__(self, config: EngineConfig, block_manager: BlockManager):
        self.max_num_seqs = config.max_num_seqs
        self.max_num_batched_tokens = config.max_num_batched_tokens
        self.prefill_cap = (config.long_prefill_token_threshold
                            or max(1, config.max_num_batched_tokens // 4))
        self.blocks = block_manager
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.num_preemptions = 0

    def add(self, seq: Sequence) -> None:
        self.waiting.append(seq)

    def remove(self, seq: Sequence) -> None:
        if seq in self.running:
            self.running.remove(seq)
        elif seq in self.waiting:
            self.waiting.remove(seq)
        self.blocks.release(seq)

    def num_queued_beyond_capacity(self, extra: int = 0) -> int:
        """Waiting sequences (and `extra` about to join them) that the free batch slots
        (max_num_seqs) will not take at once."""
        free_slots = max(0, self.max_num_seqs - len(self.running))
        return max(0, len(self.waiting) + extra - free_slots)

    def _tokens_wanted(self, seq: Sequence, budget: int) -> int:
        kv = seq.kv
        if kv.compressed:
            return 1  # replaying or decoding: the sparse path takes one token a step
        remaining = seq.num_uncomputed
        target = kv.compress_at
        if target is not None and seq.num_computed < target:
            remaining = target - seq.num_computed
        return min(remaining, budget)

    def schedule(self) -> ScheduledBatch:
        budget = self.max_num_batched_tokens
        batch = ScheduledBatch([], [])
        index = 0
        while index < len(self.running) and budget > 0:
            seq = self.running[index]
            if seq.awaiting_last_token:  # finishes when its in-flight token arrives
                index += 1
                continue
            wanted = self._tokens_wanted(seq, min(budget, self.prefill_cap))
            while not self.blocks.allocate(seq, wanted):
                victim = self.running[-1]
                self._preempt(victim)
                if victim is seq:
                    break
            if seq.status is not SequenceStatus.RUNNING:
                break  # seq preempted itself: everything after it was preempted too
            batch.sequences.append(seq)
            batch.num_tokens.append(wanted)
            budget -= wanted
            index += 1

        while self.waiting and budget > 0 and len(self.running) < self.max_num_seqs:
            seq = self.waiting[0]
            if seq.num_pending or not self.blocks.can_admit(seq, self.running):
                break  # (a preempted sequence's in-flight token must arrive before its prefill)
            self.waiting.popleft()
            seq.kv = self.blocks.new_cache(seq)
            seq.status = SequenceStatus.RUNNING
            self.running.append(seq)
            wanted = self._tokens_wanted(seq, min(budget, self.prefill_cap))
            if not self.blocks.allocate(seq, wanted):
                raise RuntimeError("admission checked the pages of this prefill chunk")
            batch.sequences.append(seq)
            batch.num_tokens.append(wanted)
            budget -= wanted
        self._extend_prefills(batch, budget)
        return batch

    def _extend_prefills(self, batch: ScheduledBatch, budget: int) -> None:
        """Gives the budget left over to the scheduled prefill chunks, in order (never preempts:
        a chunk whose extra pages are not free stays as it is)."""
        for i, seq in enumerate(batch.sequences):
            if budget <= 0:
                return
            scheduled = batch.num_tokens[i]
            more = self._tokens_wanted(seq, scheduled + budget) - scheduled
            if more > 0 and self.blocks.allocate(seq, scheduled + more):
                batch.num_tokens[i] += more
                budget -= more

    def _preempt(self, seq: Sequence) -> None:
        """Recompute-style preemption: free everything; the tokens so far are kept."""
        self.running.remove(seq)
        self.blocks.release(seq)
        seq.num_computed = 0
        seq.status = SequenceStatus.WAITING
        self.waiting.appendleft(seq)
        self.num_preemptions += 1
