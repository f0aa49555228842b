"""Top-k, top-p and min-p for a block of rows with per-row settings.

Semantics: top-k keeps every token at least as likely as the k-th (ties kept); top-p then keeps
the smallest most-likely prefix whose renormalized mass reaches p (at least one token); min-p
keeps tokens with probability at least min_p times the row's best.
"""
import torch


def mask_top_k_top_p(logits: torch.Tensor, top_k: torch.Tensor | None, max_top_k: int,
                     top_p: torch.Tensor | None) -> torch.Tensor:
    """logits: [R, V] after temperature; returns them with the dropped tokens at -inf."""
    if top_k is None and top_p is None:
        return logits
    if top_p is None:
        # top-k alone needs only the k best of each row, not a sort of the vocabulary
        best = logits.topk(max_top_k, dim=-1).values
        return logits.masked_fill(logits < _kth(best, top_k), float("-inf"))
    values, order = logits.sort(dim=-1, descending=True)
    if top_k is not None:
        values = values.masked_fill(values < _kth(values, top_k), float("-inf"))
    probs = values.softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs
    values = values.masked_fill(mass_before >= top_p, float("-inf"))
    return torch.empty_like(logits).scatter_(-1, order, values)


def mask_min_p(probs: torch.Tensor, min_p: torch.Tensor | None) -> torch.Tensor:
    """probs: [R, V]; zeroes tokens below min_p times the row's best (no renormalization)."""
    if min_p is None:
        return probs
    floor = min_p * probs.amax(dim=-1, keepdim=True)
    return probs.masked_fill(probs < floor, 0.0)


def _kth(best: torch.Tensor, top_k: torch.Tensor) -> torch.Tensor:
    """[R, 1] value of each row's k-th best token (descending `best`); -inf where top-k is off."""
    kth = best.gather(-1, (top_k - 1).clamp(min=0))
    return kth.masked_fill(top_k == 0, float("-inf"))
