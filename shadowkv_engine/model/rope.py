"""Rotary position embeddings (NeoX half-split layout, as in HF Llama/Mistral/Qwen2).

Scaling types: default, `linear`, `llama3`; `dynamic` only where it never triggers (max_model_len
within the trained length), because HF's dynamic NTK re-derives frequencies from the running
length, which a cache of already-rotated keys cannot follow.
"""
import math

import torch


def inverse_frequencies(head_dim: int, theta: float, scaling: dict | None,
                        max_model_len: int, max_position_embeddings: int) -> torch.Tensor:
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    if not scaling:
        return inv_freq
    kind = scaling.get("rope_type")
    if kind == "linear":
        return inv_freq / float(scaling["factor"])
    if kind == "llama3":
        return _llama3_frequencies(inv_freq, scaling)
    if kind == "dynamic":
        original = scaling.get("original_max_position_embeddings", max_position_embeddings)
        if max_model_len > original:
            raise ValueError(
                f"rope_scaling 'dynamic' is supported only up to the trained length ({original} "
                f"tokens); max_model_len is {max_model_len}. Lower --max-model-len.")
        return inv_freq
    raise ValueError(f"unsupported rope_scaling type {kind!r}; supported: linear, llama3, "
                     "dynamic (within the trained length)")


def _llama3_frequencies(inv_freq: torch.Tensor, scaling: dict) -> torch.Tensor:
    factor = scaling["factor"]
    low_freq_factor = scaling["low_freq_factor"]
    high_freq_factor = scaling["high_freq_factor"]
    old_len = scaling["original_max_position_embeddings"]
    low_freq_wavelen = old_len / low_freq_factor
    high_freq_wavelen = old_len / high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    is_medium = (wavelen >= high_freq_wavelen) & (wavelen <= low_freq_wavelen)
    return torch.where(is_medium, smoothed, scaled)


class RotaryEmbedding:
    """cos/sin for given positions, computed like HF (float32 angles) and cast to the model dtype."""

    def __init__(self, inv_freq: torch.Tensor):
        self.inv_freq = inv_freq.float()

    def to(self, device) -> "RotaryEmbedding":
        self.inv_freq = self.inv_freq.to(device)
        return self

    def cos_sin(self, positions: torch.Tensor, dtype: torch.dtype):
        freqs = positions.float()[:, None] * self.inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def signed_sin(sin: torch.Tensor) -> torch.Tensor:
    """sin with its first half negated: rotate_half(x) * sin == x.roll(D/2) * signed_sin(sin),
    which lets `apply_rope` skip building rotate_half(x) (a neg and a cat per call)."""
    half = sin.shape[-1] // 2
    return torch.cat((-sin[..., :half], sin[..., half:]), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: [tokens, heads, head_dim] (any strides); cos, sin: [tokens, head_dim], sin as
    `signed_sin` gives it. Three kernels: x * cos, the roll, one fused multiply-add."""
    rolled = x.roll(x.shape[-1] // 2, dims=-1)
    return torch.addcmul(x * cos[:, None, :], rolled, sin[:, None, :])


def undo_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """The inverse rotation: recovers pre-RoPE keys from post-RoPE ones (rotation by -angle)."""
    return x * cos[:, None, :] - rotate_half(x) * sin[:, None, :]
