"""Label-frequency weighted sampling: eq. (2) of Wide, Deep and Recurrent (Xiong & Wang,
FGVC5 poster, "Other techniques: Weighted sampling").

The poster asks for label weights ``w_l`` with, for label frequencies ``f_l``::

    (w_l1 * f_l1) / (w_l2 * f_l2) = (f_l1 / f_l2) ** alpha   for all l1, l2      (2)
    sum_l w_l * f_l = sum_l f_l

The first line makes every label's weighted frequency ``w_l * f_l`` proportional to
``f_l ** alpha``, so ``w_l = c * f_l ** (alpha - 1)``; the second fixes
``c = sum_l f_l / sum_l f_l ** alpha`` (the frequency-weighted mean of the weights is 1, so
a weight of 1 is neutral). The result does not depend on whether ``f`` are counts or
rates. Labels with ``f_l = 0`` appear in no image; they get ``w_l = 0`` and do not enter the
sums (``0 ** alpha = 0`` for ``alpha > 0``). The poster gives no ``alpha`` and cites GloVe
(Pennington, Socher & Manning, EMNLP 2014) for the scheme, whose weighting function
``(x / x_max) ** alpha`` uses ``alpha = 3/4``: the default here. ``alpha = 1`` leaves the
distribution as it is (all weights 1); ``alpha = 0`` flattens it (every label's weighted
frequency equal).

Per-image weights (the poster says only "to adjust weights for each sample"): an image's
sampling weight is the ``mean`` (default) or ``max`` of its labels' weights; an image with
no positive gets the neutral weight 1. When every image has exactly one label either rule
gives each label an expected share of the draws of exactly ``f_l ** alpha / sum f ** alpha``,
the frequencies eq. (2) predicts; with several labels an image the shares follow from the
weights (:func:`expected_label_shares`). The datamodule draws ``N`` images an epoch with
replacement, image ``i`` with probability ``s_i / sum(s)``.

Config::

    data:
      init_args:
        train_sampling:
          class_path: datamodules.sampling.LabelFrequencySampling
          init_args: {alpha: 0.75, reduce: mean}
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

from datamodules.extras import SampleWeighting

if TYPE_CHECKING:  # pragma: no cover
    from datamodules.index import LabelIndex

__all__ = ["label_weights", "image_weights", "expected_label_shares", "LabelFrequencySampling", "GLOVE_ALPHA"]

#: GloVe's exponent (Pennington et al. 2014, Sec. 3, "alpha = 3/4")
GLOVE_ALPHA = 0.75


def label_weights(frequencies: np.ndarray, alpha: float = GLOVE_ALPHA) -> np.ndarray:
    """``w [C]`` solving eq. (2) for label frequencies ``f [C]`` (counts or rates, >= 0)."""
    f = np.asarray(frequencies, dtype=np.float64)
    if f.ndim != 1 or np.any(f < 0) or not np.all(np.isfinite(f)):
        raise ValueError("frequencies must be a 1-d array of finite non-negative numbers")
    w = np.zeros_like(f)
    present = f > 0
    if not present.any():
        return w
    fp = f[present]
    c = fp.sum() / np.power(fp, alpha).sum()
    w[present] = c * np.power(fp, alpha - 1.0)
    return w


def image_weights(index: "LabelIndex", weights: np.ndarray, reduce: Literal["mean", "max"] = "mean") -> np.ndarray:
    """``s [N]``: each image's sampling weight from its positives' label weights."""
    counts = np.diff(index.pos_indptr)
    per_entry = np.asarray(weights, dtype=np.float64)[index.pos_indices]
    rows = np.repeat(np.arange(len(index)), counts)
    out = np.ones(len(index), dtype=np.float64)  # no positive: the neutral weight
    has = counts > 0
    if reduce == "mean":
        sums = np.bincount(rows, weights=per_entry, minlength=len(index))
        out[has] = sums[has] / counts[has]
    elif reduce == "max":
        maxima = np.zeros(len(index), dtype=np.float64)
        np.maximum.at(maxima, rows, per_entry)
        out[has] = maxima[has]
    else:
        raise ValueError(f"reduce must be 'mean' or 'max', got {reduce!r}")
    return out


def expected_label_shares(index: "LabelIndex", sample_weights: np.ndarray) -> np.ndarray:
    """``[C]``: the expected share of draws that contain each label, ``sum_i s_i y_il / sum_i s_i``."""
    s = np.asarray(sample_weights, dtype=np.float64)
    rows = np.repeat(np.arange(len(index)), np.diff(index.pos_indptr))
    return np.bincount(index.pos_indices, weights=s[rows], minlength=index.num_labels) / s.sum()


class LabelFrequencySampling(SampleWeighting):
    """The datamodule's ``train_sampling``: eq. (2) label weights -> per-image weights.

    Args:
        alpha: the exponent of eq. (2) (default 3/4, GloVe's).
        reduce: ``mean`` or ``max`` of an image's label weights.
    """

    def __init__(self, alpha: float = GLOVE_ALPHA, reduce: Literal["mean", "max"] = "mean") -> None:
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        if reduce not in ("mean", "max"):
            raise ValueError(f"reduce must be 'mean' or 'max', got {reduce!r}")
        self.alpha = float(alpha)
        self.reduce = reduce

    def __call__(self, index: "LabelIndex") -> np.ndarray:
        return image_weights(index, label_weights(index.positive_counts(), self.alpha), self.reduce)

    def __repr__(self) -> str:
        return f"LabelFrequencySampling(alpha={self.alpha}, reduce={self.reduce!r})"
