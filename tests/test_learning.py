"""End to end on synthetic VOC (``datamodules.synth``, the real on-disk format): the
Baseline and CMSG, tiny backbone without pretrained weights, a few CPU epochs, must reach a
test mAP well above chance.

Chance is computed here from the test split's labels: a scorer that ignores the image
ranks positives at random, and the expected AP of a random ranking is the class's positive
rate; chance mAP is their mean over the classes with a positive (``empty_class:
exclude``, the evaluators' default).
"""
from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from datamodules.synth import write_synthetic
from datamodules.voc import VOCDataModule
from fashionbench.models import Baseline, OptimConfig
from fashionbench.models.cmsg import CMSG

pytestmark = pytest.mark.slow

VOC_GLOVE = Path(__file__).resolve().parents[1] / "benchmarks" / "cmsg" / "embeddings" / "voc_glove300.npz"
EPOCHS = 8


@pytest.fixture(autouse=True)
def two_threads_then_restored(monkeypatch):
    """Trains on 2 threads, then gives later tests back the thread count, the deterministic-
    algorithms flag (``Trainer(deterministic=True)`` sets it process-wide) and the environment
    variables that ``seed_everything`` and that flag write."""
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    for name in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS", "CUBLAS_WORKSPACE_CONFIG"):
        monkeypatch.setenv(name, "set-by-test")  # registered with monkeypatch even when unset,
        monkeypatch.delenv(name)                 # so whatever the run writes is undone
    torch.set_num_threads(2)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
    assert torch.get_num_threads() == threads


@pytest.fixture(scope="module")
def synthetic_voc(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "voc"
    write_synthetic("voc", root, images=400, seed=0)  # 200 trainval / 200 test images
    return root


def _datamodule(root: Path, cache: Path) -> VOCDataModule:
    return VOCDataModule(root=str(root), batch_size=16, num_workers=0, image_size=64,
                         train_transform={"hflip": 0.5}, seed=0, cache_dir=str(cache))


def chance_map(dm: VOCDataModule) -> float:
    """Mean over classes with a known positive of (positives / known entries) on the test split."""
    index = dm.test_index
    targets, known = index.dense_targets().astype(bool), index.dense_mask()
    positives = (targets & known).sum(0)
    rate = positives / np.maximum(known.sum(0), 1)
    return float(rate[positives > 0].mean())


def _train_and_test(model: pl.LightningModule, dm: VOCDataModule) -> float:
    trainer = pl.Trainer(
        max_epochs=EPOCHS, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
        deterministic=True,
    )
    trainer.fit(model, dm)
    trainer.test(model, dm, verbose=False)
    return float(model.test_results["mAP"])


def _common(dm: VOCDataModule) -> dict:
    optim = OptimConfig(name="adam", lr=2e-3, weight_decay=0.0, schedule="onecycle", pct_start=0.2)
    return dict(num_labels=dm.num_labels, label_names=dm.label_names, optim=optim)


def _check(name: str, mAP: float, chance: float) -> None:
    print(f"{name}: test mAP {mAP:.3f} vs chance {chance:.3f}")
    assert mAP >= max(3 * chance, chance + 0.25), f"{name} did not learn: mAP {mAP:.3f}, chance {chance:.3f}"


def test_baseline_learns_synthetic_voc(synthetic_voc, tmp_path):
    pl.seed_everything(0, verbose=False)
    dm = _datamodule(synthetic_voc, tmp_path / "cache")
    model = Baseline(backbone="resnet10t", pretrained=False, **_common(dm))
    _check("Baseline", _train_and_test(model, dm), chance_map(dm))


def test_cmsg_learns_synthetic_voc(synthetic_voc, tmp_path):
    pl.seed_everything(0, verbose=False)
    dm = _datamodule(synthetic_voc, tmp_path / "cache")
    model = CMSG(backbone="resnet10t", pretrained=False, embeddings=str(VOC_GLOVE), hidden_dim=64, **_common(dm))
    _check("CMSG", _train_and_test(model, dm), chance_map(dm))
