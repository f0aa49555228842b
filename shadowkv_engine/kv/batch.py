"""Attention for one step's flat token batch: each sequence's slice goes to its own cache."""
import torch

from .sequence_kv import SequenceKV


class BatchAttention:
    def __init__(self, caches: list[SequenceKV], num_tokens: list[int]):
        self.caches = caches
        self.bounds = []
        start = 0
        for n in num_tokens:
            self.bounds.append((start, start + n))
            start += n

    def attend(self, layer, q, k_pre, k, v):
        if len(self.caches) == 1:
            return self.caches[0].attend(layer, q, k_pre, k, v)
        out = torch.empty_like(q)
        for cache, (lo, hi) in zip(self.caches, self.bounds):
            out[lo:hi] = cache.attend(layer, q[lo:hi], k_pre[lo:hi], k[lo:hi], v[lo:hi])
        return out
