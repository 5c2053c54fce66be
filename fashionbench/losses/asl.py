"""Asymmetric Loss (Ridnik et al., "Asymmetric Loss For Multi-Label Classification",
ICCV 2021, Sec. 3, Eq. 3-5).

With ``p = sigmoid(x)`` and the shifted probability ``p_m = max(p - m, 0)`` (Eq. 4):

    L+ = (1 - p)^gamma_pos * log(p)
    L- = p_m^gamma_neg     * log(1 - p_m)
    ASL = -y L+ - (1 - y) L-

``gamma_neg=4, gamma_pos=0, clip(m)=0.05`` are the paper's training settings; with
``gamma_neg=gamma_pos=0, clip=0`` ASL is binary cross-entropy (tested). As in the paper's
code, log is clamped at ``eps`` and the focusing weight is detached by default
(``detach_focal_weight``: the official training script's ``disable_torch_grad_focal_loss``).
The default reduction is ``sum`` over the known entries of the batch, as the official
implementation returns ``-loss.sum()``; ``mean`` and ``batch_mean`` are available.
"""
from __future__ import annotations

import torch
from torch import nn

from fashionbench.losses.reduction import Reduction, reduce_masked


class AsymmetricLoss(nn.Module):
    def __init__(
        self,
        gamma_neg: float = 4.0,
        gamma_pos: float = 0.0,
        clip: float = 0.05,
        eps: float = 1e-8,
        detach_focal_weight: bool = True,
        reduction: Reduction = "sum",
    ) -> None:
        super().__init__()
        if clip < 0 or gamma_neg < 0 or gamma_pos < 0:
            raise ValueError("AsymmetricLoss: gamma_neg, gamma_pos and clip must be >= 0")
        self.gamma_neg, self.gamma_pos, self.clip, self.eps = gamma_neg, gamma_pos, clip, eps
        self.detach_focal_weight = detach_focal_weight
        self.reduction = reduction

    def per_entry(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The loss of every (image, label) entry, before masking and reduction."""
        y = targets.to(logits.dtype)
        p = torch.sigmoid(logits)
        p_m = (p - self.clip).clamp(min=0) if self.clip > 0 else p  # Eq. 4, probability shifting
        log_pos = torch.log(p.clamp(min=self.eps))
        log_neg = torch.log((1 - p_m).clamp(min=self.eps))
        loss = -(y * log_pos + (1 - y) * log_neg)
        if self.gamma_neg > 0 or self.gamma_pos > 0:
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self.detach_focal_weight):
                base = y * (1 - p) + (1 - y) * p_m  # 1 - p_t in the focal-loss notation
                gamma = y * self.gamma_pos + (1 - y) * self.gamma_neg
                weight = torch.pow(base, gamma)
            loss = loss * weight
        return loss

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return reduce_masked(self.per_entry(logits, targets), mask, self.reduction)
