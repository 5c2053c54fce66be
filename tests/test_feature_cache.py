"""The frozen-feature cache (fashionbench/feature_cache.py): files and their atomic
writing, lookup by image id, and the property HMCN-F relies on: training the head on cached
features gives the same losses as training end to end through the frozen encoder (eval
mode), on tensors and through the datamodule + callback."""
from __future__ import annotations

import copy
import pickle
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

import datamodules.base as dm_base
from datamodules.deepfashion import DeepFashionDataModule
from datamodules.index import LabelIndex
from datamodules.label_space import LabelSpace
from datamodules.synth import write_synthetic
from fashionbench.errors import InputError
from fashionbench.feature_cache import (CachedFeatures, FeatureCache, FeatureCacheCallback, build_split_cache,
                                        encoder_fingerprint, ids_sha, write_feature_cache)
from fashionbench.models import OptimConfig
from fashionbench.models.hmcnf import HierarchicalHMCNF

HIERARCHY_10 = Path(__file__).resolve().parents[1] / "benchmarks" / "hmcnf" / "hierarchies" / "deepfashion_10.yaml"


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one thread is fastest, and on a shared machine far faster than two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def fake_batches(images: torch.Tensor, order: list[int], size: int):
    for start in range(0, len(order), size):
        rows = torch.tensor(order[start:start + size])
        yield {"image": images[rows], "index": rows}


def mean_rgb(images: torch.Tensor) -> torch.Tensor:
    return images.mean(dim=(2, 3)) * 2.0


def tiny_index(ids: list[str], split: str = "train") -> LabelIndex:
    return LabelIndex.from_class_ids("toy", split, ["a", "b"], [f"img/{i}.jpg" for i in ids], ids,
                                     np.arange(len(ids)) % 2)


# ----------------------------------------------------------------------------- files
@pytest.mark.parametrize("dtype,tol", [("float32", 0.0), ("float16", 1e-3)])
def test_write_and_open_round_trip(tmp_path, dtype, tol):
    images = torch.rand(7, 3, 4, 4)
    ids = [f"id{i}" for i in range(7)]
    stem = tmp_path / "c" / "train-x"
    cache = write_feature_cache(mean_rgb, fake_batches(images, [3, 0, 6, 1, 5, 2, 4], 3), ids, stem,
                                meta={"encoder": "mean"}, dtype=dtype)
    expected = (images.mean(dim=(2, 3)) * 2.0).numpy()
    assert cache.features.dtype == np.dtype(dtype) and cache.features.shape == (7, 3)
    np.testing.assert_allclose(np.asarray(cache.features, dtype=np.float64), expected, atol=tol, rtol=tol)
    again = FeatureCache.open(f"{stem}.json")
    assert again.image_ids == ids and again.meta["encoder"] == "mean" and again.meta["ids_sha"] == ids_sha(ids)
    assert isinstance(again.features, np.memmap)
    assert sorted(p.name for p in stem.parent.iterdir()) == ["train-x.ids.txt", "train-x.json", "train-x.npy"]
    assert again.rows_for(["id5", "id0"]).tolist() == [5, 0]
    with pytest.raises(InputError, match="not in the feature cache"):
        again.rows_for(["nope"])


def test_incomplete_or_doubled_rows_leave_no_cache(tmp_path):
    images = torch.rand(4, 3, 2, 2)
    ids = ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="never encoded"):
        write_feature_cache(mean_rgb, fake_batches(images, [0, 1, 2], 2), ids, tmp_path / "x")
    with pytest.raises(ValueError, match="twice"):
        write_feature_cache(mean_rgb, fake_batches(images, [0, 1, 1, 2, 3], 2), ids, tmp_path / "x")
    assert list(tmp_path.iterdir()) == []  # no partial or temporary file is left


def test_encoder_fingerprint_follows_the_weights():
    a = torch.nn.Linear(3, 2)
    b = copy.deepcopy(a)
    assert encoder_fingerprint(a) == encoder_fingerprint(b)
    with torch.no_grad():
        b.bias[0] += 1e-3
    assert encoder_fingerprint(a) != encoder_fingerprint(b)


# ----------------------------------------------------------------------------- the extra
def test_cached_features_extra_looks_rows_up_by_image_id(tmp_path):
    ids = [f"img{i:02d}" for i in range(6)]
    index = tiny_index(ids)
    features = torch.arange(6 * 3, dtype=torch.float32).reshape(6, 1, 3, 1).expand(6, 3, 3, 1)  # row i = [3i, 3i+1, 3i+2]
    extra = CachedFeatures(cache_dir=str(tmp_path), name="toy")
    stem = Path(extra.manifest_for("train", ids)).with_suffix("")
    write_feature_cache(lambda x: x[:, 0, :, 0], fake_batches(features, list(range(6)), 4), ids, stem)
    # unbound: found by (name, split, image ids)
    np.testing.assert_array_equal(extra(None, 4, index), [12.0, 13.0, 14.0])
    assert extra.needs_image is False and extra(None, 4, index).flags.writeable
    # a subset in another order, bound to the full split's cache: rows follow the ids
    subset = index.subset([5, 1, 3])
    with pytest.raises(InputError, match="no feature cache for split 'train'"):
        extra(None, 0, subset)
    extra.bind("train", ids_sha(subset.image_ids), f"{stem}.json")
    worker_copy = pickle.loads(pickle.dumps(extra))   # what a DataLoader worker gets
    for e in (extra, worker_copy):
        np.testing.assert_array_equal(np.stack([e(None, r, subset) for r in range(3)]),
                                      [[15, 16, 17], [3, 4, 5], [9, 10, 11]])
    with pytest.raises(InputError, match="name must be a plain folder name"):
        CachedFeatures(name="a/b")


# ----------------------------------------------------------------------------- cached == end to end
def _space():
    names = [f"c{i}" for i in range(6)]
    return LabelSpace(names, parents=["p0", "p0", "p1", "p1", "p2", "p2"], single_label=True)


@pytest.mark.parametrize("weighting", ["sum", "uncertainty"])
def test_cached_feature_training_gives_the_end_to_end_losses(tmp_path, weighting):
    torch.manual_seed(0)
    model = HierarchicalHMCNF(backbone="resnet10t", pretrained=False, label_space=_space(), embed_dim=16,
                              hidden_dim=16, local_dim=16, loss_weighting=weighting)
    images = torch.randn(12, 3, 32, 32)
    targets = torch.tensor([0, 1, 2, 3, 4, 5] * 2)
    ids = [f"i{n}" for n in range(12)]
    cache = write_feature_cache(model.encode, fake_batches(images, list(range(12)), 5), ids, tmp_path / "f")
    cached_rows = torch.from_numpy(np.array(cache.features))

    def train(net: HierarchicalHMCNF, use_cache: bool) -> list[float]:
        net.train()
        optimiser = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-2)
        torch.manual_seed(123)  # the same dropout masks in both runs
        losses = []
        for step in range(4):
            rows = torch.arange(step * 3, step * 3 + 6) % 12
            batch = {"target": targets[rows], "index": rows}
            batch.update({"features": cached_rows[rows]} if use_cache else {"image": images[rows]})
            loss = net.compute_loss(net.forward_batch(batch, net.label_space), batch)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        assert not net.encoder.training  # the encoder stayed in eval mode throughout
        return losses

    end_to_end = train(copy.deepcopy(model), use_cache=False)
    cached = train(copy.deepcopy(model), use_cache=True)
    np.testing.assert_allclose(cached, end_to_end, rtol=1e-5, atol=1e-6)
    assert end_to_end[0] != end_to_end[-1]  # it did train


# ----------------------------------------------------------------------------- datamodule + callback
@pytest.fixture(scope="module")
def synthetic_deepfashion(tmp_path_factory) -> Path:
    return write_synthetic("deepfashion", tmp_path_factory.mktemp("df") / "deepfashion", images=48, seed=0)


def _datamodule(root: Path, tmp: Path, cached: bool, workers: int = 0) -> DeepFashionDataModule:
    extras = {"features": CachedFeatures(cache_dir=str(tmp / "features"), name="t")} if cached else None
    return DeepFashionDataModule(str(root), batch_size=8, num_workers=workers, image_size=32, crop_to_box=True,
                                 train_transform={"hflip": 0.0}, cache_dir=str(tmp / "index"), seed=0,
                                 load_images=not cached, extras=extras)


class _Losses(pl.Callback):
    def __init__(self):
        self.values = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.values.append(float(outputs["loss"]))


@pytest.mark.slow
def test_callback_builds_the_caches_and_cached_fit_matches_image_fit(synthetic_deepfashion, tmp_path, monkeypatch):
    pl.seed_everything(0, verbose=False)
    dm_plain = _datamodule(synthetic_deepfashion, tmp_path, cached=False, workers=1)  # same workers, same order
    # a schedule that needs the number of steps makes Lightning start the train loader's
    # workers while configuring the optimiser: the cache must exist before that
    model = HierarchicalHMCNF(backbone="resnet10t", pretrained=False, label_space=dm_plain.label_space,
                              hierarchy=str(HIERARCHY_10), embed_dim=16, hidden_dim=16, local_dim=16,
                              loss_weighting="uncertainty", optim=OptimConfig(name="adam", lr=1e-3, schedule="cosine"))
    runs = {}
    for name, cached in (("images", False), ("cached", True)):
        dm = dm_plain if not cached else _datamodule(synthetic_deepfashion, tmp_path, cached=True, workers=1)
        recorder = _Losses()
        trainer = pl.Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False, callbacks=[recorder],
                             num_sanity_val_steps=0)
        net = copy.deepcopy(model)
        pl.seed_everything(0, verbose=False)
        trainer.fit(net, dm)
        runs[name] = recorder.values
        if cached:
            built = [c for c in trainer.callbacks if isinstance(c, FeatureCacheCallback)][0].built
            assert sorted(c.meta["split"] for c in built) == ["test", "train", "val"]
            assert {c.meta["encoder"] for c in built} == {"ResNet:resnet10t"}
            assert all(c.meta["crop_to_box"] and c.meta["image_size"] == 32 for c in built)
    assert len(runs["cached"]) == len(runs["images"]) > 2
    np.testing.assert_allclose(runs["cached"], runs["images"], rtol=1e-4, atol=1e-5)

    # a second cached datamodule reuses the files and decodes no image at all
    def no_decoding(*args, **kwargs):
        raise AssertionError("an image was decoded")

    monkeypatch.setattr(dm_base, "load_image", no_decoding)
    dm = _datamodule(synthetic_deepfashion, tmp_path, cached=True)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert "image" not in batch and batch["features"].shape == (8, model.num_features)
    manifests = sorted(p.name for p in (tmp_path / "features" / "t").glob("*.json"))
    assert len(manifests) == 3

    # other encoder weights: the stale cache is rebuilt in place (same files, new key and rows)
    monkeypatch.undo()
    extra = dm.extras["features"]
    old = build_split_cache(dm, dm.train_index, extra, model.encoder)
    changed = copy.deepcopy(model.encoder)
    with torch.no_grad():
        next(changed.parameters()).mul_(2.0)
    new = build_split_cache(dm, dm.train_index, extra, changed)
    assert new.manifest == old.manifest and new.key != old.key
    assert new.meta["weights"] == encoder_fingerprint(changed)
    assert not np.allclose(np.asarray(new.features), np.asarray(old.features))
    assert sorted(p.name for p in (tmp_path / "features" / "t").glob("*.json")) == manifests
