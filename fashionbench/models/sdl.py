"""SDL: Semantic Diversity Learning for zero-shot multi-label classification (Ben-Cohen,
Zamir, Ben Baruch, Friedman, Zelnik-Manor, ICCV 2021), §3.2-3.3 and §4.1.

- Backbone (§3.2): TResNet-M (timm ``tresnet_m``), ImageNet-pretrained (§4.1), globally
  average-pooled.
- Head (§3.2): "by modifying its last fully connected layer, the vision model is trained to
  output a M x d_w linear transformation matrix": one linear layer from the pooled features
  to ``M * d_w`` outputs, reshaped to ``A`` ``[B, M, d_w]``; without a bias (official code,
  Alibaba-MIIL/ZS_SDL @769fe4f ``src/models/utils/factory.py``: ``Linear(num_features,
  num_rows * wordvec_dim, bias=False)``). Dropout 0.5 in front of it (§4.1 "We use dropout
  [12] with probability of 0.5"; note that [12] is Cutout, DeVries & Taylor 2017, and the
  official ``train.py`` applies ``CutoutPIL(cutout_factor=0.5)`` and no dropout layer: the
  configs use both, ``head_dropout: 0`` gives the official code's head).
- ``d_w`` is the width of the label vectors: the label space's ``vectors`` (the datamodule's
  ``embeddings:`` file, npz / GloVe / FastText; 300 for the paper's FastText vectors, §4.1).
  They are ℓ2-normalised before use (§4.1 "The word vectors are ℓ2 normalized"; the
  official NUS-WIDE and COCO vectors are unit-norm), once per label space and device.
- Scores (§4.1 inference): ``r_ic = max_m (A_i t_c)_m`` for every label vector ``t_c`` of
  whatever label space the batch is scored against: the train (seen) labels in training,
  an evaluation set's labels at evaluation (ZSL: the unseen ones, GZSL: seen + unseen).
  ``row_reduce: l2`` scores ``||A_i t_c||_2`` instead (the paper's M = 7 baseline, §4.1
  "Baseline", Table 3 "Base."). The raw scores are what the evaluators rank (no sigmoid:
  it would saturate to ties at large ``r``); the paper reports only ranking metrics
  (mAP, P/R/F1 at top K).
- Loss (§3.3, eqs. 1-5): :class:`fashionbench.losses.SDLLoss` on the train label space,
  fed the scores, ``A`` and the normalised label vectors. Fast0Tag (Zhang et al. CVPR 2016,
  the paper's baseline) is ``num_rows: 1`` with ``SDLLoss(reg_weight=0, use_sdw=False)``.
"""
from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from fashionbench.errors import InputError
from fashionbench.losses.sdl import RowReduce, SDLLoss, sdl_scores
from fashionbench.models.backbones import create_backbone
from fashionbench.models.base import MultiLabelModule


class SDLZeroShot(MultiLabelModule):
    """SDL (see the module docstring for every construction choice).

    Args:
        backbone: timm model name (the paper: ``tresnet_m``).
        pretrained: ImageNet weights from the timm hub, or from ``weights_file``.
        weights_file: local state dict of ``backbone`` (used offline).
        num_rows: ``M``, the rows (principal directions) of ``A``: 7 on NUS-WIDE and Open
            Images, 2 on COCO (§4.7); 1 is Fast0Tag.
        head_dropout: dropout before the head (§4.1: 0.5).
        head_bias: a bias in the head's linear layer (official code: none).
        vector_dim: ``d_w``; default the width of the train label space's vectors.
        normalize_vectors: ℓ2-normalise the label vectors (§4.1).
        row_reduce: ``max`` (eq. 1, the paper's method) or ``l2`` (the paper's baseline).
        loss: default :class:`~fashionbench.losses.SDLLoss` with the paper's settings.
    """

    scores_label_vectors: ClassVar[bool] = True

    def __init__(
        self,
        backbone: str = "tresnet_m",
        pretrained: bool = True,
        weights_file: str | None = None,
        num_rows: int = 7,
        head_dropout: float = 0.5,
        head_bias: bool = False,
        vector_dim: int | None = None,
        normalize_vectors: bool = True,
        row_reduce: RowReduce = "max",
        **kwargs: Any,
    ) -> None:
        if kwargs.get("loss") is None:
            kwargs["loss"] = SDLLoss()
        super().__init__(**kwargs)
        if num_rows < 1:
            raise InputError(f"num_rows (M) must be at least 1, got {num_rows}")
        if row_reduce not in ("max", "l2"):
            raise InputError(f"row_reduce must be max or l2, got {row_reduce!r}")
        space = getattr(self, "label_space", None)
        if vector_dim is None:
            if space is None or space.vectors is None:
                raise InputError(
                    "SDL scores labels through their word vectors: give the datamodule an "
                    "'embeddings: <file>' (npz / GloVe / FastText), or set model vector_dim"
                )
            vector_dim = int(space.vectors.shape[1])
        self.num_rows = int(num_rows)
        self.vector_dim = int(vector_dim)
        self.normalize_vectors = bool(normalize_vectors)
        self.row_reduce = row_reduce
        self.net = create_backbone(backbone, pretrained=pretrained, weights_file=weights_file, num_classes=0)
        self.head = nn.Sequential(
            nn.Dropout(head_dropout),
            nn.Linear(self.net.num_features, self.num_rows * self.vector_dim, bias=head_bias),
        )
        self._vector_cache: dict[int, tuple[Any, torch.Tensor]] = {}
        self._last_forward: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    # ------------------------------------------------------------------ the model
    def matrices(self, images: torch.Tensor) -> torch.Tensor:
        """``A`` ``[B, M, d_w]`` per image (§3.2)."""
        features = self.net(images)
        return self.head(features).view(features.shape[0], self.num_rows, self.vector_dim)

    def label_vectors(self, label_space: Any) -> torch.Tensor:
        """The (normalised) vectors ``[C, d_w]`` of ``label_space`` on this module's device,
        float32, computed once per label space and device."""
        if label_space is None:
            raise InputError("SDL needs a label space to score (the datamodule links it)")
        hit = self._vector_cache.get(id(label_space))
        if hit is not None and hit[0] is label_space and hit[1].device == self.device:
            return hit[1]
        if label_space.vectors is None:
            raise InputError(
                f"the label space of {label_space.num_labels} labels has no vectors: SDL scores labels "
                "through their word vectors; give the datamodule an 'embeddings: <file>'"
            )
        vectors = torch.as_tensor(label_space.vectors, dtype=torch.float32, device=self.device)
        if vectors.shape[1] != self.vector_dim:
            raise InputError(f"label vectors are {vectors.shape[1]}-d, the model was built for {self.vector_dim}-d")
        if self.normalize_vectors:
            vectors = F.normalize(vectors, dim=1)
        self._vector_cache[id(label_space)] = (label_space, vectors)
        return vectors

    def score(self, matrices: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
        """``r = max(A t)`` ``[B, C]`` in float32 (outside autocast: the loss compares scores)."""
        with torch.autocast(device_type=matrices.device.type, enabled=False):
            return sdl_scores(matrices.float(), vectors, self.row_reduce)

    def forward(self, images: torch.Tensor, label_space: Any = None) -> torch.Tensor:
        """Scores of ``images`` against ``label_space`` (default: the train label space)."""
        space = label_space if label_space is not None else self.label_space
        return self.score(self.matrices(images), self.label_vectors(space))

    def forward_batch(self, batch: dict[str, torch.Tensor], label_space: Any = None) -> torch.Tensor:
        space = label_space if label_space is not None else self.label_space
        matrices = self.matrices(batch["image"])
        vectors = self.label_vectors(space)
        scores = self.score(matrices, vectors)
        self._last_forward = (scores, matrices, vectors)
        return scores

    def compute_loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if not isinstance(self.loss, SDLLoss):
            return super().compute_loss(logits, batch)
        last, self._last_forward = self._last_forward, None
        if last is None or (last[0] is not logits and last[0].shape != logits.shape):
            raise RuntimeError("SDLZeroShot.compute_loss needs the scores of the latest forward_batch")
        _, matrices, vectors = last
        return self.loss(logits.float(), batch["target"], batch.get("mask"), matrices, vectors)

    def scores_from_logits(self, logits: torch.Tensor) -> torch.Tensor:
        return logits  # r = max(A t) is the ranking score itself (§4.1)

    def backbone_parameters(self) -> list[nn.Parameter]:
        return list(self.net.parameters())
