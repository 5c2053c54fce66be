"""Homoscedastic-uncertainty weighting of several task losses (Kendall, Gal and Cipolla,
"Multi-task learning using uncertainty to weigh losses for scene geometry and semantics",
CVPR 2018), as the hierarchical fashion paper uses it for HMCN-F's local and global losses
(Cho et al., ICCV-W 2019, §3.2.2):

    L_total = 1/σ1² · L_L + 1/σ2² · L_G + log σ1 + log σ2

with every σ learned. As Kendall et al. advise for numerical stability, the learned
parameter is ``s_i = log σ_i²`` (unconstrained, no division by zero), so
``1/σ_i² = exp(-s_i)`` and ``log σ_i = s_i / 2``::

    L_total = Σ_i exp(-s_i) · L_i + s_i / 2

``s`` starts at 0 (σ = 1: the plain sum of the losses, HMCN-F's original objective).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["UncertaintyWeightedLoss"]


class UncertaintyWeightedLoss(nn.Module):
    """Combine ``num_tasks`` scalar losses with learned uncertainties.

    Args:
        num_tasks: how many losses are combined (HMCN-F: 2, local and global).
        init_log_var: initial ``log σ²`` of every task (0: σ = 1).

    ``forward(losses)`` takes a sequence of ``num_tasks`` scalar tensors and returns the
    weighted total; ``log_var`` (a parameter ``[num_tasks]``) is trained with the model.
    """

    def __init__(self, num_tasks: int = 2, init_log_var: float = 0.0) -> None:
        super().__init__()
        if num_tasks < 1:
            raise ValueError(f"num_tasks must be >= 1, got {num_tasks}")
        self.num_tasks = int(num_tasks)
        self.log_var = nn.Parameter(torch.full((self.num_tasks,), float(init_log_var)))

    @property
    def sigma(self) -> torch.Tensor:
        """``σ_i = exp(s_i / 2)`` (detached), for logging."""
        return torch.exp(0.5 * self.log_var.detach())

    @property
    def weights(self) -> torch.Tensor:
        """``1/σ_i² = exp(-s_i)`` (detached), the weight each loss gets."""
        return torch.exp(-self.log_var.detach())

    def forward(self, losses: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(losses) != self.num_tasks:
            raise ValueError(f"expected {self.num_tasks} losses, got {len(losses)}")
        stacked = torch.stack([loss.reshape(()).to(self.log_var.dtype) for loss in losses])
        return (torch.exp(-self.log_var) * stacked + 0.5 * self.log_var).sum()
