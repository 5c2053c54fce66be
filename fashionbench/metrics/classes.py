"""torchmetrics ``Metric`` wrappers over :mod:`fashionbench.metrics.functional`.

The classes only accumulate; every number comes from the functional core, so a metric
class and ``fashionbench score`` on the same predictions give the same values.

- :class:`MultilabelEvaluator` keeps the scores, targets and mask of every ``update`` as
  list states. In one process ``compute`` runs the exact maths on them. Under DDP
  (``sharded=True``, the default) ``compute`` never gathers the matrices: each rank counts
  its own rows, receives every rank's entries of its share of the classes (an all-to-all)
  and ranks those, and the per-class results are gathered
  (:mod:`fashionbench.metrics.sharded`), so a rank holds its rows and one class shard
  instead of the whole ``[N, C]`` matrix. ``sharded=False`` keeps torchmetrics' gather of
  every row (``dist_reduce_fx="cat"``). Both equal a single-process run on the same samples.
- :class:`SingleLabelEvaluator` keeps per-k hit counts (``dist_reduce_fx="sum"``).

Call ``update`` in the steps and ``compute`` at the end of the epoch. (Calling the metric
object itself, ``metric(scores, targets)``, also works, but computes every metric on the
batch as well, which is wasted work for ranking metrics.)

``compute`` returns plain Python values, the same dict as
:func:`~fashionbench.metrics.functional.multilabel_metrics` /
:func:`~fashionbench.metrics.functional.single_label_metrics`: floats, ``None`` where
undefined, and the per-class ``AP`` list. :func:`loggable` turns it into the
``{name: float}`` that ``LightningModule.log_dict`` takes.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from fashionbench.metrics.functional import (
    EMPTY_CLASS_CONVENTIONS,
    multilabel_metrics,
    true_class_rank,
)
from fashionbench.metrics.sharded import sharded_multilabel_metrics

__all__ = ["MultilabelEvaluator", "SingleLabelEvaluator", "loggable"]


def loggable(result: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The scalar entries of a metrics dict as floats (``None`` → NaN; lists such as ``AP`` dropped).

    ``prefix`` is prepended to every name (e.g. ``"test/"``).
    """
    return {
        f"{prefix}{name}": (math.nan if value is None else float(value))
        for name, value in result.items()
        if value is None or isinstance(value, (int, float))
    }


class MultilabelEvaluator(Metric):
    """Every multi-label metric of ``specs/metrics.md`` over an epoch (exact, DDP-safe).

    Args:
        num_labels: C, the width of ``scores``.
        ks: the K of the ``@K`` metrics (``CP@K`` … ``OF1@K``, ``P@K``, ``R@K``, ``F1@K``).
        threshold: ``score >= threshold`` predicts a label (scores are probabilities).
        thresholds: optional per-class thresholds ``[C]``; replace ``threshold`` everywhere.
        empty_class: ``"exclude"`` or ``"zero"``, the mAP convention (metrics.md "mAP").
        sharded: under DDP, compute by class shards (:mod:`fashionbench.metrics.sharded`:
            no rank gathers the whole matrix); False = torchmetrics' gather of every row.
            Either way the result is exact and the same on every rank. A custom
            ``dist_sync_fn`` always takes torchmetrics' path.

    ``update(scores, targets, mask=None)``: ``scores`` ``[B, C]`` float (probabilities;
    apply ``sigmoid`` to logits first), ``targets`` ``[B, C]`` in {0, 1}, ``mask`` ``[B, C]``
    bool (True = known) or None (all known). ``compute()`` → the dict of
    :func:`~fashionbench.metrics.functional.multilabel_metrics` (Python floats / None).
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    scores: list[Tensor]
    targets: list[Tensor]
    mask: list[Tensor]

    def __init__(
        self,
        num_labels: int,
        ks: Iterable[int] = (3,),
        threshold: float = 0.5,
        thresholds: Sequence[float] | Tensor | None = None,
        empty_class: str = "exclude",
        sharded: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sharded = bool(sharded)
        #: the process group of the sync in progress when it is a sharded one (None otherwise)
        self._sharded_sync: tuple[Any] | None = None
        #: what this rank held in the last sharded ``compute`` (see ``sharded_multilabel_metrics``)
        self.last_shard_stats: dict[str, Any] = {}
        if num_labels < 1:
            raise ValueError(f"num_labels must be >= 1, got {num_labels}")
        if empty_class not in EMPTY_CLASS_CONVENTIONS:
            raise ValueError(f"empty_class must be one of {EMPTY_CLASS_CONVENTIONS}, got {empty_class!r}")
        self.num_labels = int(num_labels)
        self.ks = tuple(int(k) for k in ks)
        if any(k < 1 for k in self.ks):
            raise ValueError(f"every k must be >= 1, got {self.ks}")
        self.threshold = float(threshold)
        if thresholds is not None:
            thresholds = torch.as_tensor(thresholds, dtype=torch.float64)
            if thresholds.shape != (self.num_labels,):
                raise ValueError(f"thresholds must have shape [{self.num_labels}], got {tuple(thresholds.shape)}")
        self.thresholds = thresholds
        self.empty_class = empty_class
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("targets", default=[], dist_reduce_fx="cat")
        self.add_state("mask", default=[], dist_reduce_fx="cat")

    def update(self, scores: Tensor, targets: Tensor, mask: Tensor | None = None) -> None:
        """Add a batch: ``scores`` ``[B, C]``, ``targets`` ``[B, C]``, ``mask`` ``[B, C]`` or None."""
        if scores.dim() != 2 or scores.shape[1] != self.num_labels:
            raise ValueError(f"scores must be [B, {self.num_labels}], got {tuple(scores.shape)}")
        if targets.shape != scores.shape:
            raise ValueError(f"targets shape {tuple(targets.shape)} != scores shape {tuple(scores.shape)}")
        if mask is not None and mask.shape != scores.shape:
            raise ValueError(f"mask shape {tuple(mask.shape)} != scores shape {tuple(scores.shape)}")
        self.scores.append(scores.detach())
        self.targets.append(targets.detach() != 0)
        self.mask.append(torch.ones_like(self.targets[-1]) if mask is None else mask.detach().bool())

    def _sharded_group(self, dist_sync_fn, process_group, distributed_available) -> tuple[Any] | None:
        """``(group,)`` when this sync should go by class shards, else None."""
        if not self.sharded or (dist_sync_fn or self.dist_sync_fn) is not None:
            return None
        available = distributed_available if distributed_available is not None else self.distributed_available_fn
        if not (callable(available) and available()):
            return None
        group = process_group or self.process_group
        return (group,) if torch.distributed.get_world_size(group) > 1 else None

    def sync(self, dist_sync_fn=None, process_group=None, should_sync: bool = True, distributed_available=None) -> None:
        """torchmetrics' sync, except that a sharded one moves nothing here: ``compute`` exchanges
        class shards itself, and the local states stay as they are (no copy is cached)."""
        sharded = self._sharded_group(dist_sync_fn, process_group, distributed_available) if should_sync else None
        if sharded is None:
            super().sync(dist_sync_fn, process_group, should_sync, distributed_available)
            return
        if self._is_synced:
            from torchmetrics.utilities.exceptions import TorchMetricsUserError

            raise TorchMetricsUserError("The Metric has already been synced.")
        self._cache = {}  # nothing to restore on unsync: the states were not touched
        self._is_synced = True
        self._sharded_sync = sharded

    def unsync(self, should_unsync: bool = True) -> None:
        super().unsync(should_unsync)
        if should_unsync:
            self._sharded_sync = None

    def compute(self) -> dict[str, Any]:
        """All metrics on every sample seen (on all ranks): Python floats, None, and the ``AP`` list."""
        if self._is_synced and self._sharded_sync is not None:
            self.last_shard_stats = {}
            return sharded_multilabel_metrics(
                self.scores, self.targets, self.mask, num_labels=self.num_labels, ks=self.ks,
                threshold=self.threshold, thresholds=self.thresholds, empty_class=self.empty_class,
                group=self._sharded_sync[0], stats=self.last_shard_stats, device=self.device,
            )
        if not (isinstance(self.scores, list) and not self.scores):  # a list, or one tensor after a DDP sync
            scores, targets, mask = (dim_zero_cat(state) for state in (self.scores, self.targets, self.mask))
        else:
            scores = torch.empty((0, self.num_labels), device=self.device)
            targets = mask = torch.empty((0, self.num_labels), dtype=torch.bool, device=self.device)
        return multilabel_metrics(
            scores,
            targets,
            mask,
            ks=self.ks,
            threshold=self.threshold,
            thresholds=self.thresholds,
            empty_class=self.empty_class,
        )


class SingleLabelEvaluator(Metric):
    """``top{k}`` accuracy (metrics.md "Single-label"), ties → lower class index.

    ``update(scores, targets)``: ``scores`` ``[B, C]``, ``targets`` int ``[B]`` class ids.
    ``compute()`` → ``{"top1": float, "top3": float, "top5": float}`` (for ``ks=(1, 3, 5)``;
    ``None`` before any sample). Exact: integer hit counts summed over ranks.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    hits: Tensor
    total: Tensor

    def __init__(self, num_classes: int, ks: Iterable[int] = (1, 3, 5), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ks = tuple(int(k) for k in ks)
        if any(k < 1 for k in self.ks):
            raise ValueError(f"every k must be >= 1, got {self.ks}")
        self.add_state("hits", default=torch.zeros(len(self.ks), dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("total", default=torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, scores: Tensor, targets: Tensor) -> None:
        """Add a batch: ``scores`` ``[B, C]`` and int ``targets`` ``[B]`` in ``[0, C)``."""
        if scores.dim() != 2 or scores.shape[1] != self.num_classes:
            raise ValueError(f"scores must be [B, {self.num_classes}], got {tuple(scores.shape)}")
        if targets.shape != scores.shape[:1]:
            raise ValueError(f"targets must be [{scores.shape[0]}], got {tuple(targets.shape)}")
        if targets.numel() and (targets.min() < 0 or targets.max() >= self.num_classes):
            raise ValueError(f"targets must be class ids in [0, {self.num_classes})")
        rank = true_class_rank(scores.detach(), targets)
        self.hits += torch.stack([(rank < k).sum() for k in self.ks]).to(self.hits)
        self.total += scores.shape[0]

    def compute(self) -> dict[str, float | None]:
        """``{"top{k}": hits / total}`` over every sample seen (on all ranks)."""
        total = int(self.total)
        return {f"top{k}": (int(h) / total if total else None) for k, h in zip(self.ks, self.hits.tolist())}
