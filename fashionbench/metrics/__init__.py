"""Metrics of ``specs/metrics.md``: a pure functional core and torchmetrics wrappers.

``functional`` holds the tensor maths (AP, PR-AUC, threshold, top-k and tagging metrics,
single-label top-k); ``classes`` holds the ``Metric`` classes used in training loops.
The classes (and torchmetrics with them) are imported on first use, so ``fashionbench
score`` loads only the functional core.
"""
from fashionbench.metrics.functional import (
    EMPTY_CLASS_CONVENTIONS,
    average_precision,
    average_precision_and_pr_auc,
    mean_average_precision,
    multilabel_metrics,
    pr_auc,
    single_label_metrics,
    tagging_metrics,
    threshold_counts,
    threshold_metrics,
    topk_accuracy,
    topk_mask,
    topk_threshold_counts,
    topk_threshold_metrics,
    true_class_rank,
)

_CLASSES = ("MultilabelEvaluator", "SingleLabelEvaluator", "loggable")


def __getattr__(name: str):
    if name in _CLASSES:
        from fashionbench.metrics import classes

        return getattr(classes, name)
    raise AttributeError(f"module 'fashionbench.metrics' has no attribute '{name}'")


__all__ = [
    "EMPTY_CLASS_CONVENTIONS",
    "MultilabelEvaluator",
    "SingleLabelEvaluator",
    "average_precision",
    "average_precision_and_pr_auc",
    "loggable",
    "mean_average_precision",
    "multilabel_metrics",
    "pr_auc",
    "single_label_metrics",
    "tagging_metrics",
    "threshold_counts",
    "threshold_metrics",
    "topk_accuracy",
    "topk_mask",
    "topk_threshold_counts",
    "topk_threshold_metrics",
    "true_class_rank",
]
