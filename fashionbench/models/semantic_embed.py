"""Semantic Embedded ResNeSt (Shen, Zhao and Luo, "Semantic Embedded Deep Neural Network:
A Generic Approach to Boost Multi-Label Image Classification Performance", §III, Fig. 1-2).

Two models, trained one after the other (two chained configs in ``benchmarks/semantic_embed/``):

1. :class:`CAMGenerator` (stage 1, paper §III and Fig. 2): an ImageNet ResNet-50 with the
   SGE attention module (:mod:`fashionbench.layers.sge`, groups 64, after the last BN of
   every bottleneck), then a 1x1 convolution from 2048 to C channels whose output
   ``[B, C, h', w']`` is the class activation map (CAM). It is trained with BCE on the
   image labels. The paper does not say (Fig. 2 is an image lost from our copy) how the
   CAM becomes the logits; we take the CAM construction it cites (Zhou et al., CVPR 2016):
   global average pooling, here of the CAM itself, which equals a linear classifier on
   the pooled features because the 1x1 convolution and the pooling are both linear.
2. :class:`SemanticEmbedResNeSt` (stage 2, paper §III and Fig. 1): the frozen generator's
   CAM goes through the :class:`SemanticEmbedding` module (5 transposed convolutions with
   instance norm; the first four double the spatial size and keep the C channels, the
   last doubles it again and squeezes to D channels, D = 1, or 3 in the ablation), so an
   8x8 CAM of a 256 px image becomes a 256x256 embedding. It is concatenated with the
   image as D extra channels and fed to ResNeSt-50 (timm ``resnest50d``,
   ``in_chans = 3 + D``, split attention) followed by extra fully connected layers, trained
   with BCE. The generator's weights come from stage 1 through ``init_from`` (frozen).

The ablations of Table III are options of :class:`SemanticEmbedResNeSt`: ``semantic:
reshaped`` replaces the learned embedding by :func:`reshaped_cam` (bilinear interpolation to
the input size, sum over the C channels, min-max normalisation per image, nothing learned);
``backbone: resnet50`` replaces ResNeSt-50 by ResNet-50; ``embed_channels: 3`` is D = 3.
``semantic: none`` is the paper's baseline, "a ResNest50 without applying any semantic
guidance" (§IV-C), with the same head and recipe.

Not in our copy of the paper (Fig. 1, "Model parameters can be found in Fig.1", is an
image): the deconvolutions' kernel, the activation, the width of the extra fully connected
layers. We use the standard exact-doubling transposed convolution (kernel 4, stride 2,
padding 1, as in DCGAN, Radford et al. 2016), ReLU after the first four layers (none after
the last, whose instance-normalised output is the embedding), and two hidden fully
connected layers of 1024 and 512 units with ReLU; each is an argument.
"""
from __future__ import annotations

import warnings
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fashionbench.errors import InputError
from fashionbench.layers.sge import add_sge
from fashionbench.models.backbones import create_backbone
from fashionbench.models.base import MultiLabelModule

__all__ = [
    "CAMNetwork",
    "CAMGenerator",
    "SemanticEmbedding",
    "reshaped_cam",
    "ReshapedCAM",
    "SemanticEmbedResNeSt",
]


class CAMNetwork(nn.Module):
    """ResNet + SGE + 1x1 convolution to C channels: ``forward(images) -> CAM [B, C, h', w']``
    (paper §III, Fig. 2). ``h' = H/32`` for timm ResNets.

    Args:
        num_labels: C, the CAM's channels.
        backbone: a timm ResNet built from ``Bottleneck`` (``resnet50``, the paper's) or
            ``BasicBlock`` (``resnet18``, ``resnet10t``: smoke runs) blocks.
        pretrained / weights_file: ImageNet weights (:func:`create_backbone`), loaded before
            the SGE modules are inserted.
        sge_groups: SGE groups (the SGE paper's and its code's 64).
    """

    def __init__(self, num_labels: int, backbone: str = "resnet50", pretrained: bool = True,
                 weights_file: str | None = None, sge_groups: int = 64) -> None:
        super().__init__()
        self.backbone = create_backbone(backbone, pretrained=pretrained, weights_file=weights_file,
                                        num_classes=0, global_pool="")
        if add_sge(self.backbone, sge_groups) == 0:
            raise InputError(f"CAM generator backbone '{backbone}' has no timm ResNet block to put SGE in "
                             "(use resnet50, resnet18, resnet10t, ...)")
        self.cam = nn.Conv2d(self.backbone.num_features, num_labels, kernel_size=1)

    def forward(self, images: Tensor) -> Tensor:
        return self.cam(self.backbone.forward_features(images))


class CAMGenerator(MultiLabelModule):
    """Stage 1: the CAM generator trained as a multi-label classifier (paper §III, Fig. 2).

    ``forward(images)`` returns the logits, the spatial mean of the CAM (module docstring);
    :meth:`cam` returns the CAM. The network is ``self.generator`` (a :class:`CAMNetwork`),
    the submodule stage 2 loads (``init_from: target: generator``).

    Args:
        backbone: timm ResNet of the generator (paper: ``resnet50``).
        pretrained / weights_file: its ImageNet weights (paper: "a pre-trained ResNet50").
        sge_groups: SGE groups (64).
    """

    def __init__(self, backbone: str = "resnet50", pretrained: bool = True, weights_file: str | None = None,
                 sge_groups: int = 64, **kwargs) -> None:
        super().__init__(**kwargs)
        self.generator = CAMNetwork(self.num_labels, backbone, pretrained, weights_file, sge_groups)

    def cam(self, images: Tensor) -> Tensor:
        return self.generator(images)

    def forward(self, images: Tensor) -> Tensor:
        return self.generator(images).mean(dim=(2, 3))

    def backbone_parameters(self) -> list[nn.Parameter]:
        return list(self.generator.backbone.parameters())


class SemanticEmbedding(nn.Module):
    """The learned semantic embedding of a CAM (paper §III, Fig. 1, §V-A): ``layers``
    transposed convolutions, each doubling the spatial size, each followed by instance norm
    (Ulyanov et al. 2016); the first ``layers - 1`` keep the ``in_channels`` (and are
    followed by ReLU), the last squeezes to ``out_channels`` (D). ``[B, C, h, w] ->
    [B, D, 2^layers h, 2^layers w]``: 32x with the paper's 5 layers.

    Args:
        in_channels: C, the CAM's channels (the number of labels).
        out_channels: D (paper: 1; ablation: 3).
        layers: number of transposed convolutions (paper: 5).
        kernel_size: odd or even; stride 2 and padding ``(kernel_size - 2) // 2`` (plus an
            output padding for odd kernels) double the size exactly. Default 4 (DCGAN).
    """

    def __init__(self, in_channels: int, out_channels: int = 1, layers: int = 5, kernel_size: int = 4) -> None:
        super().__init__()
        if layers < 1 or in_channels < 1 or out_channels < 1:
            raise ValueError("SemanticEmbedding needs layers, in_channels and out_channels >= 1")
        if kernel_size < 2:
            raise ValueError(f"kernel_size must be >= 2 to double the size, got {kernel_size}")
        padding, output_padding = (kernel_size - 2) // 2, kernel_size % 2
        blocks: list[nn.Module] = []
        for i in range(layers):
            last = i == layers - 1
            out = out_channels if last else in_channels
            blocks += [
                # no bias: the instance norm right after removes any per-channel constant
                nn.ConvTranspose2d(in_channels, out, kernel_size, stride=2, padding=padding,
                                   output_padding=output_padding, bias=False),
                nn.InstanceNorm2d(out, affine=True),
            ]
            if not last:
                blocks.append(nn.ReLU(inplace=True))
        self.layers = nn.Sequential(*blocks)
        self.scale = 2**layers

    def forward(self, cam: Tensor) -> Tensor:
        return self.layers(cam)


def reshaped_cam(cam: Tensor, size: tuple[int, int], eps: float = 1e-12) -> Tensor:
    """The "reshaped" CAM of the paper's first ablation (§V-A, Table III row 2): bilinear
    interpolation of ``cam`` ``[B, C, h, w]`` to ``size``, sum over the C channels and
    min-max normalisation per image into [0, 1] (``[B, 1, *size]``); a constant map is 0.
    Nothing is learned."""
    summed = F.interpolate(cam, size=tuple(size), mode="bilinear", align_corners=False).sum(dim=1, keepdim=True)
    low = summed.amin(dim=(2, 3), keepdim=True)
    high = summed.amax(dim=(2, 3), keepdim=True)
    return (summed - low) / (high - low).clamp_min(eps)


class ReshapedCAM(nn.Module):
    """:func:`reshaped_cam` as a module (no parameters): ``forward(cam, size)``."""

    def forward(self, cam: Tensor, size: tuple[int, int]) -> Tensor:
        return reshaped_cam(cam, size)


class SemanticEmbedResNeSt(MultiLabelModule):
    """Stage 2: Semantic Embedded ResNeSt-50 (paper §III, Fig. 1), its baseline and ablations.

    ``forward(images)``: CAM from the (frozen) generator -> embedding ``[B, D, H, W]``
    (learned, or reshaped) -> ``cat([images, embedding], dim=1)`` -> classifier backbone
    (``in_chans = 3 + D``) -> global pooling -> fully connected head -> logits.

    Args:
        backbone: timm classifier (paper: ``resnest50d``; ablation: ``resnet50``).
        pretrained / weights_file: its ImageNet weights (timm adapts the first convolution
            to ``3 + D`` input channels).
        semantic: ``deconv`` (the paper's learned embedding), ``reshaped`` (ablation:
            :func:`reshaped_cam`, D = 1) or ``none`` (the baseline: RGB only, no generator).
        embed_channels: D (paper 1, ablation 3).
        embed_layers: transposed convolutions of the embedding (paper 5: 32x, the
            generator's stride, so the embedding ends at the input size).
        embed_kernel_size: their kernel (not in our copy of the paper; default 4).
        generator_backbone / generator_pretrained / generator_weights_file / sge_groups:
            the stage-1 network rebuilt here; its weights come from the stage-1 checkpoint
            (``init_from``), so the config builds it with ``generator_pretrained: false``.
        fc_hidden: widths of the extra fully connected layers before the output layer
            (paper: "more fully connected layers"; widths not in our copy).
        drop_rate: dropout before each fully connected layer.
    """

    def __init__(
        self,
        backbone: str = "resnest50d",
        pretrained: bool = True,
        weights_file: str | None = None,
        semantic: Literal["deconv", "reshaped", "none"] = "deconv",
        embed_channels: int = 1,
        embed_layers: int = 5,
        embed_kernel_size: int = 4,
        generator_backbone: str = "resnet50",
        generator_pretrained: bool = False,
        generator_weights_file: str | None = None,
        sge_groups: int = 64,
        fc_hidden: list[int] | None = None,
        drop_rate: float = 0.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if semantic not in ("deconv", "reshaped", "none"):
            raise ValueError(f"semantic must be deconv, reshaped or none, got {semantic!r}")
        if semantic == "reshaped" and embed_channels != 1:
            raise ValueError("semantic: reshaped gives one channel (the paper's D = 1); set embed_channels: 1")
        self.semantic = semantic
        self.embed_channels = 0 if semantic == "none" else int(embed_channels)
        self.generator: CAMNetwork | None = None
        self.embedding: nn.Module | None = None
        if semantic != "none":
            self.generator = CAMNetwork(self.num_labels, generator_backbone, generator_pretrained,
                                        generator_weights_file, sge_groups)
            self.embedding = (SemanticEmbedding(self.num_labels, self.embed_channels, embed_layers, embed_kernel_size)
                              if semantic == "deconv" else ReshapedCAM())
        self.classifier = create_backbone(backbone, pretrained=pretrained, weights_file=weights_file,
                                          in_chans=3 + self.embed_channels, num_classes=0)
        hidden = [1024, 512] if fc_hidden is None else [int(h) for h in fc_hidden]
        head: list[nn.Module] = []
        width = self.classifier.num_features
        for h in hidden:
            head += [nn.Dropout(drop_rate), nn.Linear(width, h), nn.ReLU(inplace=True)]
            width = h
        head += [nn.Dropout(drop_rate), nn.Linear(width, self.num_labels)]
        self.head = nn.Sequential(*head)

    def semantic_map(self, images: Tensor) -> Tensor | None:
        """The ``[B, D, H, W]`` map concatenated with the image (None for the baseline)."""
        if self.generator is None:
            return None
        cam = self.generator(images)
        size = tuple(images.shape[-2:])
        if self.semantic == "reshaped":
            return reshaped_cam(cam, size)
        embedding = self.embedding(cam)
        if tuple(embedding.shape[-2:]) != size:  # input side not a multiple of the generator's stride
            embedding = F.interpolate(embedding, size=size, mode="bilinear", align_corners=False)
        return embedding

    def forward(self, images: Tensor) -> Tensor:
        semantic = self.semantic_map(images)
        x = images if semantic is None else torch.cat([images, semantic.to(images.dtype)], dim=1)
        return self.head(self.classifier(x))

    def backbone_parameters(self) -> list[nn.Parameter]:
        return list(self.classifier.parameters())

    def on_fit_start(self) -> None:
        if self.generator is not None and any(p.requires_grad for p in self.generator.parameters()):
            warnings.warn(
                "SemanticEmbedResNeSt: the CAM generator is trainable; the paper trains it first (CAMGenerator)"
                " and keeps it fixed: load it with init_from (target: generator, freeze: true)",
                stacklevel=2,
            )

