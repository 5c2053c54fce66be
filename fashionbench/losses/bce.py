"""Binary cross-entropy over known entries (the baseline's loss) and softmax
cross-entropy for single-label tasks."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from fashionbench.losses.reduction import Reduction, reduce_masked


class MaskedBCEWithLogits(nn.Module):
    """``BCEWithLogits`` whose masked entries count nowhere; ``mean`` over known entries."""

    def __init__(self, reduction: Reduction = "mean", pos_weight: float | None = None) -> None:
        super().__init__()
        self.reduction = reduction
        self.pos_weight = pos_weight

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        pos_weight = None if self.pos_weight is None else logits.new_tensor(self.pos_weight)
        per_entry = F.binary_cross_entropy_with_logits(
            logits, targets.to(logits.dtype), reduction="none", pos_weight=pos_weight
        )
        return reduce_masked(per_entry, mask, self.reduction)


class SoftmaxCrossEntropy(nn.Module):
    """Cross-entropy for single-label tasks (targets are class ids [B]); mask is unused."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return F.cross_entropy(logits, targets.long(), label_smoothing=self.label_smoothing)
