"""Wide, Deep and Recurrent (B. Xiong, M. Wang, "Wide, Deep, and Recurrent: An End-to-End
Neural Architecture for Automatic Fashion Product Labeling", Stanford, iMaterialist
Challenge (Fashion) at FGVC5 poster, 2018).

The poster's three sub-modules and what each follows here:

- **Deep** ("We use pretrained Xception [2] as the image feature extractor. We fine-tune
  all layers with weights from ImageNet"): timm's ``legacy_xception`` (Chollet 2017, the
  Keras/Cadene ImageNet weights; 299 x 299 inputs, mean = std = 0.5), globally average
  pooled to 2,048 values. The table's three Deep rows are ``deep_mode``:
  ``fixed_all`` (the whole encoder frozen and in eval mode; its pooled outputs can then
  be cached once per split with ``fashionbench.feature_cache`` and read from
  ``batch["features"]``), ``fixed_half`` (the stem and the first half of the blocks
  frozen, by timm's block grouping ``group_matcher``: for Xception the stem and blocks
  1-6 of 12 + exit convolutions, the rest fine-tuned; frozen batch norms stay in eval
  mode) and ``tuned`` (everything fine-tuned).
- **Wide** ("shallow yet wide HOG features and Color Histogram features", after Wide &
  Deep, Cheng et al. 2016): the per-image HOG and colour histogram come from the data
  workers as batch extras (``datamodules/extras_wide.py``, named by ``wide``), pass
  through a batch norm (they live on scales unlike the deep features') and are
  concatenated with the deep features into the image representation ``z``. As in Wide &
  Deep's joint model, one linear layer on ``z`` gives the base logits: the wide inputs reach
  the output linearly, next to the deep features.
- **Recurrent** ("bi-directional GRU [4] ... matrix factorization on the label
  co-occurrence matrix to pre-train the label embeddings"): :class:`~fashionbench.layers.label_gru.LabelGRU`,
  CNN-RNN's construction (Wang et al., CVPR 2016) made order-free: a BiGRU over all labels'
  embeddings (most frequent first), its initial state and its joint projection
  conditioned on ``z``, one logit per label added to the base logits. The embeddings are
  initialised before training from the truncated SVD of the PPMI of the training label
  co-occurrence matrix (``embedding_init: cooccurrence``), scaled to unit mean row norm,
  and fine-tuned; the training set's label frequencies set the sequence order. Both are
  computed once, at the first ``fit`` setup (a flag buffer says so; a checkpoint or
  ``init_from`` carries them), from the datamodule's train index.
- **Other techniques**: weighted sampling by eq. (2) is the datamodule's
  ``train_sampling`` (``datamodules.sampling.LabelFrequencySampling``) and per-class
  thresholds by Fan & Lin's cyclic optimisation the callback
  :class:`fashionbench.thresholds.PerClassThresholds`, which the model adds itself when
  ``per_class_thresholds`` is true.

Loss: sigmoid binary cross-entropy per label (the base module's masked BCE); the poster
names no loss. The competition metric is micro-F1 (``F1-micro``).
"""
from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from fashionbench.errors import InputError
from fashionbench.layers.label_gru import LabelGRU, cooccurrence_matrix, factorize_cooccurrence
from fashionbench.models.backbones import create_backbone
from fashionbench.models.base import MultiLabelModule

__all__ = ["WideDeepRecurrent", "DEEP_MODES", "first_half_modules"]

DEEP_MODES = ("fixed_all", "fixed_half", "tuned")


def first_half_modules(encoder: nn.Module) -> list[str]:
    """Names of the encoder's modules in its stem and the first half of its blocks
    (timm ``group_matcher``: group 0 is the stem, the others the blocks in order)."""
    from timm.models import group_modules

    matcher = getattr(encoder, "group_matcher", None)
    if matcher is None:
        raise InputError(f"{type(encoder).__name__} has no timm group_matcher: fixed_half cannot find its blocks")
    groups = group_modules(encoder, matcher(coarse=False))
    ids = sorted(groups)
    n_blocks = len(ids) - 1
    frozen = ids[: 1 + n_blocks // 2]
    return [name for g in frozen for name in groups[g]]


class WideDeepRecurrent(MultiLabelModule):
    """Deep (Xception) + Wide (HOG, colour histogram) + Recurrent (label BiGRU): see the
    module docstring.

    Args:
        backbone: timm name of the Deep encoder (poster: Xception, ``legacy_xception``).
        pretrained / weights_file: ImageNet weights (hub or a local file).
        deep_mode: ``fixed_all`` | ``fixed_half`` | ``tuned``.
        wide: batch extras of the Wide part, ``{key: length}`` (e.g. ``{hog: 1764,
            color_hist: 512}``); empty = no Wide part.
        recurrent: add the Recurrent part.
        embed_dim / hidden_dim / joint_dim: label embedding width (factorisation rank),
            GRU width per direction, CNN-RNN joint width.
        embedding_init: ``cooccurrence`` (pre-trained by factorisation) or ``random``.
        cooccurrence_transform: ``ppmi`` | ``log1p`` | ``none`` before the SVD.
        drop_rate: dropout on ``z`` before the heads.
        feature_key: batch key of cached Deep features (``fixed_all``), used instead of
            running the encoder when the batch has it.
        build_feature_cache: in ``fixed_all`` mode add ``FeatureCacheCallback`` (builds the
            datamodule's ``CachedFeatures`` extras with this encoder; no-op without them).
        per_class_thresholds: add :class:`~fashionbench.thresholds.PerClassThresholds`.
        threshold_options: its keyword arguments (``init``, ``max_passes``, ``fbr``, ``eval_set``).
    """

    def __init__(
        self,
        backbone: str = "legacy_xception",
        pretrained: bool = True,
        weights_file: str | None = None,
        deep_mode: Literal["fixed_all", "fixed_half", "tuned"] = "tuned",
        wide: dict[str, int] | None = None,
        recurrent: bool = True,
        embed_dim: int = 64,
        hidden_dim: int = 256,
        joint_dim: int = 256,
        embedding_init: Literal["cooccurrence", "random"] = "cooccurrence",
        cooccurrence_transform: Literal["ppmi", "log1p", "none"] = "ppmi",
        drop_rate: float = 0.0,
        feature_key: str = "features",
        build_feature_cache: bool = True,
        per_class_thresholds: bool = False,
        threshold_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if deep_mode not in DEEP_MODES:
            raise InputError(f"deep_mode must be one of {', '.join(DEEP_MODES)}, got '{deep_mode}'")
        if embedding_init not in ("cooccurrence", "random"):
            raise InputError(f"embedding_init must be 'cooccurrence' or 'random', got '{embedding_init}'")
        if self.single_label:
            raise InputError("WideDeepRecurrent is a multi-label model (sigmoid per label)")
        self.deep_mode = deep_mode
        self.wide_keys = list((wide or {}).keys())
        self.wide_dims = [int(v) for v in (wide or {}).values()]
        self.embedding_init = embedding_init
        self.cooccurrence_transform = cooccurrence_transform
        self.feature_key = feature_key
        self.build_feature_cache = build_feature_cache
        self.per_class_thresholds = per_class_thresholds
        self.threshold_options = dict(threshold_options or {})

        self.encoder = create_backbone(backbone, pretrained=pretrained, weights_file=weights_file, num_classes=0)
        self.num_features = int(self.encoder.num_features)
        if deep_mode == "fixed_all":
            self.freeze_submodule("encoder")
        elif deep_mode == "fixed_half":
            for name in first_half_modules(self.encoder):
                self.freeze_submodule(f"encoder.{name}")
        wide_dim = sum(self.wide_dims)
        self.wide_norm = nn.BatchNorm1d(wide_dim) if wide_dim else None
        self.feature_dim = self.num_features + wide_dim
        self.dropout = nn.Dropout(drop_rate)
        self.head = nn.Linear(self.feature_dim, self.num_labels)
        self.label_gru = (LabelGRU(self.num_labels, self.feature_dim, embed_dim, hidden_dim, joint_dim)
                          if recurrent else None)
        self.register_buffer("label_prior_ready", torch.zeros((), dtype=torch.bool))

    # ------------------------------------------------------------------ forward
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled Deep features ``[B, 2048]`` (no gradient when the encoder is fixed)."""
        if self.deep_mode == "fixed_all":
            with torch.no_grad():
                return self.encoder(images)
        return self.encoder(images)

    def forward_features(self, deep: torch.Tensor, wide: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[B, C]`` from Deep features and the concatenated Wide features."""
        if deep.shape[-1] != self.num_features:
            raise InputError(f"deep features of width {deep.shape[-1]} for an encoder of width {self.num_features}: "
                             "the feature cache was built with another encoder (use another cache name)")
        parts = [deep.float()]
        if self.wide_norm is not None:
            if wide is None:
                raise InputError(f"WideDeepRecurrent needs the wide features {self.wide_keys} in the batch: "
                                 "add them as datamodule extras (datamodules.extras_wide)")
            parts.append(self.wide_norm(wide.float()))
        z = self.dropout(torch.cat(parts, dim=1))
        logits = self.head(z)
        if self.label_gru is not None:
            logits = logits + self.label_gru(z)
        return logits

    def forward(self, images: torch.Tensor, wide: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_features(self.encode(images), wide)

    def wide_features(self, batch: dict[str, Any]) -> torch.Tensor | None:
        if not self.wide_keys:
            return None
        parts = []
        for key, dim in zip(self.wide_keys, self.wide_dims):
            if key not in batch:
                raise InputError(f"the batch has no '{key}': add it to the datamodule's extras "
                                 f"(e.g. datamodules.extras_wide), or drop it from model.init_args.wide")
            value = batch[key].flatten(1)
            if value.shape[1] != dim:
                raise InputError(f"wide feature '{key}' has {value.shape[1]} values, the model expects {dim} "
                                 "(model.init_args.wide)")
            parts.append(value)
        return torch.cat(parts, dim=1)

    def forward_batch(self, batch: dict[str, Any], label_space: Any) -> torch.Tensor:
        deep = batch[self.feature_key] if self.feature_key in batch else self.encode(batch["image"])
        return self.forward_features(deep, self.wide_features(batch))

    def backbone_parameters(self) -> list[nn.Parameter]:
        return list(self.encoder.parameters())

    # ------------------------------------------------------------------ label prior
    @torch.no_grad()
    def init_label_prior(self, index: Any) -> None:
        """Sequence order from the train label frequencies and, with ``cooccurrence``,
        the label embeddings from the factorised co-occurrence matrix of ``index``."""
        if self.label_gru is None:
            return
        m = cooccurrence_matrix(index)
        if m.shape[0] != self.num_labels:
            raise InputError(f"the train index has {m.shape[0]} labels, the model {self.num_labels}")
        self.label_gru.set_order(np.diag(m))
        if self.embedding_init == "cooccurrence":
            w, _, _ = factorize_cooccurrence(m, self.label_gru.embedding.shape[1], self.cooccurrence_transform)
            norms = np.linalg.norm(w, axis=1)
            scale = norms[norms > 0].mean() if np.any(norms > 0) else 1.0
            self.label_gru.set_embeddings(w / scale)
        self.label_prior_ready.fill_(True)

    def setup(self, stage: str) -> None:
        super().setup(stage)  # init_from first: a loaded model already has its prior
        if stage != "fit" or self.label_gru is None or bool(self.label_prior_ready):
            return
        dm = getattr(self.trainer, "datamodule", None)
        index = getattr(dm, "train_index", None)
        if index is None:
            raise InputError("WideDeepRecurrent needs a datamodule with a train_index to pre-train the label embeddings "
                             "(or embedding_init: random)")
        self.init_label_prior(index)

    def configure_callbacks(self) -> list[Any]:
        callbacks: list[Any] = []
        if self.deep_mode == "fixed_all" and self.build_feature_cache:
            from fashionbench.feature_cache import FeatureCacheCallback

            callbacks.append(FeatureCacheCallback(encoder_attr="encoder"))
        if self.per_class_thresholds:
            from fashionbench.thresholds import PerClassThresholds

            callbacks.append(PerClassThresholds(**self.threshold_options))
        return callbacks
