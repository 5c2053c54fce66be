"""End to end through the `fashionbench` command on synthetic VOC: fit -> test of the best
checkpoint -> run record -> leaderboard; the record's mAP is sklearn's on the predictions
that `predict` writes for the same checkpoint, and `score` gives the record's numbers; a
2-process DDP test (odd number of test images; ranks forked by ``ddp_fork`` inside its own
subprocess) gives the single-process numbers and a record that says 2 processes ran."""
import glob
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from fashionbench.records import REQUIRED_KEYS

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "--config", REPO / "benchmarks/baseline/voc2007.yaml", "--config", REPO / "benchmarks/smoke.yaml",
    "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3", "--trainer.enable_progress_bar", "false",
    "--data.init_args.num_workers", "0", "--data.init_args.batch_size", "8",
]


def fashionbench(*args, cwd):
    result = subprocess.run([sys.executable, "-m", "fashionbench.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """One tiny fit on 43 synthetic VOC images; returns (data root, runs dir, record, checkpoint)."""
    from datamodules.synth import write_synthetic

    tmp = tmp_path_factory.mktemp("runner")
    root = write_synthetic("voc", tmp / "voc", images=43, seed=3)
    runs = tmp / "runs"
    fashionbench("fit", *TINY, "--data.init_args.root", root, "--record.runs_dir", runs,
                 "--trainer.logger", "false", "--checkpoint.dirpath", tmp / "ckpt", cwd=tmp)
    (record_path,) = glob.glob(str(runs / "*.json"))
    (ckpt,) = glob.glob(str(tmp / "ckpt" / "*.ckpt"))
    return root, runs, json.loads(Path(record_path).read_text()), ckpt, tmp


@pytest.fixture(scope="module")
def test_split(fitted):
    """The reader's own account of the test split (``data summary``), independent of any run."""
    from datamodules.summary import summarize

    return summarize("voc", fitted[0], split="test")


@pytest.fixture(scope="module")
def predictions(fitted):
    """``fashionbench predict`` of the fitted checkpoint: the score file's path."""
    root, runs, record, ckpt, tmp = fitted
    fashionbench("predict", *TINY, "--data.init_args.root", root, "--ckpt_path", ckpt,
                 "--record.predictions_dir", tmp / "pred", "--trainer.logger", "false", cwd=tmp)
    (npz,) = glob.glob(str(tmp / "pred" / "*.npz"))
    return npz


def sklearn_map(npz: str) -> tuple[float, list]:
    """mAP by sklearn on a score file: AP per class over its known entries, classes without a
    known positive left out (metrics.md, empty_class: exclude)."""
    with np.load(npz) as data:
        scores, targets, mask = data["scores"].astype(np.float64), data["targets"], data["mask"].astype(bool)
    ap = [average_precision_score(targets[mask[:, c], c], scores[mask[:, c], c]) if targets[mask[:, c], c].sum() else None
          for c in range(scores.shape[1])]
    return float(np.mean([v for v in ap if v is not None])), ap


@pytest.mark.slow
def test_fit_writes_a_complete_record(fitted, test_split, predictions):
    root, runs, record, ckpt, tmp = fitted
    assert set(REQUIRED_KEYS) <= set(record)
    assert record["n_test"] == test_split["images"]
    assert record["data_source"] == "synthetic" and record["dataset"] == "voc2007" and record["split"] == "test"
    assert record["paper"] == "baseline" and record["model"] == "Baseline [resnet10t]"
    assert record["config"]["model"]["init_args"]["backbone"] == "resnet10t"
    # the record names the checkpoint it tested, the one process that ran, no skipped image, no named set
    assert record["checkpoint"] == str(Path(ckpt).resolve())
    assert record["hardware"].startswith("1x cpu")
    assert record["skipped_images"] == [] and record["eval_set"] is None
    # the record's mAP is sklearn's on the predictions of that checkpoint
    with np.load(predictions) as data:
        assert data["scores"].shape == (test_split["images"], 20)
        assert (data["targets"].astype(bool) & data["mask"].astype(bool)).sum(axis=0).tolist() == test_split["positives"]
    expected_map, expected_ap = sklearn_map(predictions)
    assert record["metrics"]["mAP"] == pytest.approx(expected_map, abs=1e-6)
    assert len(record["metrics"]["AP"]) == 20
    for got, want in zip(record["metrics"]["AP"], expected_ap):
        assert (got is None and want is None) or got == pytest.approx(want, abs=1e-6)

    fashionbench("leaderboard", "--runs", runs, "--out", tmp / "board", cwd=tmp)
    assert "| Baseline [resnet10t] | voc2007 | multilabel | test | synthetic | mAP |" in (tmp / "board" / "leaderboard.md").read_text()


@pytest.mark.slow
def test_predict_then_score_matches_the_record(fitted, predictions):
    root, runs, record, ckpt, tmp = fitted
    scored = json.loads(fashionbench("score", predictions, cwd=tmp).stdout)
    for key in ("mAP", "CF1", "OF1", "CF1@3", "P@3"):
        assert scored[key] == pytest.approx(record["metrics"][key], abs=1e-6), key


@pytest.mark.slow
@pytest.mark.ddp
def test_ddp_test_equals_single_process(fitted, test_split):
    """21 test images over 2 ranks: 11 + 10, no padded duplicate is scored. The ranks are
    forked (``ddp_fork``) from the `fashionbench test` subprocess, so they do not re-import torch."""
    root, runs, record, ckpt, tmp = fitted
    ddp_runs = tmp / "ddp_runs"
    fashionbench("test", *TINY, "--data.init_args.root", root, "--ckpt_path", ckpt, "--record.runs_dir", ddp_runs,
                 "--trainer.devices", "2", "--trainer.strategy", "ddp_fork", "--trainer.logger", "false", cwd=tmp)
    (path,) = glob.glob(str(ddp_runs / "*.json"))
    ddp = json.loads(Path(path).read_text())
    assert test_split["images"] % 2 == 1  # uneven shards
    assert ddp["n_test"] == test_split["images"]
    assert ddp["hardware"].startswith("2x cpu")  # the world size torch.distributed reported, not the config's
    assert ddp["checkpoint"] == str(Path(ckpt).resolve())
    assert ddp["skipped_images"] == [] and ddp["eval_set"] is None
    for key in ("mAP", "PR-AUC", "CF1", "OF1", "OP@3", "F1@3"):
        assert ddp["metrics"][key] == pytest.approx(record["metrics"][key], abs=1e-6), key
    assert ddp["metrics"]["AP"] == pytest.approx(record["metrics"]["AP"], abs=1e-6)
