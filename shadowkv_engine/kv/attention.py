"""Exact attention of a few queries over gathered keys/values (GQA), the math every cache shares."""
import torch
import torch.nn.functional as F


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
           mask: torch.Tensor | None = None) -> torch.Tensor:
    """q: [T, Hq, D]; k, v: [H, S, D]; mask: bool [T, S] or [H, T, S], True = attend.
    Returns [T, Hq, D]."""
    heads = k.shape[0]
    group = q.shape[1] // heads
    if mask is not None and mask.dim() == 3:
        mask = mask.repeat_interleave(group, dim=0)
    out = F.scaled_dot_product_attention(
        q.transpose(0, 1)[None], k[None], v[None], attn_mask=mask, enable_gqa=group > 1)
    return out[0].transpose(0, 1)


def causal_mask(q_start: int, num_queries: int, num_keys: int, device,
                sliding_window: int | None = None) -> torch.Tensor | None:
    """Keys at positions 0..num_keys-1, queries at q_start..q_start+num_queries-1."""
    if num_queries == 1 and sliding_window is None:
        return None  # a single query sees every cached key
    q_pos = torch.arange(q_start, q_start + num_queries, device=device)[:, None]
    k_pos = torch.arange(num_keys, device=device)[None, :]
    mask = k_pos <= q_pos
    if sliding_window is not None:
        mask &= q_pos - k_pos < sliding_window
    return mask
