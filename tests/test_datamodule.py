"""MultiLabelDataModule / LabelIndexDataset / transforms: linked attributes before setup,
item and batch shapes, mask semantics, unpadded DDP eval sampling, missing images."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from PIL import Image

from datamodules.base import LabelIndexDataset, load_image
from datamodules.coco import COCODataModule
from datamodules.registry import get_reader
from datamodules.synth import write_synthetic
from datamodules.transforms import CutoutPIL, build_transform
from datamodules.readers.voc import VOC_CLASSES
from datamodules.voc import VOCDataModule
from fashionbench.errors import InputError

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory):
    return write_synthetic("voc", tmp_path_factory.mktemp("dm") / "voc", images=43, seed=1)


@pytest.fixture()
def voc_dm(voc_root, tmp_path):
    return VOCDataModule(str(voc_root), batch_size=4, num_workers=0, image_size=32, cache_dir=str(tmp_path / "cache"))


def class_file_values(root, split):
    """{(image id, class index): value} straight from the synthetic class files."""
    main = Path(root) / "VOCdevkit/VOC2007/ImageSets/Main"
    out = {}
    for c, name in enumerate(VOC_CLASSES):
        for line in (main / f"{name}_{split}.txt").read_text().splitlines():
            image_id, value = line.split()
            out[image_id, c] = int(value)
    return out


def test_linked_attributes_work_before_setup(voc_dm, voc_root):
    assert voc_dm.num_labels == 20 and voc_dm.label_names == list(VOC_CLASSES)
    assert voc_dm.dataset_name == "voc" and voc_dm.task == "multilabel" and voc_dm.year == 2007
    assert voc_dm.is_synthetic and voc_dm.single_label is False
    values = class_file_values(voc_root, "trainval")
    ids = sorted({i for i, _ in values})
    pos = np.array([sum(values[i, c] == 1 for i in ids) for c in range(20)])
    known = np.array([sum(values[i, c] != 0 for i in ids) for c in range(20)])
    np.testing.assert_allclose(voc_dm.label_frequencies, np.where(known > 0, pos / np.maximum(known, 1), 0))
    assert voc_dm.n_train == len(ids) and voc_dm.n_test == 43 // 2


def test_items_and_mask_semantics(voc_dm, voc_root):
    voc_dm.setup("fit")
    dataset = voc_dm.train_dataloader().dataset
    values = class_file_values(voc_root, "trainval")
    for i in range(len(dataset)):
        item = dataset[i]
        assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
        assert item["target"].shape == (20,) and item["target"].dtype == torch.float32
        assert item["mask"].dtype == torch.bool and int(item["index"]) == i
        image_id = dataset.index.image_ids[i]
        want = [values[image_id, c] for c in range(20)]
        assert item["target"].tolist() == [1.0 if v == 1 else 0.0 for v in want]
        assert item["mask"].tolist() == [v != 0 for v in want]  # 0 = difficult = masked


def test_batches(voc_dm):
    voc_dm.setup("fit")
    batch = next(iter(voc_dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 32) and batch["target"].shape == (4, 20)
    assert batch["mask"].shape == (4, 20) and batch["index"].dtype == torch.long
    assert set(torch.unique(batch["target"]).tolist()) <= {0.0, 1.0}
    val = voc_dm.val_dataloader()
    assert val.sampler.__class__.__name__ == "SequentialSampler"
    assert sum(b["index"].numel() for b in val) == voc_dm.n_val


def test_limits_are_seeded_subsets(voc_root, tmp_path):
    kw = dict(num_workers=0, image_size=32, cache_dir=str(tmp_path), limit_train_images=5, limit_eval_images=3)
    a, b = VOCDataModule(str(voc_root), seed=0, **kw), VOCDataModule(str(voc_root), seed=0, **kw)
    c = VOCDataModule(str(voc_root), seed=1, **kw)
    assert a.n_train == 5 and a.n_val == 3 and a.n_test == 3
    assert a.train_index.image_ids == b.train_index.image_ids != c.train_index.image_ids
    full = a.split_index("trainval")
    assert set(a.train_index.image_ids) < set(full.image_ids)


def test_unrepeated_sampler_covers_each_index_once():
    dataset = list(range(7))
    shards = [list(UnrepeatedDistributedSampler(dataset, num_replicas=2, rank=r, shuffle=False)) for r in (0, 1)]
    assert shards == [[0, 2, 4, 6], [1, 3, 5]]
    assert sorted(shards[0] + shards[1]) == dataset


def test_eval_loaders_do_not_pad_under_ddp(voc_dm, monkeypatch):
    voc_dm.setup("test")
    n = voc_dm.n_test
    assert n % 2 == 1  # odd: a padding sampler would repeat one image
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda *a: 2)
    seen = []
    for rank in (0, 1):
        monkeypatch.setattr(torch.distributed, "get_rank", lambda *a, r=rank: r)
        loader = voc_dm.test_dataloader()
        assert isinstance(loader.sampler, UnrepeatedDistributedSampler) and not loader.sampler.shuffle
        seen += [int(i) for b in loader for i in b["index"]]
    assert sorted(seen) == list(range(n))


def test_coco_datamodule_and_missing_image(tmp_path):
    root = write_synthetic("coco", tmp_path / "coco", images=30, seed=2)
    dm = COCODataModule(str(root), num_workers=0, image_size=32, cache_dir=str(tmp_path / "c"))
    assert dm.num_labels == 80 and dm.label_names[0] == "person" and dm.dataset_name == "coco"
    assert dm.test_split == "val" and dm.is_synthetic
    with_empty = COCODataModule(str(root), num_workers=0, image_size=32, cache_dir=str(tmp_path / "c"), include_empty=True)
    assert with_empty.n_train > dm.n_train
    # the real COCO fixture has annotations but no JPEGs: the first access names the file
    real = COCODataModule(str(FIXTURES / "coco"), year=2017, train_split="val", num_workers=0,
                          image_size=32, cache_dir=str(tmp_path / "c"))
    assert not real.is_synthetic and real.n_train == 5
    real.setup("fit")
    with pytest.raises(InputError) as err:
        real.train_dataloader().dataset[0]
    assert str(err.value) == f"{FIXTURES / 'coco' / 'val2017' / '000000128372.jpg'}: missing image file"


def test_real_voc_jpegs_load(tmp_path):
    # 000001.jpg is a progressive JPEG (re-encoded upstream)
    index = get_reader("voc").read(FIXTURES / "voc", "test", 2007, "multilabel")
    dataset = LabelIndexDataset(index, FIXTURES / "voc", build_transform(64, False))
    item = dataset[0]
    assert item["image"].shape == (3, 64, 64)
    assert item["target"][VOC_CLASSES.index("dog")] == 1 and item["target"][VOC_CLASSES.index("person")] == 1
    assert load_image(FIXTURES / "voc/VOCdevkit/VOC2007/JPEGImages/000001.jpg").size == (353, 500)


# --------------------------------------------------------------------------- transforms
def test_eval_transform_squashes_deterministically():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 80, 3), dtype=np.uint8))
    t = build_transform(24, False)
    out = t(image)
    assert out.shape == (3, 24, 24) and torch.equal(out, t(image))
    # the mean/std normalisation: a constant grey 0.5 image maps to (0.5 - mean) / std
    grey = Image.new("RGB", (30, 20), (128, 128, 128))
    np.testing.assert_allclose(t(grey)[:, 0, 0].numpy(), (128 / 255 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225]), rtol=1e-5)
    assert build_transform(24, False, resize="shorter_side_crop")(image).shape == (3, 24, 24)


def test_train_transform_options():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 80, 3), dtype=np.uint8))
    for kwargs in ({}, {"scale": (0.5, 1.0)}, {"randaugment": "rand-m9-mstd0.5", "cutout": 0.5},
                   {"resize": "shorter_side_crop", "hflip": 0.0}):
        assert build_transform(32, True, **kwargs)(image).shape == (3, 32, 32)
    with pytest.raises(InputError, match="unknown resize"):
        build_transform(32, True, resize="letterbox")


def test_cutout_fills_one_patch_of_the_given_size():
    random.seed(0)
    image = Image.new("RGB", (40, 40), (10, 20, 30))
    out = np.asarray(CutoutPIL(0.5)(image))
    changed = np.any(out != np.array([10, 20, 30]), axis=2)
    rows, cols = np.nonzero(changed)
    assert 0 < changed.sum() <= 21 * 21  # at most a (20+1)-pixel square (rectangle includes its end)
    assert changed.sum() == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)  # one rectangle
    assert len({tuple(out[r, c]) for r, c in zip(rows, cols)}) == 1  # one fill colour
    assert np.asarray(image).max() == 30  # input untouched


DDP_SCRIPT = r'''
import json, sys, torch
import lightning.pytorch as pl
from datamodules.voc import VOCDataModule

class Recorder(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.seen = []
    def validation_step(self, batch, batch_idx):
        self.seen += batch["index"].tolist()
    def on_validation_epoch_end(self):
        gathered = [None, None]
        torch.distributed.all_gather_object(gathered, self.seen)
        if self.global_rank == 0:
            with open(sys.argv[2], "w") as fh:
                json.dump(gathered, fh)

if __name__ == "__main__":
    dm = VOCDataModule(sys.argv[1], batch_size=4, num_workers=0, image_size=16, cache_dir=sys.argv[3])
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp_fork", logger=False,
                         enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    trainer.validate(Recorder(), datamodule=dm)
'''


@pytest.mark.ddp
@pytest.mark.slow
def test_lightning_ddp_validation_scores_each_image_once(voc_root, tmp_path):
    """A real 2-process gloo run: Lightning keeps our unpadded sampler; 21 images, none twice."""
    import json
    import os
    import subprocess
    import sys

    script = tmp_path / "ddp_validate.py"
    script.write_text(DDP_SCRIPT)
    out = tmp_path / "seen.json"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(script), str(voc_root), str(out), str(tmp_path / "cache")],
                          env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shards = json.loads(out.read_text())
    n_val = len((voc_root / "VOCdevkit/VOC2007/ImageSets/Main/test.txt").read_text().split())
    assert n_val == 21 and [len(s) for s in shards] == [11, 10]
    assert sorted(shards[0] + shards[1]) == list(range(n_val))
