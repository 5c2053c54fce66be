"""Per-class decision thresholds chosen on validation by Fan & Lin's cyclic optimisation
(R.-E. Fan and C.-J. Lin, "A study on threshold selection for multi-label classification",
National Taiwan University, 2007), as the Wide, Deep and Recurrent poster does
("Per class thresholding: a simple cyclic optimization procedure [6] on the validation set
to choose thresholds. This in general gives 2-3% F1 gain").

Micro-F1 couples the classes (it sums true positives over all of them), so its thresholds
cannot be chosen one class at a time. Fan & Lin's procedure is coordinate ascent: keep
every threshold but one fixed, set that class's threshold to the value that maximises the
*overall* micro-F1, move to the next class, and cycle through the classes until a whole
pass changes nothing. With ``P`` the known positives of all classes, ``TP`` the true
positives and ``Npred`` the predicted positives, micro-F1 is
``2 TP / (2 TP + FP + FN) = 2 TP / (Npred + P)`` (metrics.md: ``F1-micro`` = ``OF1``;
masked entries count nowhere), so one class's step is one sort of its scores and a
cumulative sum over its candidate cut points: "predict none" and every cut between two
distinct scores. A threshold is placed midway between the lowest score predicted and the
next lower one (SCut's convention in Fan & Lin), the lowest score itself when everything
is predicted, and just above the highest score for "predict none".

Starts. Coordinate ascent from a start only moves when micro-F1 strictly rises, so it ends
no lower than where it began. Two starts are run and the better end kept: the fixed
threshold everywhere (``init``, default 0.5), which guarantees the result is never below
the micro-F1 of 0.5 everywhere, and Fan & Lin's own start, each class's SCut threshold
(the one maximising that class's F1), optionally with their FBR rule (``fbr``: a class
whose best F1 is below ``fbr`` gets the threshold of its highest score, SCutFBR.1).

Scores are compared as the evaluators compare them (``score >= threshold``, float32
scores, float64 thresholds rounded up to float32): the thresholds chosen here give exactly
the validation micro-F1 reported here when the model's evaluators use them
(``MultiLabelModule.class_thresholds``).

:class:`PerClassThresholds` is the Lightning callback: after ``fit`` it scores the
validation set with the best checkpoint's weights, chooses the thresholds, stores them in
the model (``class_thresholds``, so the test after fit uses them), in the best checkpoint
(``checkpoint["class_thresholds"]``, so a later ``fashionbench test --ckpt_path`` uses them
too) and in ``<checkpoint stem>.thresholds.json`` next to it (label names, thresholds,
validation micro-F1 before and after).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["ThresholdResult", "micro_f1", "cyclic_thresholds", "PerClassThresholds"]


@dataclass
class ThresholdResult:
    """What :func:`cyclic_thresholds` found."""

    thresholds: np.ndarray            # float64 [C]
    f1_micro: float                   # validation micro-F1 with ``thresholds``
    f1_micro_init: float              # validation micro-F1 with ``init`` everywhere
    start: str                        # "fixed" or "scut": the start the result came from
    passes: int                       # full passes over the classes of that run
    history: list[float] = field(default_factory=list)  # micro-F1 after each pass of that run


def _as_arrays(scores: Any, targets: Any, mask: Any | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    def to_numpy(x: Any) -> np.ndarray:
        return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)

    # float32 first: the evaluators compare float32 scores
    s = to_numpy(scores).astype(np.float32).astype(np.float64)
    y = to_numpy(targets).astype(bool)
    m = np.ones_like(y) if mask is None else to_numpy(mask).astype(bool)
    if s.ndim != 2 or y.shape != s.shape or m.shape != s.shape:
        raise ValueError(f"scores, targets and mask must be [N, C] alike, got {s.shape}, {y.shape}, {m.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    return s, y & m, m


def _round_up32(t: np.ndarray) -> np.ndarray:
    """float64 thresholds -> the smallest float32 >= each (what the evaluators compare)."""
    r = np.asarray(t, dtype=np.float64).astype(np.float32)
    low = r.astype(np.float64) < t
    r[low] = np.nextafter(r[low], np.float32(np.inf))
    return r.astype(np.float64)


def micro_f1(scores: Any, targets: Any, mask: Any | None = None, thresholds: float | Sequence[float] | np.ndarray = 0.5) -> float:
    """Micro-F1 (``OF1`` of metrics.md) with ``score >= threshold`` (scalar or ``[C]``)."""
    s, y, m = _as_arrays(scores, targets, mask)
    t = _round_up32(np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (s.shape[1],)).copy())
    pred = (s >= t[None, :]) & m
    tp = float((pred & y).sum())
    denominator = float(pred.sum() + y.sum())
    return 0.0 if denominator == 0 else 2.0 * tp / denominator


class _Class:
    """One class's sorted known scores and the counts at each candidate cut."""

    def __init__(self, s: np.ndarray, y: np.ndarray):
        order = np.argsort(-s, kind="stable")
        s, y = s[order], y[order]
        self.positives = int(y.sum())
        self.sorted_scores = s
        self.cum_tp = np.cumsum(y, dtype=np.int64)
        if s.size == 0:
            self.tp = self.npred = np.zeros(1, dtype=np.int64)
            self.cut = np.array([np.inf])
            return
        last_of_group = np.flatnonzero(np.append(s[1:] != s[:-1], True))  # index of each tie group's last entry
        self.tp = np.concatenate(([0], self.cum_tp[last_of_group]))
        self.npred = np.concatenate(([0], last_of_group + 1))
        lowest = s[last_of_group]                          # lowest score predicted at each cut
        below = np.append(s[last_of_group[:-1] + 1], -np.inf)  # the next lower score
        # midway (rounded up to float32 it stays above `below` and at most `lowest`);
        # the lowest score itself where everything is predicted
        cut = np.where(np.isfinite(below), (lowest + below) / 2.0, lowest)
        self.cut = np.concatenate(([np.nextafter(s[0], np.inf)], cut))

    def counts_at(self, threshold: float) -> tuple[int, int]:
        """``(tp, npred)`` with ``score >= threshold`` (as the evaluators compare)."""
        t32 = _round_up32(np.array([threshold], dtype=np.float64))[0]
        npred = int(np.searchsorted(-self.sorted_scores, -t32, side="right"))
        return (int(self.cum_tp[npred - 1]) if npred else 0), npred


def _scut_start(classes: list[_Class], fbr: float | None) -> np.ndarray:
    out = np.empty(len(classes))
    for c, cls in enumerate(classes):
        denominator = cls.npred + cls.positives
        f = np.where(denominator > 0, 2.0 * cls.tp / np.maximum(denominator, 1), 0.0)
        best = int(np.argmax(f))
        out[c] = cls.cut[best]
        if fbr is not None and f[best] < fbr and cls.cut.size > 1:
            out[c] = cls.cut[1]  # SCutFBR.1: only the highest score(s) predicted
    return out


def _cycle(classes: list[_Class], start: np.ndarray, total_positives: int, max_passes: int,
           tol: float) -> tuple[np.ndarray, float, int, list[float]]:
    thresholds = start.copy()
    tp = np.zeros(len(classes), dtype=np.int64)
    npred = np.zeros(len(classes), dtype=np.int64)
    for c, cls in enumerate(classes):
        tp[c], npred[c] = cls.counts_at(thresholds[c])

    def f1(t: int | np.ndarray, n: int | np.ndarray) -> Any:
        denominator = n + total_positives
        return np.where(denominator > 0, 2.0 * t / np.maximum(denominator, 1), 0.0)

    current = float(f1(tp.sum(), npred.sum()))
    history, passes = [current], 0
    for passes in range(1, max_passes + 1):
        changed = False
        for c, cls in enumerate(classes):
            tp_rest, np_rest = tp.sum() - tp[c], npred.sum() - npred[c]
            values = f1(tp_rest + cls.tp, np_rest + cls.npred)
            best = int(np.argmax(values))
            if values[best] > current + tol:
                thresholds[c], tp[c], npred[c] = cls.cut[best], cls.tp[best], cls.npred[best]
                current = float(values[best])
                changed = True
        history.append(current)
        if not changed:
            break
    return thresholds, current, passes, history


def cyclic_thresholds(scores: Any, targets: Any, mask: Any | None = None, init: float = 0.5,
                      max_passes: int = 20, fbr: float | None = None, tol: float = 1e-12,
                      starts: Sequence[str] = ("fixed", "scut")) -> ThresholdResult:
    """Per-class thresholds maximising validation micro-F1 (module docstring).

    Args:
        scores: ``[N, C]`` validation scores (probabilities or any real scores).
        targets: ``[N, C]`` in {0, 1}; mask: ``[N, C]`` bool, True where known.
        init: the fixed start (and the baseline the result never falls below).
        max_passes: full cycles over the classes at most (each run).
        fbr: Fan & Lin's FBR value for the SCut start (None = plain SCut).
        tol: a step is taken only when micro-F1 rises by more than this.
        starts: which starts to run (``"fixed"``, ``"scut"``).
    """
    s, y, m = _as_arrays(scores, targets, mask)
    classes = [_Class(s[m[:, c], c], y[m[:, c], c]) for c in range(s.shape[1])]
    total_positives = int(y.sum())
    fixed = np.full(s.shape[1], float(init))
    f_init = micro_f1(s, y, m, fixed)
    best: ThresholdResult | None = None
    for name in starts:
        if name == "fixed":
            start = fixed
        elif name == "scut":
            start = _scut_start(classes, fbr)
        else:
            raise ValueError(f"unknown start {name!r}; known: fixed, scut")
        thresholds, f, passes, history = _cycle(classes, start, total_positives, max_passes, tol)
        if best is None or f > best.f1_micro:
            best = ThresholdResult(thresholds, f, f_init, name, passes, history)
    assert best is not None, "no start given"
    return best


# --------------------------------------------------------------------------- callback
try:
    from lightning.pytorch.callbacks import Callback
except ImportError:  # pragma: no cover - the suite always has Lightning
    Callback = object  # type: ignore[misc,assignment]


class PerClassThresholds(Callback):
    """After ``fit``: choose per-class thresholds on validation with the best model and
    apply them to test (see the module docstring for where they are stored).

    Args:
        eval_set: the name of the validation set to tune on (``val_sets``); default: the first.
        init / max_passes / fbr: as :func:`cyclic_thresholds`.
    """

    def __init__(self, eval_set: str | None = None, init: float = 0.5, max_passes: int = 20,
                 fbr: float | None = None) -> None:
        self.eval_set = eval_set
        self.init = init
        self.max_passes = max_passes
        self.fbr = fbr
        self.result: ThresholdResult | None = None
        self.summary: dict[str, Any] | None = None

    # ------------------------------------------------------------------ hooks
    def on_fit_end(self, trainer, pl_module) -> None:
        import torch

        if trainer.interrupted:
            return
        checkpoint = getattr(trainer.checkpoint_callback, "best_model_path", "") or ""
        if checkpoint and Path(checkpoint).is_file():
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
            pl_module.load_state_dict(state["state_dict"])
        eval_set, space, loader = self._validation(trainer)
        scores, targets, mask = self._predict(trainer, pl_module, loader, space)
        self.result = cyclic_thresholds(scores, targets, mask, init=self.init, max_passes=self.max_passes, fbr=self.fbr)
        thresholds = torch.as_tensor(self.result.thresholds, dtype=torch.float64)
        pl_module.class_thresholds = thresholds
        self.summary = {
            "method": "Fan & Lin (2007) cyclic optimisation of micro-F1",
            "eval_set": getattr(eval_set, "name", None) or None,
            "split": getattr(eval_set, "split", None),
            "start": self.result.start, "passes": self.result.passes,
            f"f1_micro_at_{self.init:g}": self.result.f1_micro_init, "f1_micro": self.result.f1_micro,
            "checkpoint": str(Path(checkpoint).resolve()) if checkpoint else None,
        }
        pl_module.threshold_selection = dict(self.summary)
        if trainer.is_global_zero:
            self._store(checkpoint, thresholds, list(space.names) if space is not None else pl_module.label_names, trainer)
        trainer.strategy.barrier()
        print(f"fashionbench: per-class thresholds (Fan & Lin cyclic, {self.summary['split'] or 'validation'}): "
              f"micro-F1 {self.result.f1_micro_init:.4f} at {self.init:g} -> {self.result.f1_micro:.4f}")

    def on_test_start(self, trainer, pl_module) -> None:
        if self.result is not None and getattr(pl_module, "class_thresholds", None) is None:
            import torch

            pl_module.class_thresholds = torch.as_tensor(self.result.thresholds, dtype=torch.float64)

    # ------------------------------------------------------------------ parts
    def _validation(self, trainer):
        dm = trainer.datamodule
        if dm is None or not hasattr(dm, "eval_sets"):
            return None, None, trainer.val_dataloaders
        sets = dm.eval_sets("val")
        chosen = sets[0]
        if self.eval_set is not None:
            named = [s for s in sets if s.name == self.eval_set]
            if not named:
                from fashionbench.errors import InputError

                raise InputError(f"PerClassThresholds: no validation set '{self.eval_set}' (have {[s.name for s in sets]})")
            chosen = named[0]
        return chosen, dm.eval_label_space(chosen), dm.eval_dataloader("val", chosen)

    @staticmethod
    def _predict(trainer, pl_module, loader, space) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import torch
        from lightning.pytorch.utilities import move_data_to_device

        was_training = pl_module.training
        pl_module.eval()
        rows, scores, targets, masks = [], [], [], []
        context = getattr(getattr(trainer, "precision_plugin", None), "forward_context", None)
        with torch.no_grad():
            for batch in loader:
                if "index" not in batch or batch["index"].numel() == 0:
                    continue
                batch = move_data_to_device(batch, pl_module.device)
                if context is not None:
                    with context():
                        logits = pl_module.forward_batch(batch, space if space is not None else pl_module.label_space)
                else:
                    logits = pl_module.forward_batch(batch, space if space is not None else pl_module.label_space)
                scores.append(pl_module.scores_from_logits(logits).float().cpu().numpy())
                targets.append(batch["target"].cpu().numpy())
                masks.append(batch["mask"].cpu().numpy() if "mask" in batch else np.ones_like(targets[-1], dtype=bool))
                rows.append(batch["index"].cpu().numpy())
        pl_module.train(was_training)
        parts = [np.concatenate(x) if x else np.zeros((0, pl_module.num_labels)) for x in (rows, scores, targets, masks)]
        if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
            gathered: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, parts)
            parts = [np.concatenate([g[i] for g in gathered]) for i in range(4)]
        order = np.argsort(parts[0], kind="stable")
        return parts[1][order], parts[2][order], parts[3][order].astype(bool)

    def _store(self, checkpoint: str, thresholds, names: list[str] | None, trainer) -> None:
        import torch

        from fashionbench.io import atomic_open, atomic_write_text

        if checkpoint and Path(checkpoint).is_file():
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
            state["class_thresholds"] = thresholds.cpu()
            with atomic_open(checkpoint, "wb") as handle:
                torch.save(state, handle)
            path = Path(checkpoint).with_suffix(".thresholds.json")
        else:
            path = Path(trainer.log_dir or trainer.default_root_dir) / "thresholds.json"
        payload = {**(self.summary or {}), "label_names": names,
                   "thresholds": [None if not math.isfinite(v) else float(v) for v in thresholds.tolist()]}
        atomic_write_text(path, json.dumps(payload, indent=1) + "\n")
        if self.summary is not None:
            self.summary["file"] = str(path)
