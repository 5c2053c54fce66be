"""Core v2 mechanisms, each against an independent reference:

- a toy vector-scoring model trained on one label set and tested on two evaluation sets
  with other label sets: each set gets its own metrics (equal to sklearn on the model's own
  scores for that set) and its own run record, written by the callback from ``Trainer.test``;
- a fixed-width model given a set of another width stops with one line;
- ``init_from`` loads a submodule from a checkpoint and from a run record, offline, and a
  frozen submodule does not change while the rest trains;
- honest seeds: two seeds give different first batches, one seed twice the same;
- per-item extras and ``load_images: false``; weighted train sampling;
- one cache file per split, replaced when stale.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import average_precision_score
from torch import nn

from datamodules.base import MultiLabelDataModule
from datamodules.extras import IndexArray, ItemExtra, SampleWeighting
from datamodules.index import LabelIndex, cache_path, load_index
from datamodules.label_space import LabelSpace
from datamodules.registry import DatasetReader, get_reader, register_reader
from fashionbench.errors import InputError
from fashionbench.models import Baseline, OptimConfig
from fashionbench.models.base import InitFrom, MultiLabelModule
from fashionbench.runner import RunRecorder

# Six labels, each a pure colour; "seen" labels train, "unseen" ones only appear in tests.
COLOURS = {"red": (1, 0, 0), "green": (0, 1, 0), "blue": (0, 0, 1),
           "yellow": (1, 1, 0), "cyan": (0, 1, 1), "magenta": (1, 0, 1)}
SEEN, UNSEEN = ["red", "green", "blue"], ["yellow", "cyan", "magenta"]
TASKS = {"seen": SEEN, "zsl": UNSEEN, "gzsl": SEEN + UNSEEN}


@register_reader
class ToyColourReader(DatasetReader):
    """``ROOT/<split>.txt``: ``image_path label label ...`` a line; a task picks the labels."""

    name = "toy-colours"
    splits = ("train", "test")
    default_split = "train"
    tasks = ("seen", "zsl", "gzsl")

    def annotation_files(self, root, split, year, task):
        return [Path(root) / f"{split}.txt"]

    def read(self, root, split, year, task):
        names = TASKS[task]
        paths, rows, cols = [], [], []
        for line in (Path(root) / f"{split}.txt").read_text().splitlines():
            path, *labels = line.split()
            wanted = [names.index(lab) for lab in labels if lab in names]
            if not wanted:
                continue  # an image with none of the task's labels is not in the split
            rows += [len(paths)] * len(wanted)
            cols += wanted
            paths.append(path)
        return LabelIndex.from_pairs("toy-colours", split, names, paths, [Path(p).stem for p in paths],
                                     np.array(rows), np.array(cols),
                                     meta={"label_seen": [n in SEEN for n in names]},
                                     item_arrays={"number": np.arange(len(paths), dtype=np.int64)})


class ToyColourDataModule(MultiLabelDataModule):
    dataset_name = "toy-colours"


def write_toy(root: Path, n_train: int = 48, n_test: int = 30, seed: int = 0) -> Path:
    """Images whose colour is the mean of their labels' colours (plus noise)."""
    rng = np.random.default_rng(seed)
    (root / "img").mkdir(parents=True)
    for split, n, pool in (("train", n_train, SEEN), ("test", n_test, SEEN + UNSEEN)):
        lines = []
        for i in range(n):
            labels = list(rng.choice(pool, size=int(rng.integers(1, 3)), replace=False))
            colour = np.mean([COLOURS[lab] for lab in labels], axis=0)
            pixels = np.clip(colour + rng.normal(0, 0.05, (8, 8, 3)), 0, 1)
            path = f"img/{split}_{i:03d}.png"
            Image.fromarray((pixels * 255).astype(np.uint8)).save(root / path)
            lines.append(" ".join([path, *labels]))
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def toy_vectors(root: Path) -> Path:
    path = root / "colours.npz"
    np.savez(path, names=np.array(list(COLOURS)), vectors=np.array(list(COLOURS.values()), dtype=np.float32))
    return path


class ColourScorer(MultiLabelModule):
    """Scores a label by the dot product of a learned map of the mean colour with its vector."""

    scores_label_vectors = True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.proj = nn.Linear(3, 3)

    def forward_batch(self, batch, label_space):
        colour = batch["image"].mean(dim=(2, 3))
        vectors = torch.as_tensor(label_space.vectors, device=colour.device)
        return 6 * self.proj(colour) @ (vectors - 0.5).T


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory):
    return write_toy(tmp_path_factory.mktemp("toy") / "data")


def toy_dm(root, cache, **kwargs):
    options = dict(root=str(root), task="seen", batch_size=8, num_workers=0, image_size=8, cache_dir=str(cache),
                   train_transform={"hflip": 0.0}, eval_transform={"mean": (0, 0, 0), "std": (1, 1, 1)},
                   test_sets={"zsl": {"split": "test", "task": "zsl"}, "gzsl": {"split": "test", "task": "gzsl"}},
                   val_split="test", embeddings=str(toy_vectors(Path(root))))
    options.update(kwargs)
    return ToyColourDataModule(**options)


def quiet_trainer(**kwargs):
    options = dict(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                   enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0)
    options.update(kwargs)
    return pl.Trainer(**options)


def test_label_spaces_per_split(toy_root, tmp_path):
    dm = toy_dm(toy_root, tmp_path / "cache")
    train = dm.label_space
    assert train.names == SEEN and train.vectors.shape == (3, 3) and train.seen.tolist() == [True] * 3
    zsl, gzsl = (dm.eval_label_space(s) for s in dm.eval_sets("test"))
    assert zsl.names == UNSEEN and zsl.seen.tolist() == [False] * 3
    assert gzsl.names == SEEN + UNSEEN and gzsl.vectors.tolist() == [list(map(float, COLOURS[n])) for n in gzsl.names]
    # training frequencies: positives / images of the seen task, counted from the list file
    lines = [line.split()[1:] for line in (toy_root / "train.txt").read_text().splitlines()]
    expected = [sum(name in labels for labels in lines) / len(lines) for name in SEEN]
    np.testing.assert_allclose(train.frequencies, expected)
    np.testing.assert_allclose(gzsl.frequencies[3:], 0.0)
    assert train.subset(["blue", "red"]).vectors.tolist() == [[0, 0, 1], [1, 0, 0]]


def test_vector_model_tests_two_eval_sets_each_with_its_own_metrics_and_record(toy_root, tmp_path):
    pl.seed_everything(0, verbose=False)
    dm = toy_dm(toy_root, tmp_path / "cache")
    model = ColourScorer(label_space=dm.label_space, optim=OptimConfig(name="adam", lr=0.05))
    recorder = RunRecorder(paper="toy", row="colour scorer", runs_dir=str(tmp_path / "runs"))
    trainer = quiet_trainer(max_epochs=15, callbacks=[recorder])
    trainer.fit(model, dm)
    trainer.test(model, dm, verbose=False)
    records = sorted((json.loads(p.read_text()) for p in recorder.written), key=lambda r: r["task"])
    assert [r["task"] for r in records] == ["gzsl", "zsl"] and [r["eval_set"] for r in records] == ["gzsl", "zsl"]
    model.eval()
    for record, eval_set in zip(records, sorted(dm.eval_sets("test"), key=lambda s: s.name)):
        index = dm.eval_index(eval_set)
        assert record["label_names"] == TASKS[eval_set.name] and record["n_test"] == len(index)
        # reference: sklearn on the model's own scores for the set's images
        batch = {"image": torch.stack([dm.eval_transform(Image.open(toy_root / p).convert("RGB")) for p in index.image_paths])}
        with torch.no_grad():
            scores = torch.sigmoid(model.forward_batch(batch, dm.eval_label_space(eval_set))).numpy()
        targets = index.dense_targets()
        ap = [average_precision_score(targets[:, c], scores[:, c]) for c in range(targets.shape[1]) if targets[:, c].any()]
        assert record["metrics"]["mAP"] == pytest.approx(np.mean(ap), abs=1e-6)
        assert trainer.callback_metrics[f"test/{eval_set.name}/mAP"].item() == pytest.approx(np.mean(ap), abs=1e-6)
    zsl = records[1]["metrics"]["mAP"]
    assert zsl > 0.8, f"the colour map should transfer to unseen colours, mAP {zsl:.3f}"


def test_fixed_width_model_on_other_labels_stops_with_one_line(toy_root, tmp_path):
    dm = toy_dm(toy_root, tmp_path / "cache")
    model = Baseline(backbone="resnet10t", pretrained=False, label_space=dm.label_space)
    with pytest.raises(InputError, match=r"fixed output of 3 labels.*'zsl'.*3 other labels"):
        quiet_trainer().test(model, dm, verbose=False)


def test_vector_model_without_vectors_is_one_line(toy_root, tmp_path):
    dm = toy_dm(toy_root, tmp_path / "cache", embeddings=None)
    with pytest.raises(InputError, match="embeddings"):
        quiet_trainer().test(ColourScorer(label_space=dm.label_space), dm, verbose=False)


# ----------------------------------------------------------------------------- init_from
class TwoPart(MultiLabelModule):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.encoder = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(4, self.num_labels)

    def forward(self, images):
        return self.head(self.encoder(images))


def test_init_from_loads_a_submodule_offline_and_freezes_it(toy_root, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    dm = toy_dm(toy_root, tmp_path / "cache", test_sets=None, val_split="test", embeddings=None)
    first = TwoPart(label_space=dm.label_space, optim=OptimConfig(name="adam", lr=0.01))  # a dataclass in the hparams
    trainer = quiet_trainer(max_epochs=1)
    trainer.fit(first, dm)
    ckpt = tmp_path / "first.ckpt"
    trainer.save_checkpoint(ckpt)
    record = tmp_path / "record.json"
    record.write_text(json.dumps({"checkpoint": str(ckpt)}))
    for source in (str(ckpt), str(record)):
        second = TwoPart(label_space=dm.label_space, optim=OptimConfig(name="adam", lr=0.05),
                         init_from=[InitFrom(checkpoint=source, source_prefix="encoder.", target="encoder", freeze=True)])
        head_before = second.head.weight.detach().clone()
        quiet_trainer(max_epochs=2).fit(second, dm)
        for (name, a), b in zip(first.encoder.state_dict().items(), second.encoder.state_dict().values()):
            assert torch.equal(a, b), name  # loaded, and frozen: BN statistics did not move either
        assert not any(p.requires_grad for p in second.encoder.parameters())
        assert not torch.equal(head_before, second.head.weight)  # the rest trained


def test_init_from_errors_are_one_line(tmp_path):
    model = TwoPart(num_labels=3, init_from=[InitFrom(checkpoint="stage:cam")])
    with pytest.raises(InputError, match="fashionbench reproduce"):
        model.apply_init_from()
    torch.save({"state_dict": {"encoder.0.weight": torch.zeros(4, 3, 3, 3)}}, tmp_path / "x.ckpt")
    model = TwoPart(num_labels=3, init_from=[InitFrom(checkpoint=str(tmp_path / "x.ckpt"), source_prefix="encoder.", target="encoder")])
    with pytest.raises(InputError, match=r"x.ckpt: init_from: checkpoint does not fit 'encoder': 5 missing keys"):
        model.apply_init_from()


# ----------------------------------------------------------------------------- seeds
def first_batch_indices(root, cache, seed):
    pl.seed_everything(seed, verbose=False)
    dm = toy_dm(root, cache, seed=123, train_transform={"hflip": 0.5})
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    return batch["index"].tolist(), batch["image"]


def test_seed_everything_drives_data_order_and_augmentation(toy_root, tmp_path, monkeypatch):
    a1, img_a1 = first_batch_indices(toy_root, tmp_path / "c", 1)
    a2, img_a2 = first_batch_indices(toy_root, tmp_path / "c", 1)
    b, _ = first_batch_indices(toy_root, tmp_path / "c", 2)
    assert a1 == a2 and torch.equal(img_a1, img_a2)
    assert a1 != b


# ----------------------------------------------------------------------------- extras and sampling
class MeanRed(ItemExtra):
    def __call__(self, image, row, index):
        return np.asarray(image, dtype=np.float32)[..., 0].mean().reshape(1) / 255.0


class OnlyFirstImages(SampleWeighting):
    def __call__(self, index):
        weights = np.zeros(len(index))
        weights[:2] = [1.0, 3.0]
        return weights


def test_extras_arrive_in_the_batch_and_images_can_be_left_out(toy_root, tmp_path):
    dm = toy_dm(toy_root, tmp_path / "cache", load_images=False, extras={"red": MeanRed(), "number": IndexArray("number")})
    dm.setup("fit")
    batch = next(iter(dm.eval_dataloader("val")))
    assert "image" not in batch and batch["red"].shape == (8, 1) and batch["number"].tolist() == list(range(8))
    index = dm.val_index
    expected = [np.asarray(Image.open(toy_root / p).convert("RGB"), dtype=np.float32)[..., 0].mean() / 255 for p in index.image_paths[:8]]
    np.testing.assert_allclose(batch["red"][:, 0].numpy(), expected, rtol=1e-6)


def test_weighted_sampling_draws_by_the_weights(toy_root, tmp_path):
    pl.seed_everything(0, verbose=False)
    dm = toy_dm(toy_root, tmp_path / "cache", train_sampling=OnlyFirstImages(), load_images=False, batch_size=48)
    dm.setup("fit")
    drawn = torch.cat([b["index"] for _ in range(20) for b in dm.train_dataloader()]).numpy()
    assert set(drawn.tolist()) == {0, 1}
    assert np.mean(drawn == 1) == pytest.approx(0.75, abs=0.03)  # 3 / (1 + 3); 960 draws


def test_stale_cache_file_is_replaced_not_left_beside(toy_root, tmp_path):
    root = write_toy(tmp_path / "d", n_train=6, n_test=4)
    reader = get_reader("toy-colours")
    first = load_index(reader, root, "train", None, "seen", cache_dir=tmp_path / "cache")
    lines = (root / "train.txt").read_text().splitlines()
    (root / "train.txt").write_text("\n".join(lines[:-1]) + "\n")
    second = load_index(reader, root, "train", None, "seen", cache_dir=tmp_path / "cache")
    assert len(second) == len(first) - 1
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [cache_path(reader, root, "train", None, "seen").name]


def test_label_space_rejects_inconsistent_facts():
    with pytest.raises(ValueError, match="vectors"):
        LabelSpace(["a", "b"], vectors=np.zeros((3, 4)))
    space = LabelSpace(["a", "b", "c"], parents=["x", "y", "x"])
    assert space.parent_names == ["x", "y"] and space.parent_index.tolist() == [0, 1, 0]


# ----------------------------------------------------------------------------- stage chaining
def test_reproduce_runs_stages_in_order_and_hands_on_checkpoints(tmp_path, monkeypatch):
    """Two stages and two seeds: stage 2 of seed s gets stage 1's checkpoint of seed s
    (read from the run record stage 1 wrote); a failed run is reported, the rest go on."""
    import subprocess as sp

    import yaml

    import fashionbench.reproduce as reproduce
    from helpers import make_record

    paper = tmp_path / "benchmarks" / "toy"
    paper.mkdir(parents=True)
    data = {"class_path": "datamodules.voc.VOCDataModule", "init_args": {"year": 2007}}
    (paper / "cam.yaml").write_text(yaml.safe_dump({"model": {"class_path": "x.Cam"}, "data": data}))
    (paper / "cls.yaml").write_text(yaml.safe_dump({"model": {"class_path": "x.Cls", "init_args": {"init_from": [
        {"checkpoint": "stage:cam", "target": "generator", "freeze": True}]}}, "data": data}))
    (paper / "broken.yaml").write_text(yaml.safe_dump({"model": {"class_path": "x.Bad"}, "data": data}))
    (paper / "paper.yaml").write_text(yaml.safe_dump({"paper": "toy", "tables": {"t": {"columns": ["mAP"]}}, "reproduce": {
        "table1": {"tables": ["t"], "runs": [{"config": "cam.yaml", "id": "cam"}, {"config": "broken.yaml"}, {"config": "cls.yaml"}]}}}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(reproduce, "ensure_synthetic", lambda dataset, year: None)
    calls = []

    def fake_run(command, env=None):
        calls.append(command)
        config = command[command.index("--config") + 1]
        seed = command[command.index("--seed_everything") + 1]
        runs = Path(command[command.index("--record.runs_dir") + 1])
        runs.mkdir(exist_ok=True)
        if config.endswith("broken.yaml"):
            return sp.CompletedProcess(command, 1)
        record = make_record(int(seed), 0.5, paper="toy", table="t", row=Path(config).stem,
                             checkpoint=f"/ckpt/{Path(config).stem}-s{seed}.ckpt")
        path = runs / f"{Path(config).stem}-{seed}.json"
        path.write_text(json.dumps(record))
        with open(env["FASHIONBENCH_RECORD_LIST"], "a") as handle:  # what the RunRecorder does
            handle.write(f"{path}\n")
        decoy = make_record(0, 0.1, paper="other", table="t", row="x", checkpoint="/ckpt/someone-else.ckpt")
        (runs / f"zz-decoy-{len(calls)}.json").write_text(json.dumps(decoy))  # a concurrent run's record
        if config.endswith("cls.yaml"):
            overrides = [command[i + 1] for i, a in enumerate(command) if a == "--config" and "stage-" in command[i + 1]]
            calls[-1] = (command, yaml.safe_load(Path(overrides[0]).read_text()))
        return sp.CompletedProcess(command, 0)

    monkeypatch.setattr(reproduce.subprocess, "run", fake_run)
    with pytest.raises(InputError, match="2 of 6 runs failed: toy / broken seed 1, toy / broken seed 2"):
        reproduce.reproduce("toy", seeds=[1, 2], runs_dir=str(tmp_path / "runs"))
    stage2 = [c for c in calls if isinstance(c, tuple)]
    assert [c[1]["model"]["init_args"]["init_from"] for c in stage2] == [
        [{"checkpoint": "/ckpt/cam-s1.ckpt", "target": "generator", "freeze": True}],
        [{"checkpoint": "/ckpt/cam-s2.ckpt", "target": "generator", "freeze": True}],
    ]
    assert (tmp_path / "results" / "tables" / "toy_table1.md").is_file()  # rendered despite the failures
