"""Resume after a crash: a real `fashionbench fit` killed with SIGKILL in the middle of an
epoch, resumed with ``--ckpt_path last``, ends with the same metrics, the same weights and
the same run record as a run that was never interrupted.

Both runs are deterministic CPU runs of the same config (4 epochs x 3 batches of synthetic
VOC, ``num_workers: 0``, ``--checkpoint.save_last true``, the best checkpoint chosen by
``step`` so the tested one is the last epoch's, written after the resume), with
``fashionbench.resume.ResumableSeeds`` (the train order and augmentations of an epoch come
from (seed, epoch), not from the epochs before) and the test's ``StallAt`` callback, which
stalls the run to be killed after batch 1 of epoch 2 (0-based) -- once epoch 1's
``last.ckpt`` exists -- and does nothing in the other runs. The uninterrupted run goes
alongside the killed one; each run has its own working folder with the same relative
paths, so their configs are equal.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
FIT = [
    "fit", "--config", REPO / "benchmarks/baseline/voc2007.yaml", "--config", REPO / "benchmarks/smoke.yaml",
    "--trainer.max_epochs", "4", "--trainer.limit_train_batches", "3", "--trainer.enable_progress_bar", "false",
    "--trainer.logger", "false", "--data.init_args.num_workers", "0", "--data.init_args.batch_size", "4",
    "--record.runs_dir", "runs", "--checkpoint.dirpath", "ckpt", "--checkpoint.save_last", "true",
    "--checkpoint.monitor", "step", "--checkpoint.mode", "max",
]
CALLBACKS = """trainer:
  callbacks:
  - class_path: fashionbench.resume.ResumableSeeds
  - class_path: resume_stall.StallAt
"""
#: record fields that say when or where a run happened, not what it computed
RUN_SPECIFIC = {"started", "wall_s", "checkpoint", "config", "git_sha"}


def _env(**extra):
    tests = str(Path(__file__).resolve().parent)
    env = dict(os.environ, WANDB_MODE="offline", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", **extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [tests, str(REPO), os.environ.get("PYTHONPATH")]))
    env.pop("FB_STALL_AT", None)
    env.update(extra)
    return env


def _command(root: Path, config: Path, *extra) -> list[str]:
    return [sys.executable, "-m", "fashionbench.cli", *map(str, FIT), "--config", str(config),
            "--data.init_args.root", str(root), *extra]


def _record(run_dir: Path) -> dict:
    (path,) = (run_dir / "runs").glob("*.json")
    return json.loads(path.read_text())


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(tmp_path):
    from datamodules.synth import write_synthetic

    root = write_synthetic("voc", tmp_path / "voc", images=43, seed=3)
    config = tmp_path / "callbacks.yaml"
    config.write_text(CALLBACKS)
    whole, crashed = tmp_path / "whole", tmp_path / "crashed"
    whole.mkdir()
    crashed.mkdir()
    marker = tmp_path / "stalled"

    uninterrupted = subprocess.Popen(_command(root, config), cwd=whole, env=_env(), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
    doomed = subprocess.Popen(_command(root, config), cwd=crashed, env=_env(FB_STALL_AT=f"2:1:{marker}"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 480
        while not marker.exists():
            assert doomed.poll() is None, "the run to be killed ended before reaching epoch 2"
            assert time.monotonic() < deadline, "the run to be killed never reached epoch 2"
            time.sleep(0.5)
        doomed.send_signal(signal.SIGKILL)
        assert doomed.wait(timeout=60) == -signal.SIGKILL
    finally:
        if doomed.poll() is None:
            doomed.kill()
    last = crashed / "ckpt" / "last.ckpt"
    assert last.is_file()
    assert torch.load(last, map_location="cpu", weights_only=True)["epoch"] == 1  # killed after epoch 1's save
    assert not (crashed / "runs").exists() or not list((crashed / "runs").glob("*.json"))

    resumed = subprocess.run(_command(root, config, "--ckpt_path", "last"), cwd=crashed, env=_env(),
                             capture_output=True, text=True, timeout=480)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "Restored all states from the checkpoint" in resumed.stdout + resumed.stderr
    output, _ = uninterrupted.communicate(timeout=480)
    assert uninterrupted.returncode == 0, output[-3000:]

    want, got = _record(whole), _record(crashed)
    assert want["metrics"] == got["metrics"]  # exactly: every number and the per-class lists
    for key in sorted(set(want) | set(got)):
        if key not in RUN_SPECIFIC:
            assert got.get(key) == want.get(key), key
    # the tested checkpoint is the last epoch's, in the same place of each run's folder
    assert Path(want["checkpoint"]).relative_to(whole) == Path(got["checkpoint"]).relative_to(crashed)
    assert Path(got["checkpoint"]).name.startswith("epoch=3-")
    # the configs differ only in the resume flag
    assert got["config"].pop("ckpt_path") == "last" and want["config"].pop("ckpt_path") is None
    assert got["config"] == want["config"]
    # and the weights are the same to the bit
    a = torch.load(want["checkpoint"], map_location="cpu", weights_only=True)["state_dict"]
    b = torch.load(got["checkpoint"], map_location="cpu", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
