"""The torchmetrics wrappers accumulate batches and give the sklearn / reference values."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import auc, average_precision_score, f1_score, precision_recall_curve, precision_score, recall_score

from fashionbench.metrics import MultilabelEvaluator, SingleLabelEvaluator, loggable


def make_batches(seed: int = 0, n: int = 90, c: int = 6):
    rng = np.random.default_rng(seed)
    scores = torch.from_numpy(np.round(rng.random((n, c)), 1).astype(np.float32))
    targets = torch.from_numpy((rng.random((n, c)) < 0.3).astype(np.int64))
    targets[:, 3] = 0  # a class without a positive
    mask = torch.from_numpy(rng.random((n, c)) < 0.85)
    return scores, targets, mask


def _top(row, k):
    """The k highest scores of one image, ties towards the lower class index (metrics.md)."""
    return sorted(range(len(row)), key=lambda j: (-float(row[j]), j))[:k]


def _harmonic(p, r):
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def sklearn_threshold_metrics(targets, mask, predicted, suffix=""):
    """CP/CR/CF1 (macro over classes with a known positive, on each class's known entries) and
    OP/OR/OF1 (micro over every known entry) by sklearn, from metrics.md "Threshold metrics"."""
    classes = [c for c in range(targets.shape[1]) if targets[mask[:, c], c].sum() > 0]
    per_class_p = [precision_score(targets[mask[:, c], c], predicted[mask[:, c], c], zero_division=0) for c in classes]
    per_class_r = [recall_score(targets[mask[:, c], c], predicted[mask[:, c], c]) for c in classes]
    cp, cr = float(np.mean(per_class_p)), float(np.mean(per_class_r))
    y, p = targets[mask], predicted[mask]
    return {
        f"CP{suffix}": cp, f"CR{suffix}": cr, f"CF1{suffix}": _harmonic(cp, cr),
        f"OP{suffix}": precision_score(y, p, zero_division=0), f"OR{suffix}": recall_score(y, p),
        f"OF1{suffix}": f1_score(y, p, zero_division=0),  # micro-F1 over the known entries
    }


def sklearn_reference(scores, targets, mask, ks, thresholds, empty_class="exclude"):
    """Every key of ``MultilabelEvaluator.compute()`` from sklearn (and top-k by a plain loop).

    ``thresholds``: a length-C array; label c is predicted when ``score >= thresholds[c]``.
    """
    scores, targets, mask = (np.asarray(a) for a in (scores, targets, mask))
    n, c = scores.shape
    ap, area = [], []
    for j in range(c):
        y, s = targets[mask[:, j], j], scores[mask[:, j], j].astype(np.float64)
        if y.sum() == 0:
            ap.append(None)
            area.append(None)
            continue
        ap.append(float(average_precision_score(y, s)))
        precision, recall, _ = precision_recall_curve(y, s)
        area.append(float(auc(recall, precision)))
    defined = [v for v in ap if v is not None]
    expected = {
        "AP": ap,
        "mAP": float(np.mean(defined)) if empty_class == "exclude" else float(np.sum(defined) / c),
        "PR-AUC": float(np.mean([v for v in area if v is not None])),
        "PR-AUC_per_class": area,
    }
    predicted = scores.astype(np.float64) >= np.asarray(thresholds, dtype=np.float64)[None, :]
    expected.update(sklearn_threshold_metrics(targets, mask, predicted))
    expected["F1-micro"] = expected["OF1"]
    for k in ks:
        top = np.zeros((n, c), dtype=bool)
        for i in range(n):
            top[i, _top(scores[i], k)] = True
        expected.update(sklearn_threshold_metrics(targets, mask, top & predicted, suffix=f"@{k}"))
        hits = int((top & mask & (targets == 1)).sum())  # an unknown label in the top k is a miss
        p, r = hits / (n * k), hits / int(targets[mask].sum())
        expected.update({f"P@{k}": p, f"R@{k}": r, f"F1@{k}": _harmonic(p, r)})
    return expected


def assert_matches(result, expected):
    assert set(result) == set(expected)
    for key, want in expected.items():
        if isinstance(want, list):
            assert len(result[key]) == len(want), key
            for got, value in zip(result[key], want):
                assert (got is None and value is None) or got == pytest.approx(value, abs=1e-12), key
        else:
            assert result[key] == pytest.approx(want, abs=1e-12), key


def test_multilabel_evaluator_over_batches_matches_sklearn():
    scores, targets, mask = make_batches()
    metric = MultilabelEvaluator(num_labels=6, ks=(2, 3))
    for rows in (slice(0, 7), slice(7, 50), slice(50, 90)):
        metric.update(scores[rows], targets[rows], mask[rows])
    result = metric.compute()
    expected_ap = []
    for c in range(6):
        known = mask[:, c].numpy()
        y, s = targets[known, c].numpy(), scores[known, c].numpy()
        expected_ap.append(average_precision_score(y, s) if y.sum() else None)
    assert result["AP"][3] is None and expected_ap[3] is None
    for got, want in zip(result["AP"], expected_ap):
        assert (got is None and want is None) or got == pytest.approx(want, abs=1e-12)
    assert result["mAP"] == pytest.approx(np.mean([v for v in expected_ap if v is not None]), abs=1e-12)
    # every other key against sklearn on all 90 samples, threshold 0.5
    assert_matches(result, sklearn_reference(scores, targets, mask, ks=(2, 3), thresholds=np.full(6, 0.5)))


def test_multilabel_evaluator_options_and_missing_mask():
    scores, targets, mask = make_batches(1)
    thresholds = torch.linspace(0.3, 0.7, 6)
    metric = MultilabelEvaluator(6, ks=(1,), threshold=0.4, thresholds=thresholds, empty_class="zero")
    metric.update(scores[:40], targets[:40])  # no mask: all known
    metric.update(scores[40:], targets[40:], mask[40:])
    full_mask = mask.clone()
    full_mask[:40] = True
    # per-class thresholds replace threshold=0.4; empty_class "zero" averages AP over all 6 classes
    assert_matches(metric.compute(),
                   sklearn_reference(scores, targets, full_mask, ks=(1,), thresholds=thresholds, empty_class="zero"))
    metric.reset()
    metric.update(scores, targets)
    assert_matches(metric.compute(), sklearn_reference(scores, targets, torch.ones_like(mask), ks=(1,),
                                                       thresholds=thresholds, empty_class="zero"))


def test_per_class_thresholds_replace_the_global_threshold_by_hand():
    """threshold = 0.5 and thresholds = [0.4, 0.8]: the per-class ones decide, in the plain and the @K metrics.

    Class 0, scores 0.45 0.55 0.35 0.60, targets 1 0 1 1; class 1, scores 0.90 0.65 0.30 0.75, targets 1 1 0 0.
    - thresholds [0.4, 0.8]: class 0 predicts rows 0, 1, 3 (Nc 2, Np 3, Ng 3), class 1 row 0 (Nc 1, Np 1, Ng 2):
      CP = (2/3 + 1)/2 = 5/6, CR = (2/3 + 1/2)/2 = 7/12, OP = 3/4, OR = 3/5.
    - threshold 0.5 alone: class 0 rows 1, 3 (Nc 1, Np 2), class 1 rows 0, 1, 3 (Nc 2, Np 3):
      CP = (1/2 + 2/3)/2 = 7/12, CR = (1/3 + 1)/2 = 2/3, OP = 3/5, OR = 3/5.
    - (score >= both would give CP = (1/2 + 1)/2 = 3/4; the lower of the two, CP = 2/3.)
    - top-1 labels are class 1, 1, 0, 1. With [0.4, 0.8] only row 0 (0.90) passes: CP@1 = (0 + 1)/2 = 1/2,
      CR@1 = (0 + 1/2)/2 = 1/4, OP@1 = 1, OR@1 = 1/5. With 0.5 rows 0, 1, 3 pass (two right):
      CP@1 = (0 + 2/3)/2 = 1/3, CR@1 = (0 + 1)/2 = 1/2, OP@1 = 2/3, OR@1 = 2/5.
    """
    scores = torch.tensor([[0.45, 0.90], [0.55, 0.65], [0.35, 0.30], [0.60, 0.75]])
    targets = torch.tensor([[1, 1], [0, 1], [1, 0], [1, 0]])

    def f1(p, r):
        return 2 * p * r / (p + r)

    per_class = {"CP": 5 / 6, "CR": 7 / 12, "CF1": f1(5 / 6, 7 / 12), "OP": 3 / 4, "OR": 3 / 5, "OF1": f1(3 / 4, 3 / 5),
                 "CP@1": 1 / 2, "CR@1": 1 / 4, "OP@1": 1.0, "OR@1": 1 / 5}
    global_only = {"CP": 7 / 12, "CR": 2 / 3, "CF1": f1(7 / 12, 2 / 3), "OP": 3 / 5, "OR": 3 / 5, "OF1": 3 / 5,
                   "CP@1": 1 / 3, "CR@1": 1 / 2, "OP@1": 2 / 3, "OR@1": 2 / 5}
    for thresholds, expected in (([0.4, 0.8], per_class), (None, global_only)):
        metric = MultilabelEvaluator(2, ks=(1,), threshold=0.5, thresholds=thresholds)
        metric.update(scores, targets)
        result = metric.compute()
        for key, value in expected.items():
            assert result[key] == pytest.approx(value, abs=1e-12), (thresholds, key)
        assert result["F1-micro"] == pytest.approx(expected["OF1"], abs=1e-12)


def test_multilabel_evaluator_rejects_bad_shapes():
    metric = MultilabelEvaluator(4)
    with pytest.raises(ValueError):
        metric.update(torch.rand(3, 5), torch.ones(3, 5))
    with pytest.raises(ValueError):
        metric.update(torch.rand(3, 4), torch.ones(3, 3))
    with pytest.raises(ValueError):
        MultilabelEvaluator(4, empty_class="skip")
    with pytest.raises(ValueError):
        MultilabelEvaluator(4, thresholds=[0.5, 0.5])


def test_multilabel_evaluator_without_samples_is_all_undefined():
    with pytest.warns(UserWarning):  # torchmetrics: compute before update
        result = MultilabelEvaluator(3, ks=(1,)).compute()
    assert result["AP"] == [None, None, None]
    assert result["mAP"] is None and result["CP"] is None and result["P@1"] is None


def test_loggable_gives_floats_only():
    result = {"mAP": 0.5, "AP": [0.5, None], "CP": None, "P@3": 0.25}
    logged = loggable(result, prefix="val/")
    assert set(logged) == {"val/mAP", "val/CP", "val/P@3"}
    assert logged["val/mAP"] == 0.5 and math.isnan(logged["val/CP"])


def test_single_label_evaluator_matches_reference_with_ties():
    rng = np.random.default_rng(2)
    scores = np.round(rng.random((70, 10)), 1)
    targets = rng.integers(0, 10, size=70)
    # reference: position of the true class in the order (score descending, index ascending)
    ranks = np.array([sorted(range(10), key=lambda j: (-scores[i, j], j)).index(targets[i]) for i in range(70)])
    metric = SingleLabelEvaluator(num_classes=10)
    for rows in (slice(0, 33), slice(33, 70)):
        metric.update(torch.from_numpy(scores[rows]), torch.from_numpy(targets[rows]))
    result = metric.compute()
    assert result == {f"top{k}": pytest.approx(float(np.mean(ranks < k)), abs=1e-15) for k in (1, 3, 5)}
    with pytest.raises(ValueError):
        metric.update(torch.rand(2, 10), torch.tensor([0, 10]))
    with pytest.warns(UserWarning):  # torchmetrics: compute before update
        assert SingleLabelEvaluator(3, ks=(1, 2)).compute() == {"top1": None, "top2": None}
