"""MultilabelEvaluator / SingleLabelEvaluator under DDP with uneven shards.

The 2-process gloo group runs in its own subprocess (tests/ddp_metric_worker.py, whose
ranks are forked from it), never in the pytest process. Rank 0 holds 6 samples, rank 1
holds 5 (11 in all, C = 7). Both ranks' gathered ``compute()`` must equal the metrics of
``specs/metrics.md`` computed here independently, by sklearn and plain numpy loops, on all
11 samples; each rank must have held only its own shard; and both ranks must agree exactly
with a single-process run.
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, precision_score, recall_score

WORKER = Path(__file__).with_name("ddp_metric_worker.py")


def load_worker():
    spec = importlib.util.spec_from_file_location("ddp_metric_worker", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _f1(p: float, r: float) -> float:
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def _top(row: np.ndarray, k: int) -> list[int]:
    """The k highest scores of one image, ties towards the lower class index (metrics.md)."""
    return sorted(range(len(row)), key=lambda j: (-float(row[j]), j))[:k]


def _threshold_block(targets, mask, predicted, suffix=""):
    """CP … OF1 of metrics.md with sklearn's per-class and micro precision / recall on the known entries."""
    c = targets.shape[1]
    classes = [j for j in range(c) if targets[mask[:, j], j].sum() > 0]
    cp = float(np.mean([precision_score(targets[mask[:, j], j], predicted[mask[:, j], j], zero_division=0) for j in classes]))
    cr = float(np.mean([recall_score(targets[mask[:, j], j], predicted[mask[:, j], j]) for j in classes]))
    op = precision_score(targets[mask], predicted[mask], zero_division=0)
    orec = recall_score(targets[mask], predicted[mask])
    return {f"CP{suffix}": cp, f"CR{suffix}": cr, f"CF1{suffix}": _f1(cp, cr),
            f"OP{suffix}": op, f"OR{suffix}": orec, f"OF1{suffix}": _f1(op, orec)}


def reference(scores: np.ndarray, targets: np.ndarray, mask: np.ndarray, class_ids: np.ndarray, ks, single_ks):
    """Every metric of the evaluators, from metrics.md, on all samples (threshold 0.5, empty class excluded)."""
    n, c = scores.shape
    ap, pr_auc = [], []
    for j in range(c):
        y, s = targets[mask[:, j], j], scores[mask[:, j], j].astype(np.float64)
        if y.sum() == 0:
            ap.append(None)
            pr_auc.append(None)
            continue
        ap.append(float(average_precision_score(y, s)))
        precision, recall, _ = precision_recall_curve(y, s)
        pr_auc.append(float(auc(recall, precision)))
    multilabel = {
        "AP": ap,
        "mAP": float(np.mean([v for v in ap if v is not None])),
        "PR-AUC": float(np.mean([v for v in pr_auc if v is not None])),
        "PR-AUC_per_class": pr_auc,
    }
    predicted = scores.astype(np.float64) >= 0.5
    multilabel.update(_threshold_block(targets, mask, predicted))
    multilabel["F1-micro"] = multilabel["OF1"]
    positives = int(targets[mask].sum())
    for k in ks:
        in_top = np.zeros((n, c), dtype=bool)
        for i in range(n):
            in_top[i, _top(scores[i], k)] = True
        multilabel.update(_threshold_block(targets, mask, in_top & predicted, suffix=f"@{k}"))
        hits = int((in_top & mask & (targets == 1)).sum())  # masked labels in the top K are misses
        p, r = hits / (n * k), hits / positives
        multilabel.update({f"P@{k}": p, f"R@{k}": r, f"F1@{k}": _f1(p, r)})
    ranks = np.array([_top(scores[i], c).index(int(class_ids[i])) for i in range(n)])
    single_label = {f"top{k}": float(np.mean(ranks < k)) for k in single_ks}
    return multilabel, single_label


def assert_matches(got: dict, want: dict, where: str) -> None:
    assert set(want) == set(got), f"{where}: keys differ: {set(want) ^ set(got)}"
    for key, value in want.items():
        if isinstance(value, list):
            assert len(got[key]) == len(value), f"{where} {key}"
            for index, (a, b) in enumerate(zip(got[key], value)):
                assert (a is None and b is None) or a == pytest.approx(b, abs=1e-12), f"{where} {key}[{index}]"
        else:
            assert got[key] == pytest.approx(value, abs=1e-12), f"{where} {key}"


@pytest.mark.ddp
def test_ddp_uneven_shards_match_sklearn_and_single_process(tmp_path):
    repo_root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [repo_root, os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, str(WORKER), str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]

    worker = load_worker()
    data = {key: value.numpy() for key, value in worker.make_data().items()}
    assert data["scores"].shape == (11, 7)
    want_multilabel, want_single = reference(data["scores"], data["targets"], data["mask"], data["class_ids"],
                                             ks=worker.KS, single_ks=(1, 3, 5))
    assert want_multilabel["AP"][6] is None  # the class without a positive must travel through the gather too
    assert not math.isclose(want_single["top1"], want_single["top5"])  # the case tells top-k apart

    # the single-process run, through JSON like the workers' results
    multilabel, single_label = worker.make_metrics()
    multilabel.update(*(worker.make_data()[key] for key in ("scores", "targets", "mask")))
    single_label.update(worker.make_data()["scores"], worker.make_data()["class_ids"])
    single = json.loads(json.dumps({"multilabel": multilabel.compute(), "single_label": single_label.compute()}))
    assert_matches(single["multilabel"], want_multilabel, "single process")

    shard_rows = {0: 6, 1: 5}  # rank 0: rows 0-3 and 4-5; rank 1: rows 6-10
    for rank in (0, 1):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        seen = got.pop("seen")
        assert seen == {"rank": rank, "world_size": 2, "multilabel_rows": shard_rows[rank],
                        "mask_rows": shard_rows[rank], "single_label_total": shard_rows[rank]}, f"rank {rank}"
        assert_matches(got["multilabel"], want_multilabel, f"rank {rank}")
        assert got["single_label"] == pytest.approx(want_single, abs=1e-12), f"rank {rank}"
        assert got == single, f"rank {rank} differs from one process"
