"""CMSG: cross-modality semantic guidance for multi-label image classification
(Huang, Wang, Hong, Qu, Xue, Intelligent Data Analysis, doi:10.3233/IDA-230239).

Pipeline (the paper's method section: backbone, SGA module, SAA module, loss; our copy
lost its equations and numbering, so each step names the cited work whose standard
construction it takes):

1. Spatial features (paper: backbone): the last feature map of the backbone (ResNet-101,
   ImageNet-pretrained), projected by a 1x1 convolution (a linear map per position) to
   ``hidden_dim`` as Q2L's ``input_proj``; positions get DETR's 2-D sine encoding, added to
   attention keys only (Q2L).
2. Class-specific features (the input of SGA). **The paper's construction of these features
   is lost in our copy**: its feature-extraction and SGA subsections lost their equations
   (the text keeps "Concretely, the feature [lost] ..." and no more), so how the paper turns
   the feature map into one feature per class is unknown. **SSGRL-style semantic decoupling
   fills the gap** (Chen et al., ICCV 2019, Sec. 3.1; the paper's reference [4], which it
   cites for "a semantic decoupling module to capture the interaction between labels and
   visual features"): each label's word vector (GloVe 300-d, the paper's; any file
   ``fashionbench.embeddings`` reads) scores every position of the spatial features and
   pools them into that label's feature, with a scaled dot-product score in place of
   SSGRL's low-rank bilinear one (:class:`~fashionbench.layers.SemanticDecoupling`).
   Consequence for the ablations: this step is itself an attention from the labels to the
   image positions, so **"w/o SAA" still attends from labels to image positions once** (in
   the decoupling) -- it drops the SAA cross-attention layers, not every label-to-position
   attention -- and "w/o SGA" and "w/o SAA" both keep it.
3. Semantic correlation matrix (paper: SGA module): cosine similarity of the label vectors,
   binarised at ``tau`` and re-weighted with ``p`` as ML-GCN Eq. 7-8 (rows sum to 1, the
   identity kept: :func:`~fashionbench.layers.semantic_correlation`). Computed once from the
   fixed vectors and kept as a buffer.
4. SGA, semantic-guided attention: ``sga_layers`` layers of multi-head self-attention + FFN
   over the class-specific features, the correlation matrix masking the scores additively
   (``log A'``: a pair with ``A'_ij = 0`` gets exactly zero weight, an allowed pair is
   weighted by ``A'_ij``).
5. SAA, spatial-aware attention: ``saa_layers`` layers of multi-head cross-attention + FFN,
   class-specific features as queries, spatial features as keys/values (Q2L's decoder layer
   without its self-attention).
6. Classifier: one linear classifier per class on its feature (Q2L's ``GroupWiseLinear``).
7. Loss (paper: ASL): ``gamma_neg=4, gamma_pos=0, clip=0.05`` (ASL's training settings),
   reduction ``sum`` over the batch's known entries (ASL's official code); a ``loss`` given
   in the config replaces it.

Layer shapes (the paper is silent): Q2L's -- width = the backbone's channels (2048 for
ResNet-101), FFN ``4 x hidden`` (8192), 4 heads, dropout 0.1, post-norm, 2 layers each
(Q2L's 2 decoder layers hold one self- and one cross-attention each). Heads and layers of
SGA and SAA are separate arguments (the paper's sensitivity study). Ablations (the paper's
ablation study): ``use_sga=False`` feeds the class-specific features straight to SAA;
``use_saa=False`` classifies the SGA output (the labels still attended to the image positions
once, in the decoupling of step 2); ``use_correlation=False`` runs SGA unmasked. A smaller
``hidden_dim`` (e.g. 256, ``benchmarks/cmsg/voc2007_cmsg_w256.yaml``) sizes the head near the
paper's rival graph models (ML-GCN); ``fashionbench.model_size`` counts parameters and FLOPs.
The ResNet-101 row is :class:`~fashionbench.models.Baseline`.
"""
from __future__ import annotations

import torch
from torch import nn

from fashionbench.embeddings import load_label_embeddings
from fashionbench.errors import InputError
from fashionbench.layers import (
    CrossAttentionLayer,
    GroupWiseLinear,
    SelfAttentionLayer,
    SemanticDecoupling,
    attention_bias,
    semantic_correlation,
    sine_position_encoding,
)
from fashionbench.losses import AsymmetricLoss
from fashionbench.models.backbones import create_backbone
from fashionbench.models.base import MultiLabelModule


class CMSG(MultiLabelModule):
    """CMSG (see the module docstring for every construction choice).

    Args:
        backbone: timm model name; its last feature map gives the spatial features.
        pretrained: ImageNet weights from the timm hub, or from ``weights_file``.
        weights_file: local state dict of ``backbone`` (used offline).
        embeddings: label-vector source for ``label_names`` (a ``.npz``/``.txt``/``.vec``
            file, or ``sentence_encoder``); the config passes the dataset's file.
        tau: cosine-similarity threshold of the correlation matrix (ML-GCN Eq. 7).
        p: weight the neighbours of a label share (ML-GCN Eq. 8), in [0, 1).
        hidden_dim: width of the attention layers (default: the backbone's channels, as
            Q2L: 2048 for ResNet-101).
        ffn_dim: hidden width of their FFNs (default ``4 * hidden_dim``).
        sga_layers, sga_heads: depth and heads of the semantic-guided attention.
        saa_layers, saa_heads: depth and heads of the spatial-aware attention.
        dropout: dropout inside the attention layers.
        use_sga, use_saa, use_correlation: the ablation switches.
        norm_first: pre-norm layers instead of post-norm (Q2L's ``pre_norm``).
        **kwargs: to :class:`MultiLabelModule` (``num_labels``, ``label_names``, ``loss``,
            ``optim``, ``evaluation``).
    """

    def __init__(
        self,
        backbone: str = "resnet101",
        pretrained: bool = True,
        weights_file: str | None = None,
        embeddings: str | None = None,
        tau: float = 0.4,
        p: float = 0.2,
        hidden_dim: int | None = None,
        ffn_dim: int | None = None,
        sga_layers: int = 2,
        sga_heads: int = 4,
        saa_layers: int = 2,
        saa_heads: int = 4,
        dropout: float = 0.1,
        use_sga: bool = True,
        use_saa: bool = True,
        use_correlation: bool = True,
        norm_first: bool = False,
        **kwargs,
    ) -> None:
        if kwargs.get("loss") is None:
            kwargs["loss"] = AsymmetricLoss(gamma_neg=4.0, gamma_pos=0.0, clip=0.05, reduction="sum")
        super().__init__(**kwargs)
        if embeddings is None:
            raise InputError("CMSG needs `embeddings`: a label-vector file (.npz, GloVe .txt, FastText .vec) for its labels")
        if self.label_names is None:
            raise InputError("CMSG needs `label_names` (linked from the datamodule) to align the label vectors")
        if min(sga_heads, saa_heads) < 1 or min(sga_layers, saa_layers) < 0 or (hidden_dim is not None and hidden_dim < 1):
            raise ValueError("CMSG: heads and hidden_dim must be >= 1, layers >= 0")

        self.backbone = create_backbone(backbone, pretrained=pretrained, weights_file=weights_file, num_classes=0, global_pool="")
        hidden_dim = hidden_dim or self.backbone.num_features
        ffn_dim = ffn_dim or 4 * hidden_dim
        for heads in (sga_heads, saa_heads):
            if hidden_dim % heads:
                raise ValueError(f"CMSG: hidden_dim {hidden_dim} is not divisible by {heads} heads")
        self.channels_last_output = getattr(self.backbone, "output_fmt", "NCHW") == "NHWC"
        self.input_proj = nn.Linear(self.backbone.num_features, hidden_dim)

        label_vectors = load_label_embeddings(embeddings, self.label_names)
        self.register_buffer("label_vectors", label_vectors)
        correlation = semantic_correlation(label_vectors, tau=tau, p=p)
        self.register_buffer("correlation", correlation)
        self.use_correlation = use_correlation

        self.decoupling = SemanticDecoupling(label_vectors.shape[1], hidden_dim)
        n_sga = sga_layers if use_sga else 0
        n_saa = saa_layers if use_saa else 0
        self.sga = nn.ModuleList(SelfAttentionLayer(hidden_dim, sga_heads, ffn_dim, dropout, norm_first) for _ in range(n_sga))
        self.saa = nn.ModuleList(CrossAttentionLayer(hidden_dim, saa_heads, ffn_dim, dropout, norm_first) for _ in range(n_saa))
        self.classifier = GroupWiseLinear(self.num_labels, hidden_dim)

    @property
    def sga_bias(self) -> torch.Tensor | None:
        """The additive SGA mask ``log A'`` (None without the correlation matrix). Derived on
        the fly: only the finite matrix is a buffer, so weight averaging (EMA) keeps it exact."""
        return attention_bias(self.correlation) if self.use_correlation else None

    def spatial_features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Projected backbone features [B, N, hidden] and their position encoding [N, hidden]."""
        fmap = self.backbone.forward_features(images)
        if fmap.ndim == 3:  # token backbones (ViT): tokens carry their own positions
            return self.input_proj(fmap), None
        if not self.channels_last_output:
            fmap = fmap.permute(0, 2, 3, 1)
        _, height, width, _ = fmap.shape
        tokens = self.input_proj(fmap.flatten(1, 2))
        pos = sine_position_encoding(height, width, tokens.shape[-1], device=tokens.device).to(tokens.dtype)
        return tokens, pos

    def class_features(self, images: torch.Tensor) -> torch.Tensor:
        """Class-specific features [B, C, hidden] after SGA and SAA."""
        tokens, pos = self.spatial_features(images)
        z = self.decoupling(tokens, self.label_vectors, pos)
        bias = self.sga_bias if len(self.sga) else None
        for layer in self.sga:
            z = layer(z, bias)
        for layer in self.saa:
            z = layer(z, tokens, pos)
        return z

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.class_features(images))

    def backbone_parameters(self) -> list[nn.Parameter]:
        return list(self.backbone.parameters())
