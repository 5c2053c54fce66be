"""The shared LightningModule: it owns the training and evaluation loop, the optimiser,
logging, the evaluators and stage chaining. A paper's model subclasses
:class:`MultiLabelModule` and adds only what the paper adds: ``forward(images) -> logits``
or, for models that need more than the image, ``forward_batch(batch, label_space)``; and,
where the paper says so, its own loss (the ``loss`` argument), parameter groups
(``backbone_parameters``) or ``compute_loss``.

Batches are dicts from the datamodules: ``image`` [B, 3, H, W], ``target`` [B, C] float
in {0, 1} (single-label: [B] class ids), ``mask`` [B, C] bool (True = label known),
``index`` [B], the datamodule's extras, and ``skipped`` (bad images left out). Scores are
``sigmoid(logits)`` (single-label: ``softmax``), scored by the evaluators of
``fashionbench.metrics`` exactly as ``specs/metrics.md`` defines them.

Label spaces: the model is built for the training :class:`~datamodules.label_space.LabelSpace`
(linked from the datamodule). Each evaluation set of the datamodule (``val_sets`` /
``test_sets``) brings its own; its evaluators are built from it at the start of every
evaluation, and its metrics are logged as ``test/<set>/<metric>`` (``test/<metric>`` for the
single default set). A model with a fixed output width stops with one line when a set
has other labels; a model that scores labels through their vectors
(``scores_label_vectors = True``) scores whatever the set holds.

Stage chaining: ``init_from`` loads another run's checkpoint (or the checkpoint named by a
run record) into the model or one of its submodules before training, optionally frozen
(``requires_grad=False`` and kept in eval mode).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import lightning.pytorch as pl
import torch
from torch import nn

from datamodules.label_space import LabelSpace
from fashionbench.errors import InputError
from fashionbench.losses import MaskedBCEWithLogits, SoftmaxCrossEntropy
from fashionbench.metrics import MultilabelEvaluator, SingleLabelEvaluator, loggable
from fashionbench.models.optim import OptimConfig, build_optimizer, build_plateau_scheduler, build_scheduler


@dataclass
class EvalConfig:
    """How validation and test runs are scored (``specs/metrics.md``)."""

    threshold: float = 0.5
    ks: list[int] = field(default_factory=lambda: [3])
    empty_class: Literal["exclude", "zero"] = "exclude"


@dataclass
class InitFrom:
    """Initialise (part of) a model from another run (stage chaining).

    Args:
        checkpoint: a Lightning ``.ckpt``, a ``.pt``/``.pth``/``.safetensors`` state dict,
            or a run record ``.json`` (its ``checkpoint``). ``stage:<id>`` is filled in by
            ``fashionbench reproduce`` with the checkpoint of the paper's run ``<id>``.
        source_prefix: take only the checkpoint's keys under this prefix (stripped), e.g.
            ``generator.``; ``""`` takes all.
        target: the submodule (dotted attribute path) to load into; ``""`` = the whole model.
        strict: every key of the target must be loaded, and no key may be left over.
        freeze: ``requires_grad=False`` for the target, kept in eval mode while training.
    """

    checkpoint: str
    source_prefix: str = ""
    target: str = ""
    strict: bool = True
    freeze: bool = False


def _plain(value: Any) -> Any:
    """Config dataclasses (and lists of them) as dicts; anything else unchanged."""
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _resolve_checkpoint(path_text: str) -> Path:
    if path_text.startswith("stage:"):
        raise InputError(f"init_from checkpoint '{path_text}' is filled in by `fashionbench reproduce`; "
                         "give a checkpoint or run record path to run this config alone")
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise InputError("init_from: checkpoint not found", path=path)
    if path.suffix == ".json":
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise InputError(f"init_from: not a JSON run record ({err})", path=path) from None
        checkpoint = record.get("checkpoint") if isinstance(record, dict) else None
        if not checkpoint:
            raise InputError("init_from: the run record names no checkpoint", path=path)
        return _resolve_checkpoint(str(checkpoint))
    return path


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a Lightning checkpoint or a weights file, read without pickle."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        # weights only; the suite's own config dataclasses may sit in a checkpoint's hparams
        with torch.serialization.safe_globals([OptimConfig, EvalConfig, InitFrom]):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is one line for the user
        raise InputError(f"init_from: cannot read checkpoint ({type(err).__name__}: {str(err).splitlines()[0][:200]})", path=path) from None
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict):
        raise InputError("init_from: the file holds no state dict", path=path)
    return data


class MultiLabelModule(pl.LightningModule):
    """Base of every model in the suite.

    Args:
        label_space: the training labels (linked from the datamodule by the CLI).
        num_labels / label_names / single_label: the same given directly (Python use,
            tests); ignored when ``label_space`` is given.
        loss: a module called as ``loss(logits, target, mask)``; default masked BCE
            (cross-entropy for single-label tasks).
        optim: optimiser and schedule.
        evaluation: threshold, k values and empty-class convention of the evaluators.
        init_from: checkpoints to initialise (parts of) the model from, in order.
    """

    #: True for models that score each label through its vector (any label set).
    scores_label_vectors: ClassVar[bool] = False

    def __init__(
        self,
        label_space: LabelSpace | None = None,
        num_labels: int | None = None,
        label_names: list[str] | None = None,
        single_label: bool = False,
        loss: nn.Module | None = None,
        optim: OptimConfig | None = None,
        evaluation: EvalConfig | None = None,
        init_from: list[InitFrom] | None = None,
    ) -> None:
        super().__init__()
        if label_space is None:
            if num_labels is None:
                num_labels = len(label_names) if label_names is not None else 0
            if num_labels < 1:
                raise ValueError(f"num_labels must be >= 1, got {num_labels}")
            if label_names is not None and len(label_names) != num_labels:
                raise ValueError(f"{len(label_names)} label_names for num_labels={num_labels}")
            label_space = LabelSpace(label_names or [f"label_{i}" for i in range(num_labels)], single_label=single_label)
            names_given = label_names is not None
        else:
            names_given = True
        self.save_hyperparameters(ignore=["loss", "label_space"])
        for key in ("optim", "evaluation", "init_from"):  # plain data, so checkpoints load weights_only
            self.hparams[key] = _plain(self.hparams.get(key))
        self.label_space = label_space
        self.num_labels = label_space.num_labels
        self.label_names = list(label_space.names) if names_given else None
        self.single_label = label_space.single_label
        self.hparams.update(num_labels=self.num_labels, label_names=self.label_names, single_label=self.single_label)
        self.loss = loss if loss is not None else (SoftmaxCrossEntropy() if self.single_label else MaskedBCEWithLogits())
        self.optim = OptimConfig(**optim) if isinstance(optim, dict) else (optim or OptimConfig())
        self.evaluation = EvalConfig(**evaluation) if isinstance(evaluation, dict) else (evaluation or EvalConfig())
        self.init_from = [i if isinstance(i, InitFrom) else InitFrom(**i) for i in (init_from or [])]
        #: per-class decision thresholds ``[C]`` chosen on validation (e.g. WDR); None = ``evaluation.threshold``
        self.class_thresholds: torch.Tensor | None = None
        self.test_results: dict[str, Any] = {}
        self.eval_results: dict[str, dict[str, Any]] = {}
        self.skipped_images: set[str] = set()
        self._evaluators: dict[tuple[str, int], Any] = {}
        self._eval_spaces: dict[tuple[str, int], tuple[Any, LabelSpace]] = {}
        self._frozen: list[str] = []
        self._init_applied = False

    # ----------------------------------------------------------------- what subclasses add
    def forward(self, images: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement forward(images) -> logits")

    def forward_batch(self, batch: dict[str, Any], label_space: LabelSpace) -> torch.Tensor:
        """Logits ``[B, label_space.num_labels]`` for a batch; override to use more than the image."""
        return self(batch["image"])

    def backbone_parameters(self) -> list[nn.Parameter]:
        """Parameters trained at ``optim.lr * optim.backbone_lr_mult`` (the pretrained part)."""
        return []

    def compute_loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        # float32 even under 16-mixed: ASL's log(clamp(p, eps=1e-8)) underflows in fp16
        return self.loss(logits.float(), batch["target"], batch.get("mask"))

    def scores_from_logits(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, dim=-1) if self.single_label else torch.sigmoid(logits)

    # ------------------------------------------------------------------- stage chaining
    def apply_init_from(self) -> None:
        """Load every ``init_from`` entry (once) and freeze what they ask to freeze."""
        if self._init_applied:
            return
        for spec in self.init_from:
            path = _resolve_checkpoint(spec.checkpoint)
            state = load_state_dict_file(path)
            prefix = spec.source_prefix
            chosen = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            if not chosen:
                raise InputError(f"init_from: no key starts with '{prefix}'", path=path)
            try:
                target = self.get_submodule(spec.target) if spec.target else self
            except AttributeError:
                raise InputError(f"init_from: {type(self).__name__} has no submodule '{spec.target}'") from None
            result = target.load_state_dict(chosen, strict=False)
            if spec.strict and (result.missing_keys or result.unexpected_keys):
                raise InputError(
                    f"init_from: checkpoint does not fit '{spec.target or type(self).__name__}': "
                    f"{len(result.missing_keys)} missing keys (e.g. {result.missing_keys[:3]}), "
                    f"{len(result.unexpected_keys)} unexpected (e.g. {result.unexpected_keys[:3]})", path=path)
            if spec.freeze:
                self.freeze_submodule(spec.target)
        self._init_applied = True

    def freeze_submodule(self, name: str) -> None:
        """``requires_grad=False`` for submodule ``name`` (``""`` = all), kept in eval mode."""
        module = self.get_submodule(name) if name else self
        for parameter in module.parameters():
            parameter.requires_grad_(False)
        module.eval()
        if name not in self._frozen:
            self._frozen.append(name)

    def train(self, mode: bool = True):
        super().train(mode)
        for name in getattr(self, "_frozen", []):
            (self.get_submodule(name) if name else self).eval()
        return self

    def setup(self, stage: str) -> None:
        if stage == "fit":
            self.apply_init_from()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.class_thresholds is not None:
            checkpoint["class_thresholds"] = self.class_thresholds.detach().cpu()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if checkpoint.get("class_thresholds") is not None:
            self.class_thresholds = torch.as_tensor(checkpoint["class_thresholds"])

    # ------------------------------------------------------------------------- scoring
    def _make_evaluator(self, space: LabelSpace):
        ev = self.evaluation
        if space.single_label:
            return SingleLabelEvaluator(space.num_labels)
        thresholds = None
        if self.class_thresholds is not None and space.same_labels(self.label_space):
            thresholds = self.class_thresholds.detach().cpu()
        return MultilabelEvaluator(space.num_labels, ks=tuple(ev.ks), threshold=ev.threshold,
                                   thresholds=thresholds, empty_class=ev.empty_class)

    def _stage_sets(self, stage: str) -> list[tuple[Any, LabelSpace]]:
        """``(EvalSet or None, label space)`` of each loader of ``stage``, in loader order."""
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is not None and hasattr(dm, "eval_sets"):
            return [(s, dm.eval_label_space(s)) for s in dm.eval_sets(stage)]
        return [(None, self.label_space)]

    def _check_space(self, eval_set: Any, space: LabelSpace) -> None:
        if self.scores_label_vectors:
            if space.vectors is None:
                raise InputError(f"{type(self).__name__} scores labels through their vectors: give the datamodule `embeddings`")
            return
        if space.num_labels != self.num_labels or (self.label_names is not None and space.names != self.label_names):
            what = f"evaluation set '{eval_set.name}' ({eval_set.split}, task {eval_set.task})" if eval_set and eval_set.name else "the evaluation data"
            raise InputError(
                f"{type(self).__name__} has a fixed output of {self.num_labels} labels, but {what} has "
                f"{space.num_labels} other labels: evaluate on the training labels, or use a model that scores label vectors")

    def _start_eval(self, stage: str) -> None:
        for i, (eval_set, space) in enumerate(self._stage_sets(stage)):
            self._check_space(eval_set, space)
            self._eval_spaces[(stage, i)] = (eval_set, space)
            self._evaluators[(stage, i)] = self._make_evaluator(space).to(self.device)

    def _note_skipped(self, batch: dict[str, Any]) -> bool:
        """Record the batch's skipped images; False when nothing is left to score."""
        self.skipped_images.update(batch.get("skipped") or [])
        return "index" in batch and batch["index"].numel() > 0

    # --------------------------------------------------------------------------- loops
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        if not self._note_skipped(batch):
            return None
        logits = self.forward_batch(batch, self.label_space)
        loss = self.compute_loss(logits, batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["index"].shape[0])
        return loss

    def _eval_step(self, batch: dict[str, Any], stage: str, dataloader_idx: int) -> None:
        if not self._note_skipped(batch):
            return
        eval_set, space = self._eval_spaces[(stage, dataloader_idx)]
        evaluator = self._evaluators[(stage, dataloader_idx)]
        logits = self.forward_batch(batch, space)
        prefix = eval_set.prefix(stage) if eval_set is not None else f"{stage}/"
        loss = self.compute_loss(logits, batch)
        self.log(f"{prefix}loss", loss, batch_size=batch["index"].shape[0], sync_dist=True, add_dataloader_idx=False)
        scores = self.scores_from_logits(logits).float()
        if space.single_label:
            evaluator.update(scores, batch["target"])
        else:
            evaluator.update(scores, batch["target"], batch.get("mask"))

    def _end_eval(self, stage: str) -> dict[str, dict[str, Any]]:
        results = {}
        for (s, i), evaluator in sorted(self._evaluators.items()):
            if s != stage:
                continue
            eval_set, space = self._eval_spaces[(s, i)]
            prefix = eval_set.prefix(stage) if eval_set is not None else f"{stage}/"
            values = evaluator.compute()  # already gathered over all ranks: identical everywhere
            evaluator.reset()
            for name, value in loggable(values, prefix=prefix).items():
                if not math.isnan(value):
                    self.log(name, value, prog_bar=name.endswith(("/mAP", "/top1")), add_dataloader_idx=False, sync_dist=False)
            results[eval_set.name if eval_set is not None else ""] = values
        return results

    def headline_metric(self, stage: str = "val") -> str:
        """The logged name that picks the best checkpoint: the first set's mAP (top1)."""
        sets = self._stage_sets(stage) if self._trainer is not None else [(None, self.label_space)]
        eval_set, space = sets[0]
        prefix = eval_set.prefix(stage) if eval_set is not None else f"{stage}/"
        return f"{prefix}{'top1' if space.single_label else 'mAP'}"

    def on_validation_epoch_start(self) -> None:
        self._start_eval("val")

    def validation_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step(batch, "val", dataloader_idx)

    def on_validation_epoch_end(self) -> None:
        self._end_eval("val")

    def on_test_epoch_start(self) -> None:
        self._start_eval("test")

    def test_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step(batch, "test", dataloader_idx)

    def on_test_epoch_end(self) -> None:
        self.eval_results = self._end_eval("test")
        self.test_results = next(iter(self.eval_results.values()), {})

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        self._note_skipped(batch)
        space = self._stage_sets("test")[0][1]
        out = {"scores": self.scores_from_logits(self.forward_batch(batch, space)).float(), "index": batch["index"]}
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
        if self.optim.schedule == "plateau":  # stepped per epoch on a logged metric
            return {"optimizer": optimizer, "lr_scheduler": build_plateau_scheduler(self.optim, optimizer)}
        total = self.trainer.estimated_stepping_batches
        if self.optim.schedule == "constant" and self.optim.warmup_epochs == 0:
            return optimizer
        if not math.isfinite(total):
            raise ValueError(f"schedule '{self.optim.schedule}' needs trainer.max_epochs or max_steps")
        # estimated_stepping_batches has set up the train loader: batches per epoch are known
        steps_per_epoch = math.ceil(self.trainer.num_training_batches / self.trainer.accumulate_grad_batches)
        scheduler = build_scheduler(self.optim, optimizer, int(total), steps_per_epoch)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
