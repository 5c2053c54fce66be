"""The one place that turns a per-entry loss [B, C] into a scalar."""
from __future__ import annotations

from typing import Literal

import torch

Reduction = Literal["sum", "mean", "batch_mean"]


def reduce_masked(per_entry: torch.Tensor, mask: torch.Tensor | None, reduction: Reduction) -> torch.Tensor:
    """Reduce ``per_entry`` over the known entries only.

    ``sum``: the sum over known entries (ASL's official code). ``mean``: that sum divided by
    the number of known entries (torch's BCE default). ``batch_mean``: divided by the batch
    size, so the scale does not depend on the number of labels' mask pattern.
    """
    if mask is not None:
        per_entry = per_entry * mask.to(per_entry.dtype)
    total = per_entry.sum()
    if reduction == "sum":
        return total
    if reduction == "mean":
        count = per_entry.numel() if mask is None else mask.sum()
        return total / torch.clamp(torch.as_tensor(count, dtype=total.dtype, device=total.device), min=1)
    if reduction == "batch_mean":
        return total / max(per_entry.shape[0], 1)
    raise ValueError(f"unknown reduction {reduction!r}: use sum, mean or batch_mean")
