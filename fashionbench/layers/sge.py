"""Spatial Group-wise Enhance (SGE; Li, Hu and Yang, "Spatial Group-wise Enhance:
Improving Semantic Feature Learning in Convolutional Networks", arXiv:1905.09646, 2019),
the attention module of the semantic-embedding paper's CAM generator (Shen et al., §III:
"a pre-trained ResNet50 incorporated with attention-based SGE module [12]").

For a feature map ``x`` ``[B, C, H, W]`` split into ``G`` groups of ``C/G`` consecutive
channels, per image and group (SGE paper, Eq. 1-5):

- ``g = mean_{h,w} x`` (the group's global descriptor, ``[C/G]``),
- ``c_i = <g, x_i>`` at every position ``i`` (a dot product over the group's channels),
- ``ĉ_i = (c_i - mean_i c) / (std_i c + eps)`` over the ``H·W`` positions,
- ``a_i = γ ĉ_i + β`` with one learned ``γ`` (init 0) and ``β`` (init 1) per group,
- ``out_i = x_i · sigmoid(a_i)``.

Checked against the authors' code (implus/PytorchInsight,
``classification/models/imagenet/resnet_sge.py``, read, not copied): groups = 64, the
scale initialised to 0 and the bias to 1, the standard deviation is the unbiased one
(``torch.std``) with ``eps = 1e-5`` added to it, and the module sits after the last BN of
each residual branch (``bn3`` of a Bottleneck, ``bn2`` of a BasicBlock), before the
residual addition. One difference: with a single position (``H·W = 1``) the unbiased
standard deviation is undefined (the official code returns NaN); here ``ĉ`` is then 0.

:func:`add_sge` inserts the module into a timm ResNet by wrapping those BN layers as
``nn.Sequential(bn, SpatialGroupEnhance)`` (timm's blocks are left as they are).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["SpatialGroupEnhance", "add_sge"]


class SpatialGroupEnhance(nn.Module):
    """SGE over ``groups`` channel groups (Li et al. 2019, Eq. 1-5; module docstring).

    Args:
        groups: number of groups ``G``; the input's channels must be a multiple of it.
        eps: added to the standard deviation of the similarity map (official code: 1e-5).
    """

    def __init__(self, groups: int = 64, eps: float = 1e-5) -> None:
        super().__init__()
        if groups < 1:
            raise ValueError(f"groups must be >= 1, got {groups}")
        self.groups = int(groups)
        self.eps = float(eps)
        self.weight = nn.Parameter(torch.zeros(1, self.groups, 1, 1))  # γ, init 0 (official code)
        self.bias = nn.Parameter(torch.ones(1, self.groups, 1, 1))  # β, init 1 (official code)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        if c % self.groups:
            raise ValueError(f"SGE with {self.groups} groups needs channels divisible by it, got {c}")
        xg = x.reshape(b, self.groups, c // self.groups, h * w)
        xf = xg.float()  # statistics in float32 (also under 16-bit mixed precision)
        descriptor = xf.mean(dim=3, keepdim=True)  # g: [B, G, C/G, 1]
        sim = (xf * descriptor).sum(dim=2)  # c_i: [B, G, HW]
        sim = sim - sim.mean(dim=2, keepdim=True)
        if h * w > 1:
            sim = sim / (sim.std(dim=2, keepdim=True) + self.eps)  # unbiased std, as torch.std in the official code
        else:
            sim = torch.zeros_like(sim)
        attention = sim.view(b, self.groups, 1, h * w) * self.weight.view(1, self.groups, 1, 1) + self.bias.view(
            1, self.groups, 1, 1
        )
        return (xg * torch.sigmoid(attention).to(x.dtype)).reshape(b, c, h, w)

    def extra_repr(self) -> str:
        return f"groups={self.groups}, eps={self.eps}"


def add_sge(model: nn.Module, groups: int = 64) -> int:
    """Insert :class:`SpatialGroupEnhance` after the last BN of every residual block of a
    timm ResNet (``Bottleneck.bn3``, ``BasicBlock.bn2``), before the residual addition.

    The BN is replaced by ``nn.Sequential(bn, SpatialGroupEnhance(groups))``, so a state
    dict of the plain network loads into the ``.0`` entries; load pretrained weights
    before calling this. Returns the number of modules inserted (0 if ``model`` has no
    timm ResNet block, which is an error for callers that expect one).
    """
    from timm.models.resnet import BasicBlock, Bottleneck

    inserted = 0
    for block in list(model.modules()):
        if isinstance(block, Bottleneck):
            name = "bn3"
        elif isinstance(block, BasicBlock):
            name = "bn2"
        else:
            continue
        bn = getattr(block, name)
        if isinstance(bn, nn.Sequential):  # already enhanced
            continue
        channels = bn.num_features
        if channels % groups:
            raise ValueError(f"SGE with {groups} groups: a block has {channels} channels, not a multiple")
        setattr(block, name, nn.Sequential(bn, SpatialGroupEnhance(groups)))
        inserted += 1
    return inserted
