"""The reference point every paper compares against: a timm backbone with a linear
classifier over its globally pooled features, trained with BCE (or ASL via ``loss``).

With ``backbone: resnet101`` this is the "ResNet-101" row of the VOC/COCO tables
(ML-GCN Table 1/2, CMSG Table 2).
"""
from __future__ import annotations

import torch
from torch import nn

from fashionbench.models.backbones import create_backbone
from fashionbench.models.base import MultiLabelModule


class Baseline(MultiLabelModule):
    """Any timm backbone + linear head.

    Args:
        backbone: timm model name (``resnet101``, ``tresnet_m``, ``convnext_tiny`` ...).
        pretrained: ImageNet weights from the timm hub, or from ``weights_file``.
        weights_file: local state dict of ``backbone`` (used offline).
        drop_rate: dropout before the classifier.
    """

    def __init__(
        self,
        backbone: str = "resnet101",
        pretrained: bool = True,
        weights_file: str | None = None,
        drop_rate: float = 0.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.net = create_backbone(
            backbone, pretrained=pretrained, weights_file=weights_file, num_classes=self.num_labels, drop_rate=drop_rate
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def backbone_parameters(self) -> list[nn.Parameter]:
        head = {id(p) for p in self.net.get_classifier().parameters()}
        return [p for p in self.net.parameters() if id(p) not in head]
