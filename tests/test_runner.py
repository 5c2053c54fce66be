"""End to end through the `fashionbench` command on synthetic VOC: fit -> test of the best
checkpoint -> run record -> leaderboard; predict -> `score` gives the record's numbers;
a 2-process DDP test (odd number of test images) gives the single-process numbers."""
import glob
import json
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.slow
def test_fit_writes_a_complete_record(fitted):
    root, runs, record, ckpt, tmp = fitted
    assert set(REQUIRED_KEYS) <= set(record)
    summary = json.loads(fashionbench("data", "summary", "voc", "--root", root, "--split", "test", cwd=tmp).stdout)
    assert record["n_test"] == summary["images"]
    assert record["data_source"] == "synthetic" and record["dataset"] == "voc2007" and record["split"] == "test"
    assert record["paper"] == "baseline" and record["model"] == "Baseline [resnet10t]"
    assert record["config"]["model"]["init_args"]["backbone"] == "resnet10t"
    assert len(record["metrics"]["AP"]) == 20 and 0 <= record["metrics"]["mAP"] <= 1

    fashionbench("leaderboard", "--runs", runs, "--out", tmp / "board", cwd=tmp)
    assert "| Baseline [resnet10t] | voc2007 | multilabel | test | synthetic | mAP |" in (tmp / "board" / "leaderboard.md").read_text()


@pytest.mark.slow
def test_predict_then_score_matches_the_record(fitted):
    root, runs, record, ckpt, tmp = fitted
    fashionbench("predict", *TINY, "--data.init_args.root", root, "--ckpt_path", ckpt,
                 "--record.predictions_dir", tmp / "pred", "--trainer.logger", "false", cwd=tmp)
    (npz,) = glob.glob(str(tmp / "pred" / "*.npz"))
    scored = json.loads(fashionbench("score", npz, cwd=tmp).stdout)
    for key in ("mAP", "CF1", "OF1", "CF1@3", "P@3"):
        assert scored[key] == pytest.approx(record["metrics"][key], abs=1e-6), key


@pytest.mark.slow
@pytest.mark.ddp
def test_ddp_test_equals_single_process(fitted):
    """21 test images over 2 ranks: 11 + 10, no padded duplicate is scored."""
    root, runs, record, ckpt, tmp = fitted
    ddp_runs = tmp / "ddp_runs"
    fashionbench("test", *TINY, "--data.init_args.root", root, "--ckpt_path", ckpt, "--record.runs_dir", ddp_runs,
                 "--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.logger", "false", cwd=tmp)
    (path,) = glob.glob(str(ddp_runs / "*.json"))
    ddp = json.loads(Path(path).read_text())
    assert record["n_test"] % 2 == 1
    assert ddp["hardware"].startswith("2x cpu")
    for key in ("mAP", "PR-AUC", "CF1", "OF1", "OP@3", "F1@3"):
        assert ddp["metrics"][key] == pytest.approx(record["metrics"][key], abs=1e-6), key
    assert ddp["metrics"]["AP"] == pytest.approx(record["metrics"]["AP"], abs=1e-6)
