"""Class-sharded exact evaluation (fashionbench/metrics/sharded.py) under DDP.

One 3-process gloo group runs in its own subprocess (tests/sharded_eval_worker.py, ranks
forked from it); its scenarios have odd N and odd C (37 x 13), a rank without rows, fewer
classes than ranks, ties, a mask, a class without a positive, per-class thresholds,
k > C, both empty-class conventions, float64 rows on one rank. Every rank's result must
equal sklearn / plain-loop references of specs/metrics.md on all rows, and exactly the
single-process ``MultilabelEvaluator`` on the same rows; the sharded path must not call
torchmetrics' gather at all, and each rank must have ranked N x its share of the classes,
a block of classes at a time.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, precision_score, recall_score

from fashionbench.metrics import MultilabelEvaluator, multilabel_metrics
from fashionbench.metrics.sharded import class_shards

WORKER = Path(__file__).with_name("sharded_eval_worker.py")


def load_worker():
    spec = importlib.util.spec_from_file_location("sharded_eval_worker", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


worker = load_worker()


# ----------------------------------------------------------------- references (metrics.md)
def _f1(p, r):
    if p is None or r is None:
        return None
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def _top(row: np.ndarray, k: int) -> list[int]:
    """The k highest scores of one image over all its labels, ties -> lower class index."""
    return sorted(range(len(row)), key=lambda j: (-float(row[j]), j))[:k]


def _threshold_block(targets, mask, predicted, suffix=""):
    c = targets.shape[1]
    classes = [j for j in range(c) if targets[mask[:, j], j].sum() > 0]
    cp = float(np.mean([precision_score(targets[mask[:, j], j], predicted[mask[:, j], j], zero_division=0) for j in classes]))
    cr = float(np.mean([recall_score(targets[mask[:, j], j], predicted[mask[:, j], j]) for j in classes]))
    op = float(precision_score(targets[mask], predicted[mask], zero_division=0))
    orec = float(recall_score(targets[mask], predicted[mask]))
    return {f"CP{suffix}": cp, f"CR{suffix}": cr, f"CF1{suffix}": _f1(cp, cr),
            f"OP{suffix}": op, f"OR{suffix}": orec, f"OF1{suffix}": _f1(op, orec)}


def reference(scores, targets, mask, *, ks, threshold=0.5, thresholds=None, empty_class="exclude"):
    """Every key of the evaluator, by sklearn and plain loops on the known entries."""
    scores = scores.astype(np.float64)
    n, c = scores.shape
    ap, pr = [], []
    for j in range(c):
        y, s = targets[mask[:, j], j], scores[mask[:, j], j]
        if y.sum() == 0:
            ap.append(None)
            pr.append(None)
            continue
        ap.append(float(average_precision_score(y, s)))
        precision, recall, _ = precision_recall_curve(y, s)
        pr.append(float(auc(recall, precision)))
    present = [v for v in ap if v is not None]
    out = {
        "mAP": float(np.mean(present)) if empty_class == "exclude" else float(np.sum(present) / c),
        "AP": ap,
        "PR-AUC": float(np.mean([v for v in pr if v is not None])),
    }
    thr = np.full(c, threshold) if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    predicted = scores >= thr[None, :]
    out.update(_threshold_block(targets, mask, predicted))
    out["F1-micro"] = out["OF1"]
    positives = int(targets[mask].sum())
    for k in ks:
        in_top = np.zeros((n, c), dtype=bool)
        for i in range(n):
            in_top[i, _top(scores[i], k)] = True
        out.update(_threshold_block(targets, mask, in_top & predicted, suffix=f"@{k}"))
        hits = int((in_top & mask & targets).sum())
        p, r = hits / (n * k), hits / positives
        out.update({f"P@{k}": p, f"R@{k}": r, f"F1@{k}": _f1(p, r)})
    out["PR-AUC_per_class"] = pr
    return out


def assert_matches(got: dict, want: dict, where: str) -> None:
    assert set(got) == set(want), f"{where}: keys differ: {set(got) ^ set(want)}"
    for key, value in want.items():
        if isinstance(value, list):
            assert len(got[key]) == len(value), f"{where} {key}"
            for j, (a, b) in enumerate(zip(got[key], value)):
                assert (a is None and b is None) or a == pytest.approx(b, abs=1e-12), f"{where} {key}[{j}]"
        else:
            assert got[key] == pytest.approx(value, abs=1e-12), f"{where} {key}"


def all_rows(spec):
    """The scenario's full matrix in rank order, each rank's rows in its own dtype."""
    data = worker.make_data(spec["n"], spec["c"])
    pieces = [(data["scores"][rows].to(worker.piece_dtype(spec, r)), data["targets"][rows], data["mask"][rows])
              for r in spec["ranks"] for rows in worker.rank_rows(spec, r)]
    return data, pieces


# --------------------------------------------------------------------- single process
def test_class_shards_partition_the_classes():
    for c, w in [(13, 2), (13, 3), (2, 3), (7586, 2), (1, 1)]:
        shards = class_shards(c, w)
        sizes = [b - a for a, b in shards]
        assert shards[0][0] == 0 and shards[-1][1] == c
        assert all(shards[i][1] == shards[i + 1][0] for i in range(w - 1))
        assert max(sizes) - min(sizes) <= 1


def test_single_process_path_is_unchanged():
    """Without a process group the evaluator (sharded or not) is multilabel_metrics on the rows."""
    spec = worker.SCENARIOS["two_ranks"]
    data, pieces = all_rows(spec)
    want = multilabel_metrics(data["scores"], data["targets"], data["mask"], **spec["options"])
    for sharded in (True, False):
        evaluator = MultilabelEvaluator(spec["c"], sharded=sharded, **spec["options"])
        for piece in pieces:
            evaluator.update(*piece)
        assert evaluator.compute() == want


# ------------------------------------------------------------------------------ DDP
@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("sharded")
    repo_root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [repo_root, os.environ.get("PYTHONPATH")])),
               OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, str(WORKER), str(out)], env=env, capture_output=True, text=True,
                          timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.mark.ddp
@pytest.mark.parametrize("name", list(worker.SCENARIOS))
def test_sharded_equals_sklearn_and_single_process(ddp_results, name):
    spec = worker.SCENARIOS[name]
    data, pieces = all_rows(spec)
    assert spec["n"] % 2 == 1  # odd N
    options = spec["options"]
    scores = torch.cat([p[0] for p in pieces])  # float64 if any rank's rows are
    want = reference(scores.numpy(), data["targets"].numpy(), data["mask"].numpy(), **options)
    single_evaluator = MultilabelEvaluator(spec["c"], **options)
    for piece in pieces:
        single_evaluator.update(*piece)
    single = json.loads(json.dumps(single_evaluator.compute()))
    assert_matches(single, want, f"{name} single process")

    shards = class_shards(spec["c"], len(spec["ranks"]))
    for position, rank in enumerate(spec["ranks"]):
        got = json.loads((ddp_results / f"{name}.rank{rank}.json").read_text())
        where = f"{name} rank {rank}"
        assert_matches(got["sharded"], want, where)
        assert got["sharded"] == single, f"{where}: sharded differs from one process"
        assert got["small_rounds"] == single, f"{where}: many exchange rounds differ from one process"
        assert got["sharded_gather_calls"] == 0, f"{where}: the sharded path gathered the matrices"
        if "gathered" in got:
            assert got["gathered"] == single, f"{where}: torchmetrics' gather differs"
            assert got["gathered_gather_calls"] > 0
        own_rows = sum(sum(1 for _ in range(s.start, s.stop)) for s in worker.rank_rows(spec, rank))
        start, stop = shards[position]
        for stats in (got["stats"], got["small_rounds_stats"]):
            assert stats["world_size"] == len(spec["ranks"]) and stats["rank"] == position
            assert stats["rows_local"] == own_rows and stats["rows_total"] == spec["n"]
            assert stats["classes"] == [start, stop]
            assert stats["shard_entries"] == spec["n"] * (stop - start)  # N x its classes, not N x C
        # with tiny rounds a rank held one class of N entries at a time
        assert got["small_rounds_stats"]["block_entries"] == (spec["n"] if stop > start else 0)
    if name == "two_ranks":
        assert got["small_rounds_stats"]["rounds"] > 1  # the exchange really went in rounds
