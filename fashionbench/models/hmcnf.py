"""Hierarchical fashion classification: a frozen CNN encoder, HMCN-F over a category
hierarchy, and the uncertainty-weighted local + global loss (Cho, Ahn, Yoo, Seol, Lee,
"Leveraging class hierarchy in fashion classification", ICCV Workshops 2019; HMCN-F:
Wehrmann, Cerri, Barros, "Hierarchical multi-label classification networks", ICML 2018;
uncertainty weighting: Kendall, Gal, Cipolla, CVPR 2018).

What each part follows:

- §3.1 image encoding: a pretrained CNN, "held fixed during the training" (here any timm
  model via ``create_backbone``, frozen and kept in eval mode; EfficientNet-B5 in §4.1),
  pooled (``I^pool ∈ R^2048``; the pooling type is not stated: timm's global average),
  then a feed-forward layer to ``x ∈ R^512``. The paper's "N×2048, N = 7×7 grid" is
  EfficientNet-B5's last feature map at 224 px (stride 32), so the paper config uses 224 px.
  Because the encoder never changes, its pooled outputs can be cached once per split
  (``fashionbench.feature_cache``); the model then reads ``batch["features"]``.
- §3.2.1 HMCN-F, levels ``h = 1 .. |H|`` (level 1 = the parents, level |H| = the 50
  categories)::

      A_G^1 = φ(W_G^1 x + b_G^1)
      A_G^h = φ(W_G^h (A_G^{h-1} ⊙ x) + b_G^h)          ⊙ = concatenation
      P_G   = σ(W_G^{|H|+1} A_G^{|H|} + b_G^{|H|+1})     over the last level's classes only
      A_L^h = φ(W_T^h A_G^h + b_T^h)
      P_L^h = σ(W_L^h A_L^h + b_L^h)                     over level h's classes
      P_final = β P_L^{|H|} + (1 − β) P_G,  β = 0.7 (§4.1)

  Where the text lost or garbled an equation we follow the HMCN-F original: the paper's
  second global equation is printed with ``A_G^1`` on the left (read ``A_G^h``); its local
  equation is printed as ``φ(W_T^h x + b_T^h)`` although it gives ``W_T^h ∈
  R^{|A_L^h|×|A_G^h|}``, i.e. the input is ``A_G^h`` as in Wehrmann et al.; §3.2 says β is
  "0.5 by default", §4.1 that 0.7 was used (we use 0.7). §3.2 says "previously predicted
  logit values are summed", but its equation sums the sigmoid outputs; we sum
  probabilities as the equation does. Unlike the original HMCN-F (whose P_G covers every
  class of every level and whose P_F concatenates every level's local output), only the
  last level's local output and a last-level P_G are fused, and the hierarchical-violation
  loss is dropped (§3.2). The widths of ``A_G`` and ``A_L`` are not given: 512 (the width of
  ``x``), so every residual connection is an identity.
- §4.1: "Each activation layer is followed by batch normalization, residual connections,
  and dropout of 70%": every ``φ(W z + b)`` (the §3.1 projection, each global and each
  local layer) becomes ``dropout(BN(φ(W z + b)) + skip)``, ``skip`` = the same-width input
  (``x`` for ``A_G^1``, ``A_G^{h-1}`` for ``A_G^h``, ``A_G^h`` for ``A_L^h``; none for the
  2048 → 512 projection, whose widths differ). φ = ReLU (the paper: "e.g. ReLU, tanh").
- §3.2.2 loss: ``L_L = Σ_h ε(P_L^h, Y^h)``, ``L_G = ε(P_G, Y^{|H|})`` with ε the binary
  cross-entropy of HMCN-F (mean over the level's classes and the batch), ``Y^h`` the
  binary class vector of level h (a category's parent is its level-1 class);
  ``loss_weighting: sum`` is ``L_L + L_G`` (the original), ``uncertainty`` is
  ``1/σ1² L_L + 1/σ2² L_G + log σ1 + log σ2`` with σ learned
  (:class:`fashionbench.losses.UncertaintyWeightedLoss`, parametrised as ``log σ²``).

Scores. The task is single-label top-k over the categories; ``P_final`` (probabilities in
[0, 1]) is the score. ``forward``/``forward_batch`` return ``log P_final`` as the "logits"
and :meth:`scores_from_logits` returns ``exp(logits) = P_final``, so the evaluators rank by
``P_final`` exactly (a softmax of the log would give the same ranking too).

Flat baseline (``head: linear``): the same frozen encoder and pooled features with one
linear layer to the categories, trained with the base module's loss (softmax
cross-entropy for single-label tasks): the usual linear probe, without the hierarchy.

The hierarchy: each category's parent comes from ``hierarchy: FILE`` (a YAML file of
``groups: {parent: [category, ...]}``, every category exactly once, see
``benchmarks/hmcnf/hierarchies/``) or, without a file, from the label space's ``parents``
(the DeepFashion reader's upper / lower / full-body types).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import torch
import yaml
from torch import nn
from torch.nn import functional as F

from fashionbench.errors import InputError
from fashionbench.losses import MaskedBCEWithLogits, UncertaintyWeightedLoss
from fashionbench.models.backbones import create_backbone
from fashionbench.models.base import MultiLabelModule

__all__ = ["ActivationLayer", "HMCNFHead", "HMCNFOutput", "HierarchicalHMCNF", "load_hierarchy"]

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


# --------------------------------------------------------------------------- hierarchy files
def load_hierarchy(path: str | Path, label_names: Sequence[str]) -> list[str]:
    """Each label's parent from a hierarchy YAML file (``groups: {parent: [labels]}``).

    Every label of ``label_names`` must appear exactly once; an unknown or repeated label,
    a label left out, or a malformed file is an :class:`InputError` naming the line.
    Returns the ``C`` parent names in label order.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        root = yaml.compose(text)
    except OSError as err:
        raise InputError(f"cannot read hierarchy file ({err.strerror or err})", path=path) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise InputError(f"bad YAML: {getattr(err, 'problem', err)}", path=path,
                         line=None if mark is None else mark.line + 1) from None

    def line(node: yaml.Node) -> int:
        return node.start_mark.line + 1

    if not isinstance(root, yaml.MappingNode):
        raise InputError("a hierarchy file is a mapping with 'groups'", path=path, line=1)
    groups = next((v for k, v in root.value if isinstance(k, yaml.ScalarNode) and k.value == "groups"), None)
    if not isinstance(groups, yaml.MappingNode) or not groups.value:
        raise InputError("'groups' must map each parent name to a list of labels", path=path,
                         line=line(groups) if groups is not None else 1)
    known = {name: i for i, name in enumerate(label_names)}
    parents: list[str | None] = [None] * len(label_names)
    seen_parents: set[str] = set()
    for key, members in groups.value:
        parent = str(key.value).strip()
        if not isinstance(key, yaml.ScalarNode) or not parent:
            raise InputError("a parent name must be a non-empty string", path=path, line=line(key))
        if parent in seen_parents:
            raise InputError(f"parent '{parent}' is listed twice", path=path, line=line(key))
        seen_parents.add(parent)
        if not isinstance(members, yaml.SequenceNode) or not members.value:
            raise InputError(f"parent '{parent}' needs a non-empty list of labels", path=path, line=line(members))
        for member in members.value:
            name = str(member.value) if isinstance(member, yaml.ScalarNode) else None
            if name not in known:
                raise InputError(f"unknown label '{name}' (not one of the dataset's {len(label_names)} labels)",
                                 path=path, line=line(member))
            if parents[known[name]] is not None:
                raise InputError(f"label '{name}' is in '{parents[known[name]]}' and again in '{parent}'",
                                 path=path, line=line(member))
            parents[known[name]] = parent
    missing = [n for n, p in zip(label_names, parents) if p is None]
    if missing:
        raise InputError(f"{len(missing)} labels have no parent: {', '.join(missing[:5])}"
                         f"{' ...' if len(missing) > 5 else ''}", path=path, line=line(groups))
    return [str(p) for p in parents]


# --------------------------------------------------------------------------- layers
class ActivationLayer(nn.Module):
    """``dropout(BN(φ(W z + b)) + skip)`` (§4.1: each activation layer followed by batch
    normalization, a residual connection and dropout). ``skip`` is given by the caller
    (None: no residual); ``residual=False`` ignores it."""

    def __init__(self, in_features: int, out_features: int, dropout: float = 0.7, batch_norm: bool = True,
                 residual: bool = True, activation: str = "relu") -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.act = _ACTIVATIONS[activation]()
        self.norm = nn.BatchNorm1d(out_features) if batch_norm else nn.Identity()
        self.residual = residual
        self.dropout = nn.Dropout(dropout)
        self.out_features = out_features

    def forward(self, z: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        a = self.norm(self.act(self.linear(z)))
        if self.residual and skip is not None and skip.shape[-1] == self.out_features:
            a = a + skip
        return self.dropout(a)


@dataclass
class HMCNFOutput:
    """Everything one pass of :class:`HMCNFHead` computes (``[B, ...]`` tensors)."""

    x: torch.Tensor                      # the §3.1 embedding, [B, embed_dim]
    global_activations: list[torch.Tensor]   # A_G^1 .. A_G^|H|, [B, hidden_dim]
    local_activations: list[torch.Tensor]    # A_L^1 .. A_L^|H|, [B, local_dim]
    local_logits: list[torch.Tensor]         # pre-sigmoid P_L^h, [B, |C^h|]
    global_logits: torch.Tensor              # pre-sigmoid P_G, [B, |C^|H||]
    final: torch.Tensor                      # P_final, [B, |C^|H||]


class HMCNFHead(nn.Module):
    """§3.1 projection + §3.2.1 HMCN-F (global and local flows, β fusion).

    Args:
        in_features: width of the pooled encoder features (2048 for EfficientNet-B5).
        level_sizes: classes per level, top first; the last is the categories ([P, C]).
        embed_dim: width of ``x`` (§3.1: 512).
        hidden_dim / local_dim: widths of ``A_G^h`` / ``A_L^h`` (not given; 512).
        beta: weight of the last local prediction in ``P_final`` (§4.1: 0.7).
        dropout, batch_norm, residual, activation: the activation layers (§4.1).
    """

    def __init__(self, in_features: int, level_sizes: Sequence[int], embed_dim: int = 512, hidden_dim: int = 512,
                 local_dim: int = 512, beta: float = 0.7, dropout: float = 0.7, batch_norm: bool = True,
                 residual: bool = True, activation: str = "relu") -> None:
        super().__init__()
        if len(level_sizes) < 1 or min(level_sizes) < 1:
            raise ValueError(f"level_sizes must be positive, got {list(level_sizes)}")
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {beta}")
        if activation not in _ACTIVATIONS:
            raise InputError(f"activation must be one of {sorted(_ACTIVATIONS)}, got '{activation}'")
        self.level_sizes = [int(s) for s in level_sizes]
        self.beta = float(beta)
        layer = dict(dropout=dropout, batch_norm=batch_norm, residual=residual, activation=activation)
        self.project = ActivationLayer(in_features, embed_dim, **layer)
        self.global_layers = nn.ModuleList(
            ActivationLayer(embed_dim if h == 0 else hidden_dim + embed_dim, hidden_dim, **layer)
            for h in range(len(self.level_sizes)))
        self.global_out = nn.Linear(hidden_dim, self.level_sizes[-1])
        self.local_layers = nn.ModuleList(ActivationLayer(hidden_dim, local_dim, **layer) for _ in self.level_sizes)
        self.local_out = nn.ModuleList(nn.Linear(local_dim, size) for size in self.level_sizes)

    def forward(self, features: torch.Tensor) -> HMCNFOutput:
        x = self.project(features, skip=features)
        global_acts, local_acts, local_logits = [], [], []
        a_g = None
        for h, (g_layer, l_layer, l_out) in enumerate(zip(self.global_layers, self.local_layers, self.local_out)):
            a_g = g_layer(x, skip=x) if h == 0 else g_layer(torch.cat([a_g, x], dim=-1), skip=a_g)
            a_l = l_layer(a_g, skip=a_g)
            global_acts.append(a_g)
            local_acts.append(a_l)
            local_logits.append(l_out(a_l))
        global_logits = self.global_out(a_g)
        final = self.beta * torch.sigmoid(local_logits[-1]) + (1.0 - self.beta) * torch.sigmoid(global_logits)
        return HMCNFOutput(x, global_acts, local_acts, local_logits, global_logits, final)


# --------------------------------------------------------------------------- the module
class HierarchicalHMCNF(MultiLabelModule):
    """Frozen encoder + HMCN-F (or a linear head) over the dataset's categories.

    Args:
        backbone: timm name of the frozen encoder (§4.1: EfficientNet-B5).
        pretrained / weights_file: its ImageNet weights (hub, or a local file).
        encoder_seed: seeds the encoder's initialisation when ``pretrained`` is false, so
            every run (and the feature cache) sees the same random encoder.
        head: ``hmcnf`` (the paper) or ``linear`` (the flat baseline).
        hierarchy: YAML file mapping parents to categories; None = the label space's
            ``parents`` (DeepFashion's types).
        embed_dim / hidden_dim / local_dim / beta / dropout / batch_norm / residual /
            activation: :class:`HMCNFHead`.
        loss_weighting: ``sum`` (HMCN-F: L_L + L_G) or ``uncertainty`` (Kendall et al.).
        feature_key: batch key of cached encoder features; used instead of the image when
            the batch has it (``fashionbench.feature_cache.CachedFeatures``).
        build_feature_cache: add :class:`~fashionbench.feature_cache.FeatureCacheCallback`
            (builds the datamodule's feature caches with this encoder when missing).
    """

    def __init__(
        self,
        backbone: str = "tf_efficientnet_b5.aa_in1k",
        pretrained: bool = True,
        weights_file: str | None = None,
        encoder_seed: int = 0,
        head: Literal["hmcnf", "linear"] = "hmcnf",
        hierarchy: str | None = None,
        embed_dim: int = 512,
        hidden_dim: int = 512,
        local_dim: int = 512,
        beta: float = 0.7,
        dropout: float = 0.7,
        batch_norm: bool = True,
        residual: bool = True,
        activation: Literal["relu", "tanh"] = "relu",
        loss_weighting: Literal["sum", "uncertainty"] = "sum",
        feature_key: str = "features",
        build_feature_cache: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if head not in ("hmcnf", "linear"):
            raise InputError(f"head must be 'hmcnf' or 'linear', got '{head}'")
        if loss_weighting not in ("sum", "uncertainty"):
            raise InputError(f"loss_weighting must be 'sum' or 'uncertainty', got '{loss_weighting}'")
        self.head_type = head
        self.feature_key = feature_key
        self.build_feature_cache = build_feature_cache
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(encoder_seed)
            self.encoder = create_backbone(backbone, pretrained=pretrained, weights_file=weights_file, num_classes=0)
        self.freeze_submodule("encoder")
        self.num_features = int(self.encoder.num_features)
        if head == "linear":
            self.classifier = nn.Linear(self.num_features, self.num_labels)
            self.level_names: list[list[str]] = [list(self.label_space.names)]
            return
        parents = self._parents(hierarchy)
        parent_names = list(dict.fromkeys(parents))
        lookup = {p: i for i, p in enumerate(parent_names)}
        self.level_names = [parent_names, list(self.label_space.names)]
        # level h's class of each label (top level first; the last level is the label itself)
        self.register_buffer("parent_of_label", torch.tensor([lookup[p] for p in parents], dtype=torch.long))
        self.head = HMCNFHead(self.num_features, [len(parent_names), self.num_labels], embed_dim=embed_dim,
                              hidden_dim=hidden_dim, local_dim=local_dim, beta=beta, dropout=dropout,
                              batch_norm=batch_norm, residual=residual, activation=activation)
        self.level_loss = MaskedBCEWithLogits(reduction="mean")
        self.loss_weighting = loss_weighting
        self.uncertainty = UncertaintyWeightedLoss(2) if loss_weighting == "uncertainty" else None
        self._last: HMCNFOutput | None = None

    def _parents(self, hierarchy: str | None) -> list[str]:
        if hierarchy is not None:
            return load_hierarchy(hierarchy, self.label_space.names)
        if self.label_space.parents is None:
            raise InputError("HMCN-F needs a hierarchy: give model.init_args.hierarchy (a YAML file of "
                             "groups) or a dataset whose labels have parents (e.g. deepfashion --task category)")
        return list(self.label_space.parents)

    # ------------------------------------------------------------------ forward
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled features of the frozen encoder (no gradient)."""
        with torch.no_grad():
            return self.encoder(images)

    def forward_features(self, features: torch.Tensor) -> torch.Tensor:
        """The model's logits from pooled encoder features (cached or fresh)."""
        if features.shape[-1] != self.num_features:
            raise InputError(f"features of width {features.shape[-1]} for an encoder of width {self.num_features}: "
                             "the feature cache was built with another encoder (use another cache name)")
        features = features.float()
        if self.head_type == "linear":
            return self.classifier(features)
        out = self.head(features)
        self._last = out
        return torch.log(out.final.clamp_min(torch.finfo(out.final.dtype).tiny))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_features(self.encode(images))

    def forward_batch(self, batch: dict[str, Any], label_space: Any) -> torch.Tensor:
        if self.feature_key in batch:
            return self.forward_features(batch[self.feature_key])
        return self(batch["image"])

    def scores_from_logits(self, logits: torch.Tensor) -> torch.Tensor:
        if self.head_type == "linear":
            return super().scores_from_logits(logits)
        return torch.exp(logits)  # = P_final

    def backbone_parameters(self) -> list[nn.Parameter]:
        return list(self.encoder.parameters())  # frozen: no optimiser group gets them

    # ------------------------------------------------------------------ loss
    def level_targets(self, batch: dict[str, Any]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """``Y^h`` and known-masks of both levels (parents, categories) as ``[B, |C^h|]``."""
        target = batch["target"]
        n_parents = len(self.level_names[0])
        if self.single_label:
            classes = target.long()
            y_cat = F.one_hot(classes, self.num_labels).float()
            y_par = F.one_hot(self.parent_of_label[classes], n_parents).float()
            ones = torch.ones_like
            return [y_par, y_cat], [ones(y_par, dtype=torch.bool), ones(y_cat, dtype=torch.bool)]
        y_cat = target.float()
        mask = batch.get("mask")
        mask = torch.ones_like(y_cat, dtype=torch.bool) if mask is None else mask.bool()
        member = F.one_hot(self.parent_of_label, n_parents).to(y_cat)                 # [C, P]
        y_par = ((y_cat * mask) @ member > 0).float()                                   # a known positive child
        all_known = ((~mask).to(y_cat) @ member) == 0
        return [y_par, y_cat], [(y_par > 0) | all_known, mask]

    def hmcnf_losses(self, out: HMCNFOutput, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(L_L, L_G)`` of §3.2.2 (ε = binary cross-entropy, mean over known entries)."""
        targets, masks = self.level_targets(batch)
        local = sum(self.level_loss(z.float(), y, m) for z, y, m in zip(out.local_logits, targets, masks))
        global_ = self.level_loss(out.global_logits.float(), targets[-1], masks[-1])
        return local, global_

    def compute_loss(self, logits: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        if self.head_type == "linear":
            return super().compute_loss(logits, batch)
        out = self._last
        if out is None or out.final.shape[0] != logits.shape[0]:
            raise RuntimeError("compute_loss needs the outputs of the forward pass that made these logits")
        local, global_ = self.hmcnf_losses(out, batch)
        if self.uncertainty is None:
            total = local + global_
        else:
            total = self.uncertainty([local, global_])
        if self._trainer is not None and self.training:
            size = logits.shape[0]
            self.log("train/loss_local", local.detach(), batch_size=size)
            self.log("train/loss_global", global_.detach(), batch_size=size)
            if self.uncertainty is not None:
                sigma = self.uncertainty.sigma
                self.log("train/sigma_local", sigma[0], batch_size=size)
                self.log("train/sigma_global", sigma[1], batch_size=size)
        return total

    # ------------------------------------------------------------------ feature cache
    def configure_callbacks(self) -> list[Any]:
        if not self.build_feature_cache:
            return []
        from fashionbench.feature_cache import FeatureCacheCallback

        return [FeatureCacheCallback(encoder_attr="encoder")]
