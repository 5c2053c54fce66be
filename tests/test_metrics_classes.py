"""The torchmetrics wrappers accumulate batches and give the sklearn / reference values."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from fashionbench.metrics import MultilabelEvaluator, SingleLabelEvaluator, loggable, multilabel_metrics


def make_batches(seed: int = 0, n: int = 90, c: int = 6):
    rng = np.random.default_rng(seed)
    scores = torch.from_numpy(np.round(rng.random((n, c)), 1).astype(np.float32))
    targets = torch.from_numpy((rng.random((n, c)) < 0.3).astype(np.int64))
    targets[:, 3] = 0  # a class without a positive
    mask = torch.from_numpy(rng.random((n, c)) < 0.85)
    return scores, targets, mask


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
    # Everything else is the functional core's (tested against references) on all samples.
    assert result == multilabel_metrics(scores, targets, mask, ks=(2, 3))


def test_multilabel_evaluator_options_and_missing_mask():
    scores, targets, mask = make_batches(1)
    thresholds = torch.linspace(0.3, 0.7, 6)
    metric = MultilabelEvaluator(6, ks=(1,), threshold=0.4, thresholds=thresholds, empty_class="zero")
    metric.update(scores[:40], targets[:40])  # no mask: all known
    metric.update(scores[40:], targets[40:], mask[40:])
    full_mask = mask.clone()
    full_mask[:40] = True
    assert metric.compute() == multilabel_metrics(
        scores, targets, full_mask, ks=(1,), threshold=0.4, thresholds=thresholds, empty_class="zero"
    )
    metric.reset()
    metric.update(scores, targets)
    assert metric.compute() == multilabel_metrics(scores, targets, ks=(1,), thresholds=thresholds, empty_class="zero")


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
