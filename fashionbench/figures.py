"""Figures from predictions (matplotlib, Agg backend: no display needed).

:func:`pr_curves_figure` draws the per-label precision-recall curves of a multi-label
score matrix as one PNG, with each label's PR-AUC in the legend (the semantic-embedding
paper's Fig. 5; generic over any ``scores, targets, mask, label_names`` so the
leaderboard and other papers can reuse it). The curve of a label is the polyline through
the exact points whose trapezoidal area is the suite's PR-AUC (``specs/metrics.md``:
``sklearn.metrics.auc(recall, precision)`` on ``precision_recall_curve`` of the known
entries): one point per distinct score (ties grouped), plus sklearn's end point
(recall 0, precision 1). :func:`pr_curve_points` returns them; the legend's value is
:func:`fashionbench.metrics.functional.pr_auc` of the same entries.

:func:`pr_curves_from_npz` does the same from a ``fashionbench score`` file (what
``fashionbench predict`` writes); :class:`PRCurveFigure` is a Lightning callback that
writes the figure (and the score file) from a test run's predictions.
"""
from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from fashionbench.io import atomic_open

__all__ = ["pr_curve_points", "draw_pr_curves", "pr_curves_figure", "pr_curves_from_npz", "PRCurveFigure"]


def pr_curve_points(scores, targets, mask=None) -> tuple[np.ndarray, np.ndarray]:
    """``(recall, precision)`` of one label's precision-recall curve, float64, in the order
    and with the values of ``sklearn.metrics.precision_recall_curve`` (``drop_intermediate``
    off): one point per distinct score from the highest threshold's complement down, i.e.
    recall non-increasing, ending with (recall 0, precision 1).

    ``scores``/``targets``/``mask`` are 1-D (``N``); only entries with ``mask`` True count.
    With no known positive the recall is undefined: returns two empty arrays.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    t = np.asarray(targets).ravel() != 0
    if mask is not None:
        keep = np.asarray(mask, dtype=bool).ravel()
        s, t = s[keep], t[keep]
    npos = int(t.sum())
    if npos == 0:
        return np.empty(0), np.empty(0)
    order = np.argsort(-s, kind="stable")
    s, t = s[order], t[order]
    last_of_group = np.r_[s[1:] != s[:-1], True]  # a threshold at each distinct score
    tp = np.cumsum(t)[last_of_group].astype(np.float64)
    predicted = (np.flatnonzero(last_of_group) + 1).astype(np.float64)
    precision = tp / predicted
    recall = tp / npos
    return np.r_[recall[::-1], 0.0], np.r_[precision[::-1], 1.0]


def _as_numpy(x) -> np.ndarray | None:
    if x is None:
        return None
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def draw_pr_curves(scores, targets, mask=None, label_names: Sequence[str] | None = None, title: str | None = None):
    """The matplotlib ``Figure`` of :func:`pr_curves_figure` (not saved). Line ``j`` of its
    axes is label ``j``'s curve through :func:`pr_curve_points`; the legend reads
    ``name (PR-AUC 0.xxx)``, or ``name (no positive)`` for a label without a known positive
    (drawn as an empty line, so the legend keeps the labels' order)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    from fashionbench.metrics.functional import pr_auc

    scores_np = _as_numpy(scores).astype(np.float64)
    targets_np = _as_numpy(targets)
    mask_np = _as_numpy(mask)
    if scores_np.ndim != 2 or targets_np.shape != scores_np.shape or (mask_np is not None and mask_np.shape != scores_np.shape):
        raise ValueError(f"need scores, targets (and mask) of one shape [N, C], got {scores_np.shape}, {targets_np.shape}"
                         f"{'' if mask_np is None else ', ' + str(mask_np.shape)}")
    c = scores_np.shape[1]
    names = [f"label {i}" for i in range(c)] if label_names is None else [str(n) for n in label_names]
    if len(names) != c:
        raise ValueError(f"{len(names)} label names for {c} columns")
    areas = pr_auc(torch.from_numpy(scores_np), torch.from_numpy(targets_np != 0),
                   None if mask_np is None else torch.from_numpy(mask_np.astype(bool))).tolist()

    fig = Figure(figsize=(7.5, 6.0))
    ax = fig.add_subplot(1, 1, 1)
    colours = matplotlib.colormaps["tab20" if c > 10 else "tab10"]
    for j, name in enumerate(names):
        recall, precision = pr_curve_points(scores_np[:, j], targets_np[:, j], None if mask_np is None else mask_np[:, j])
        if recall.size == 0:
            ax.plot([], [], color="0.7", label=f"{name} (no positive)")
            continue
        ax.plot(recall, precision, color=colours(j % colours.N), linewidth=1.4, label=f"{name} (PR-AUC {areas[j]:.3f})")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.grid(True, alpha=0.3)
    ax.set_title(textwrap.fill(title or "Precision-recall curves per label", 80), fontsize=10)
    ax.legend(loc="lower left", fontsize=8, framealpha=0.85)
    fig.tight_layout()
    return fig


def pr_curves_figure(
    scores,
    targets,
    mask=None,
    label_names: Sequence[str] | None = None,
    path: str | os.PathLike = "results/figures/pr_curves.png",
    title: str | None = None,
    dpi: int = 150,
) -> Path:
    """Write the per-label PR curves of ``scores`` ``[N, C]`` (``targets`` ``[N, C]`` in
    {0, 1}, ``mask`` ``[N, C]`` bool or None; numpy arrays or tensors) as one PNG at
    ``path`` (atomically) and return the path. See :func:`draw_pr_curves`."""
    fig = draw_pr_curves(scores, targets, mask, label_names, title)
    path = Path(path)
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=dpi)
    return path


def pr_curves_from_npz(npz_path: str | os.PathLike, path: str | os.PathLike, title: str | None = None) -> Path:
    """:func:`pr_curves_figure` of a ``fashionbench score`` file (``scores`` or ``logits``,
    ``targets``, optional ``mask`` and ``label_names``; validated as ``score`` does)."""
    from fashionbench.errors import InputError
    from fashionbench.scoring import load_predictions

    data = load_predictions(npz_path)
    if data["single_label"]:
        raise InputError("PR curves need multi-label targets [N, C]", path=npz_path)
    return pr_curves_figure(data["scores"], data["targets"], data["mask"], data["label_names"], path, title)


def _write_scores_npz(path: Path, scores: np.ndarray, targets: np.ndarray, mask: np.ndarray,
                      label_names: Sequence[str] | None) -> Path:
    arrays = {"scores": scores.astype(np.float32), "targets": targets.astype(np.uint8), "mask": mask.astype(bool)}
    if label_names is not None:
        arrays["label_names"] = np.asarray(list(label_names))
    with atomic_open(path, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    return path


try:  # the callback needs Lightning; the drawing functions do not
    from lightning.pytorch.callbacks import Callback as _Callback
except ImportError:  # pragma: no cover
    _Callback = object  # type: ignore[assignment,misc]


def _gather_uneven(pl_module, tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """All ranks' rows of each tensor (ranks may hold different numbers of rows)."""
    device = pl_module.device
    sizes = pl_module.all_gather(torch.tensor([tensors[0].shape[0]], device=device)).view(-1).tolist()
    longest = max(int(n) for n in sizes)
    out = []
    for x in tensors:
        padded = torch.zeros((longest, *x.shape[1:]), dtype=x.dtype, device=device)
        padded[: x.shape[0]] = x.to(device)
        gathered = pl_module.all_gather(padded)  # [world, longest, ...]
        out.append(torch.cat([gathered[r, : int(n)] for r, n in enumerate(sizes)]).cpu())
    return out


class PRCurveFigure(_Callback):
    """Lightning callback: at the end of a test run, draw :func:`pr_curves_figure` of the
    test predictions to ``path`` and, with ``scores_path``, save them as a ``fashionbench
    score`` file. Scores are ``sigmoid`` of the model's logits, as the evaluators score them.

    It scores each test batch with the model once more (``pl_module.forward_batch`` when
    the model has it, else ``pl_module(batch["image"])``), in eval mode without gradients,
    so it needs nothing from the evaluators. Under DDP the predictions are gathered and
    rank 0 writes (the eval loaders never pad, so every image counts once).

    Args:
        path: the PNG (e.g. ``results/figures/semantic_embed_fig5.png``).
        title: the figure's title.
        scores_path: optional ``.npz`` of the scores, targets, mask and label names.
    """

    def __init__(self, path: str = "results/figures/pr_curves.png", title: str | None = None,
                 scores_path: str | None = None) -> None:
        super().__init__()
        self.path = path
        self.title = title
        self.scores_path = scores_path
        self._parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self._parts = []

    @torch.no_grad()
    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if dataloader_idx != 0 or getattr(pl_module, "single_label", False) or batch["index"].numel() == 0:
            return
        forward_batch = getattr(pl_module, "forward_batch", None)
        with trainer.precision_plugin.forward_context():  # the precision the test step ran in
            if forward_batch is not None:
                logits = forward_batch(batch, getattr(pl_module, "label_space", None))
            else:
                logits = pl_module(batch["image"])
        scores = torch.sigmoid(logits.float())
        target = batch["target"]
        mask = batch.get("mask")
        if mask is None:
            mask = torch.ones_like(target, dtype=torch.bool)
        self._parts.append((batch["index"].detach().cpu(), scores.cpu(), target.detach().cpu() != 0, mask.detach().cpu().bool()))

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        if getattr(pl_module, "single_label", False):
            return
        if self._parts:
            index, scores, targets, mask = (torch.cat(x) for x in zip(*self._parts))
        else:  # this rank scored nothing: still take part in the gather
            c = pl_module.num_labels
            index, scores = torch.zeros(0, dtype=torch.long), torch.zeros(0, c)
            targets, mask = torch.zeros(0, c, dtype=torch.bool), torch.zeros(0, c, dtype=torch.bool)
        self._parts = []
        if trainer.world_size > 1:
            index, scores, targets, mask = _gather_uneven(pl_module, (index, scores, targets, mask))
        if not trainer.is_global_zero or index.numel() == 0:
            return
        order = torch.argsort(index)
        scores, targets, mask = scores[order].numpy(), targets[order].numpy(), mask[order].numpy()
        names = getattr(pl_module, "label_names", None)
        pr_curves_figure(scores, targets, mask, names, self.path, self.title)
        print(f"fashionbench: wrote {self.path}")
        if self.scores_path:
            _write_scores_npz(Path(self.scores_path), scores, targets, mask, names)
