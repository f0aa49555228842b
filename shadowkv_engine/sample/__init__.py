"""Batched sampling on the logits' device: penalties, truncation, seeds, logprobs."""
from .request import SampleRequest, SampleResult
from .sampler import Sampler

__all__ = ["Sampler", "SampleRequest", "SampleResult"]
