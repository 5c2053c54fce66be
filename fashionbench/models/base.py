"""The shared LightningModule: it owns the training and evaluation loop, the optimiser,
logging and the evaluators. A paper's model subclasses :class:`MultiLabelModule` and adds
only what the paper adds: ``forward(images) -> logits [B, C]`` and, where the paper says so,
its own loss (the ``loss`` argument), parameter groups (``backbone_parameters``) or
``compute_loss``.

Batches are dicts from the datamodules: ``image`` [B, 3, H, W], ``target`` [B, C] float
in {0, 1} (single-label: [B] class ids), ``mask`` [B, C] bool (True = label known), and
``index`` [B]. Scores are ``sigmoid(logits)`` (single-label: ``softmax``), scored by the
evaluators of ``fashionbench.metrics`` exactly as ``specs/metrics.md`` defines them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from torch import nn

from fashionbench.losses import MaskedBCEWithLogits, SoftmaxCrossEntropy
from fashionbench.metrics import MultilabelEvaluator, SingleLabelEvaluator, loggable
from fashionbench.models.optim import OptimConfig, build_optimizer, build_scheduler


@dataclass
class EvalConfig:
    """How validation and test runs are scored (``specs/metrics.md``)."""

    threshold: float = 0.5
    ks: list[int] = field(default_factory=lambda: [3])
    empty_class: Literal["exclude", "zero"] = "exclude"


class MultiLabelModule(pl.LightningModule):
    """Base of every model in the suite.

    Args:
        num_labels: width of the output (linked from the datamodule by the CLI).
        label_names: names of the labels in output order (linked from the datamodule).
        single_label: the task has one class per image (softmax + cross-entropy, top-k).
        loss: a module called as ``loss(logits, target, mask)``; default masked BCE
            (cross-entropy for single-label tasks).
        optim: optimiser and schedule.
        evaluation: threshold, k values and empty-class convention of the evaluators.
    """

    def __init__(
        self,
        num_labels: int,
        label_names: list[str] | None = None,
        single_label: bool = False,
        loss: nn.Module | None = None,
        optim: OptimConfig | None = None,
        evaluation: EvalConfig | None = None,
    ) -> None:
        super().__init__()
        if num_labels < 1:
            raise ValueError(f"num_labels must be >= 1, got {num_labels}")
        if label_names is not None and len(label_names) != num_labels:
            raise ValueError(f"{len(label_names)} label_names for num_labels={num_labels}")
        self.save_hyperparameters(ignore=["loss"])
        self.num_labels = num_labels
        self.label_names = list(label_names) if label_names is not None else None
        self.single_label = single_label
        self.loss = loss if loss is not None else (SoftmaxCrossEntropy() if single_label else MaskedBCEWithLogits())
        self.optim = optim or OptimConfig()
        self.evaluation = evaluation or EvalConfig()
        self.val_metrics = self._make_evaluator()
        self.test_metrics = self._make_evaluator()
        self.test_results: dict[str, Any] = {}

    # ----------------------------------------------------------------- what subclasses add
    def forward(self, images: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement forward(images) -> logits")

    def backbone_parameters(self) -> list[nn.Parameter]:
        """Parameters trained at ``optim.lr * optim.backbone_lr_mult`` (the pretrained part)."""
        return []

    def compute_loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        # float32 even under 16-mixed: ASL's log(clamp(p, eps=1e-8)) underflows in fp16
        return self.loss(logits.float(), batch["target"], batch.get("mask"))

    # ------------------------------------------------------------------------- scoring
    def _make_evaluator(self):
        ev = self.evaluation
        if self.single_label:
            return SingleLabelEvaluator(self.num_labels)
        return MultilabelEvaluator(self.num_labels, ks=tuple(ev.ks), threshold=ev.threshold, empty_class=ev.empty_class)

    def scores_from_logits(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, dim=-1) if self.single_label else torch.sigmoid(logits)

    # --------------------------------------------------------------------------- loops
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits = self(batch["image"])
        loss = self.compute_loss(logits, batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["image"].shape[0])
        return loss

    def _eval_step(self, batch: dict[str, torch.Tensor], evaluator, stage: str) -> None:
        logits = self(batch["image"])
        loss = self.compute_loss(logits, batch)
        self.log(f"{stage}/loss", loss, batch_size=batch["image"].shape[0], sync_dist=True)
        scores = self.scores_from_logits(logits).float()
        if self.single_label:
            evaluator.update(scores, batch["target"])
        else:
            evaluator.update(scores, batch["target"], batch.get("mask"))

    def _log_results(self, evaluator, stage: str) -> dict[str, Any]:
        results = evaluator.compute()  # already gathered over all ranks: identical everywhere
        evaluator.reset()
        for name, value in loggable(results, prefix=f"{stage}/").items():
            if not math.isnan(value):
                self.log(name, value, prog_bar=name.endswith(("/mAP", "/top1")))
        return results

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, self.val_metrics, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_results(self.val_metrics, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, self.test_metrics, "test")

    def on_test_epoch_end(self) -> None:
        self.test_results = self._log_results(self.test_metrics, "test")

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        out = {"scores": self.scores_from_logits(self(batch["image"])).float(), "index": batch["index"]}
        for key in ("target", "mask"):
            if key in batch:
                out[key] = batch[key]
        return out

    # ---------------------------------------------------------------------- optimiser
    def parameter_groups(self) -> list[dict]:
        backbone = {id(p) for p in self.backbone_parameters()}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in backbone]
        head_group = {"params": rest, "lr": self.optim.lr, "name": "head"}
        backbone_group = {
            "params": [p for p in self.backbone_parameters() if p.requires_grad],
            "lr": self.optim.lr * self.optim.backbone_lr_mult,
            "name": "backbone",
        }
        return [backbone_group, head_group]

    def configure_optimizers(self):
        optimizer = build_optimizer(self.optim, self.parameter_groups())
        total = self.trainer.estimated_stepping_batches
        if self.optim.schedule == "constant" and self.optim.warmup_epochs == 0:
            return optimizer
        if not math.isfinite(total):
            raise ValueError(f"schedule '{self.optim.schedule}' needs trainer.max_epochs or max_steps")
        # estimated_stepping_batches has set up the train loader: batches per epoch are known
        steps_per_epoch = math.ceil(self.trainer.num_training_batches / self.trainer.accumulate_grad_batches)
        scheduler = build_scheduler(self.optim, optimizer, int(total), steps_per_epoch)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
