"""How much of the GPU KV budget becomes the value store's device tier (kv/value_pool.py).

ShadowKV moves values off the GPU so that more sequences fit there. At long contexts it is the
host memory for those values that runs out first, and the arena is left with pages no sequence
can use, while every value a decode step fetches crosses PCIe, the step's bound. The automatic
plan moves arena memory to the device tier while that lets more sequences of max_model_len run
at once (the arena's count falls, the value store's rises: it takes the split where they meet),
then gives the tier whatever the arena holds beyond that many sequences, up to all their values.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class SequencePages:
    """Pages one sequence of max_model_len holds (BlockManager.peak_pages/steady_pages)."""
    peak: int  # arena pages at its prefill peak
    steady: int  # arena pages once compressed
    values: int  # value pages (half an arena page each)


def arena_fits(arena: int, seq: SequencePages, max_seqs: int) -> int:
    """Sequences the arena holds when they are prefilled one after another: one at its peak,
    the others compressed (as BlockManager.max_concurrent_sequences counts)."""
    if arena < seq.peak:
        return 0
    return min(1 + (arena - seq.peak) // max(seq.steady, 1), max_seqs)


def sequences_that_fit(arena: int, value_pages: int, seq: SequencePages, max_seqs: int) -> int:
    """Sequences both stores hold: the arena's count, and as many as the value pages hold."""
    fits = arena_fits(arena, seq, max_seqs)
    return min(fits, value_pages // seq.values) if seq.values else fits


def auto_device_tier(arena: int, host_value_pages: int, seq: SequencePages,
                     max_seqs: int) -> int:
    """Arena pages to give the device tier (each becomes two value pages)."""
    if seq.values == 0:
        return 0

    def fits(moved: int) -> int:
        return sequences_that_fit(arena - moved, host_value_pages + 2 * moved, seq, max_seqs)

    # The arena's count falls and the value store's rises with `moved`: find the first split at
    # which the values no longer limit the batch; the best batch is there or one page before.
    low, high = 0, arena
    while low < high:
        mid = (low + high) // 2
        if (host_value_pages + 2 * mid) // seq.values >= arena_fits(arena - mid, seq, max_seqs):
            high = mid
        else:
            low = mid + 1
    best = max(fits(low), fits(max(low - 1, 0)))
    if best == 0:
        return 0
    spare = arena - seq.peak - (best - 1) * seq.steady  # the arena beyond `best` sequences
    return max(0, min(spare, -(-best * seq.values // 2)))
