"""``fashionbench score FILE.npz``: validate a predictions file and compute its metrics.

Contract: ``specs/interfaces.md`` (``score``), metrics by ``specs/metrics.md``. The file
holds ``scores`` or ``logits`` ``[N, C]``, ``targets`` (``[N, C]`` in {0, 1}, or ``[N]``
int class ids for a single-label task), and optionally ``mask`` ``[N, C]`` (bool, or
0/1), ``thresholds`` ``[C]`` and ``label_names`` ``[C]`` (checked, not used in the
numbers). Every problem with the file raises :class:`~fashionbench.errors.InputError`
naming the file and the problem on one line; the CLI prints it and exits 2.

Decisions the spec leaves open:
- ``logits`` → ``scores = torch.sigmoid(logits)`` computed in the logits' own float
  dtype (float16 is widened to float32), so a file with ``logits`` scores exactly like a
  file with ``scores = torch.sigmoid(logits)``. Scores and logits must be finite.
- A file holding both ``scores`` and ``logits`` is rejected (which one is meant?).
- A single-label file (``targets`` ``[N]``) may not hold ``mask`` or ``thresholds``,
  which have no meaning there; its keys are ``top1``, ``top3``, ``top5`` whatever ``ks``.
- Integer or bool scores are ranked as float64 (exact); float16 as float32.
"""
from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from fashionbench.errors import InputError
from fashionbench.metrics.functional import EMPTY_CLASS_CONVENTIONS, multilabel_metrics, single_label_metrics

__all__ = ["score_file", "load_predictions", "SINGLE_LABEL_KS"]

#: ``top{k}`` keys of a single-label file (interfaces.md ``score``).
SINGLE_LABEL_KS = (1, 3, 5)

_OPTIONAL_KEYS = ("mask", "thresholds", "label_names")


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _open_npz(path: str) -> np.lib.npyio.NpzFile:
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError("no such file", path=path) from None
    except IsADirectoryError:
        raise InputError("is a directory, not an .npz file", path=path) from None
    except PermissionError:
        raise InputError("cannot read the file (permission denied)", path=path) from None
    except (ValueError, pickle.UnpicklingError):  # numpy fell back to reading it as a pickle
        raise InputError("not an .npz file (numpy reads neither a zip of arrays nor an .npy in it)",
                         path=path) from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise InputError(f"not a readable .npz file ({_one_line(err)})", path=path) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise InputError("is a single .npy array, not an .npz archive of named arrays", path=path)
    return archive


def _read(archive: np.lib.npyio.NpzFile, key: str, path: str) -> np.ndarray:
    try:
        array = archive[key]
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise InputError(f"'{key}' is an object array; save it as a numeric or str array", path=path) from None
        raise InputError(f"cannot read '{key}' ({_one_line(err)})", path=path) from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise InputError(f"cannot read '{key}' ({_one_line(err)})", path=path) from None
    return array


def _is_numeric(array: np.ndarray) -> bool:
    return array.dtype.kind in "biuf"


def _shape(array: np.ndarray) -> str:
    return "[" + ", ".join(str(d) for d in array.shape) + "]"


def _as_scores(array: np.ndarray, key: str, path: str) -> torch.Tensor:
    """A finite ``[N, C]`` numeric array as a float tensor (float32/float64 kept)."""
    if not _is_numeric(array):
        raise InputError(f"'{key}' must be numeric, got dtype {array.dtype}", path=path)
    if array.ndim != 2:
        raise InputError(f"'{key}' must be [N, C], got shape {_shape(array)}", path=path)
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise InputError(f"'{key}' is empty (shape {_shape(array)})", path=path)
    if array.dtype.kind == "f":
        bad = ~np.isfinite(array)
        if bad.any():
            row, col = (int(i) for i in np.argwhere(bad)[0])
            raise InputError(
                f"'{key}' has NaN/inf values ({int(bad.sum())} of them, first at row {row}, column {col})", path=path
            )
    if array.dtype == np.float16:
        array = array.astype(np.float32)
    elif array.dtype.kind != "f":
        array = array.astype(np.float64)
    return torch.from_numpy(np.ascontiguousarray(array))


def _zero_one(array: np.ndarray, key: str, path: str, what: str) -> torch.Tensor:
    """A ``[N, C]`` array whose values are all 0 or 1, as a bool tensor."""
    if array.dtype != np.bool_:
        if not _is_numeric(array):
            raise InputError(f"'{key}' must be {what}, got dtype {array.dtype}", path=path)
        bad = (array != 0) & (array != 1)
        if bad.any():
            row, col = (int(i) for i in np.argwhere(bad)[0])
            raise InputError(
                f"'{key}' must be {what}, but {int(bad.sum())} of its values are not "
                f"(first: {array[row, col].item()!r} at row {row}, column {col})",
                path=path,
            )
    return torch.from_numpy(np.ascontiguousarray(array != 0))


def _class_ids(array: np.ndarray, num_classes: int, path: str) -> torch.Tensor:
    """Single-label ``targets`` ``[N]`` as int64 class ids in ``[0, C)``."""
    if not _is_numeric(array) or array.dtype == np.bool_:
        raise InputError(f"single-label 'targets' must be integer class ids, got dtype {array.dtype}", path=path)
    if array.dtype.kind == "f":
        bad = ~np.isfinite(array) | (array != np.round(array))
        if bad.any():
            i = int(np.argmax(bad))
            raise InputError(
                f"single-label 'targets' must be integer class ids, row {i} is {array[i].item()!r}", path=path
            )
    ids = array.astype(np.int64)
    bad = (ids < 0) | (ids >= num_classes)
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(
            f"single-label 'targets' must be class ids in [0, {num_classes}) (C = scores' width), "
            f"row {i} is {ids[i]} ({int(bad.sum())} out of range)",
            path=path,
        )
    return torch.from_numpy(ids)


def load_predictions(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a predictions ``.npz`` (interfaces.md ``score``).

    Returns ``{"scores": Tensor [N, C] float, "targets": Tensor ([N, C] bool or [N]
    int64), "single_label": bool, "mask": Tensor [N, C] bool | None, "thresholds":
    Tensor [C] float64 | None, "label_names": list[str] | None}``.
    Raises :class:`InputError` (naming the file) for every problem.
    """
    path = os.fspath(path)
    with _open_npz(path) as archive:
        keys = set(archive.files)
        if "scores" in keys and "logits" in keys:
            raise InputError("holds both 'scores' and 'logits'; keep one", path=path)
        for required in ("scores or logits", "targets"):
            if not any(key in keys for key in required.split(" or ")):
                names = " or ".join(f"'{key}'" for key in required.split(" or "))
                raise InputError(f"missing key {names} (the file has: {', '.join(sorted(keys)) or 'nothing'})",
                                 path=path)
        score_key = "scores" if "scores" in keys else "logits"
        scores = _as_scores(_read(archive, score_key, path), score_key, path)
        if score_key == "logits":
            scores = torch.sigmoid(scores)
        n, c = scores.shape

        targets = _read(archive, "targets", path)
        if targets.ndim == 1:
            single_label = True
            if targets.shape[0] != n:
                raise InputError(f"'targets' has {targets.shape[0]} rows but '{score_key}' has {n}", path=path)
            for key in ("mask", "thresholds"):
                if key in keys:
                    raise InputError(f"'{key}' is only for multi-label files, but 'targets' is [N] class ids",
                                     path=path)
            target_tensor = _class_ids(targets, c, path)
        elif targets.ndim == 2:
            single_label = False
            if targets.shape != (n, c):
                raise InputError(f"'targets' shape {_shape(targets)} != '{score_key}' shape [{n}, {c}]", path=path)
            target_tensor = _zero_one(targets, "targets", path, "0 or 1")
        else:
            raise InputError(f"'targets' must be [N, C] or [N], got shape {_shape(targets)}", path=path)

        mask = None
        if "mask" in keys:
            raw = _read(archive, "mask", path)
            if raw.shape != (n, c):
                raise InputError(f"'mask' shape {_shape(raw)} != '{score_key}' shape [{n}, {c}]", path=path)
            mask = _zero_one(raw, "mask", path, "bool (True = label known)")

        thresholds = None
        if "thresholds" in keys:
            raw = _read(archive, "thresholds", path)
            if raw.shape != (c,):
                raise InputError(f"'thresholds' must have shape [{c}] (one per class), got {_shape(raw)}", path=path)
            if not _is_numeric(raw) or not np.isfinite(raw.astype(np.float64)).all():
                raise InputError("'thresholds' must be finite numbers", path=path)
            thresholds = torch.from_numpy(raw.astype(np.float64))

        label_names = None
        if "label_names" in keys:
            raw = _read(archive, "label_names", path)
            if raw.shape != (c,):
                raise InputError(f"'label_names' must have shape [{c}], got {_shape(raw)}", path=path)
            label_names = [str(name) for name in raw.tolist()]

    return {
        "scores": scores,
        "targets": target_tensor,
        "single_label": single_label,
        "mask": mask,
        "thresholds": thresholds,
        "label_names": label_names,
    }


def score_file(
    path: str | os.PathLike,
    ks: Iterable[int] = (3,),
    threshold: float = 0.5,
    empty_class: str = "exclude",
) -> dict[str, Any]:
    """Metrics of one predictions file as a JSON-ready dict (interfaces.md ``score``).

    Multi-label: the keys of :func:`~fashionbench.metrics.functional.multilabel_metrics`
    for each K in ``ks``. Single-label: ``top1``, ``top3``, ``top5``. ``None`` (JSON
    ``null``) marks an undefined value. Raises :class:`InputError` on a bad file or option.
    """
    ks = list(ks)
    if not ks or any(int(k) != k or k < 1 for k in ks):
        raise InputError(f"--k must be positive integers, got {ks}")
    if not np.isfinite(threshold):
        raise InputError(f"--threshold must be a finite number, got {threshold}")
    if empty_class not in EMPTY_CLASS_CONVENTIONS:
        raise InputError(f"--empty-class must be one of {', '.join(EMPTY_CLASS_CONVENTIONS)}, got {empty_class!r}")
    data = load_predictions(path)
    if data["single_label"]:
        return single_label_metrics(data["scores"], data["targets"], SINGLE_LABEL_KS)
    return multilabel_metrics(
        data["scores"],
        data["targets"],
        data["mask"],
        ks=[int(k) for k in ks],
        threshold=float(threshold),
        thresholds=data["thresholds"],
        empty_class=empty_class,
    )
