"""The base multi-label datamodule and its dataset.

Flow (architecture.md): reader -> :class:`~datamodules.index.LabelIndex` (cached) ->
:class:`LabelIndexDataset` -> ``DataLoader``. A batch is a dict:

- ``image``  float ``[B, 3, H, W]`` (normalised; absent with ``load_images: false``),
- ``target`` float ``[B, C]`` in {0, 1} (multi-label) or long ``[B]`` (single-label),
- ``mask``   bool ``[B, C]``: True where the entry is known (scored/trained on),
- ``index``  long ``[B]``: the row of the split's (possibly limited) index,
- one float tensor per configured extra (``extras``: HOG, cached features, ...),
- ``skipped`` list of root-relative paths of this batch's bad images (``on_bad_image: skip``).

Label spaces: :attr:`MultiLabelDataModule.label_space` (train) is linked into the model by
the CLI; each evaluation set (``val_sets`` / ``test_sets``: name -> split + task) has its
own, so a zero-shot model can train on seen labels and be tested on unseen ones (``zsl``)
and on both (``gzsl``). Without those options there is one set per stage, from
``val_split`` / ``test_split`` and the datamodule's task.

Seeds: the train order, the augmentations and the workers' seeds follow
``seed_everything`` (``PL_GLOBAL_SEED``), so seeds differ in their batches, not only in
their initial weights; ``data.seed`` only picks the ``limit_*_images`` subsets (the same
images for every seed) and stands in when no global seed is set.

Eval loaders never pad under DDP: with a process group of world size > 1 they use
Lightning's ``UnrepeatedDistributedSampler`` so every image is scored exactly once
(Lightning leaves a ``DistributedSampler`` it finds alone); training uses Lightning's own
distributed sampler.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from PIL import Image
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler, default_collate

from datamodules.extras import ItemExtra, SampleWeighting
from datamodules.images import load_image
from datamodules.index import LabelIndex, load_index
from datamodules.label_space import LabelSpace
from datamodules.registry import get_reader
from datamodules.synth import MARKER_FILE
from datamodules.transforms import build_transform
from fashionbench.errors import InputError

__all__ = ["EvalSet", "load_image", "LabelIndexDataset", "MultiLabelDataModule", "collate_items", "seed_worker"]


class LabelIndexDataset(Dataset):
    """Items of one :class:`LabelIndex`; labels are made dense one row at a time.

    A bad image (missing, truncated, not an image, a bomb) raises the loader's
    :class:`InputError` (``on_bad_image="raise"``) or becomes a ``{"skipped": path}``
    placeholder that :func:`collate_items` drops and reports (``"skip"``).
    """

    def __init__(self, index: LabelIndex, root: str | os.PathLike,
                 transform: Callable[[Image.Image], Any] | None = None,
                 extras: dict[str, ItemExtra] | None = None, load_images: bool = True,
                 crop_to_box: bool = False, on_bad_image: str = "raise", target_size: int | None = None):
        self.index = index
        self.root = Path(root)
        self.transform = transform
        self.extras = dict(extras or {})
        self.load_images = load_images
        self.decode = load_images or any(e.needs_image for e in self.extras.values())
        if crop_to_box and "bbox" not in index.item_arrays:
            raise InputError(f"crop_to_box: the {index.dataset} reader gives no bounding boxes")
        self.boxes = index.item_arrays["bbox"] if crop_to_box else None
        self.on_bad_image = on_bad_image
        self.target_size = target_size

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, Any]:
        image = None
        if self.decode:
            box = None if self.boxes is None else self.boxes[i]
            try:
                image = load_image(self.root / self.index.image_paths[i], self.target_size, box)
            except InputError:
                if self.on_bad_image == "skip":
                    return {"skipped": self.index.image_paths[i]}
                raise
        if self.index.is_single_label:
            target = torch.tensor(int(self.index.class_ids[i]), dtype=torch.long)
            mask = torch.ones(self.index.num_labels, dtype=torch.bool)
        else:
            target = torch.from_numpy(self.index.dense_targets(i)[0]).float()
            mask = torch.from_numpy(self.index.dense_mask(i)[0])
        item: dict[str, Any] = {"target": target, "mask": mask, "index": torch.tensor(i, dtype=torch.long)}
        if self.load_images:
            item["image"] = self.transform(image) if self.transform is not None else _to_tensor(image)
        for name, extra in self.extras.items():
            value = extra(image if extra.needs_image else None, i, self.index)
            item[name] = torch.as_tensor(np.asarray(value), dtype=torch.float32)
        return item


def collate_items(items: list[dict[str, Any]]) -> dict[str, Any]:
    """``default_collate`` of the good items; ``skipped`` lists the bad ones' paths."""
    skipped = [item["skipped"] for item in items if "skipped" in item]
    good = [item for item in items if "skipped" not in item]
    batch = default_collate(good) if good else {}
    batch["skipped"] = skipped
    return batch


def _to_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed numpy/random from torch's per-worker seed
    (itself derived from the loader's seeded generator), so augmentations replay."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def _distributed_world() -> tuple[int, int] | None:
    """``(world_size, rank)`` when a process group of size > 1 is initialised, else None."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        world = torch.distributed.get_world_size()
        if world > 1:
            return world, torch.distributed.get_rank()
    return None


@dataclass(frozen=True)
class EvalSet:
    """One evaluation set: a split read with a task. ``name`` is ``""`` for the single
    default set (metrics ``test/mAP``), else the set's name (``test/zsl/mAP``)."""

    name: str
    split: str
    task: str

    def prefix(self, stage: str) -> str:
        return f"{stage}/{self.name}/" if self.name else f"{stage}/"


class MultiLabelDataModule(LightningDataModule):
    """A LightningDataModule over one dataset's reader (subclasses set ``dataset_name``).

    Args:
        root: dataset root, laid out as interfaces.md "Dataset roots" says.
        batch_size / eval_batch_size: train / eval batch size (eval defaults to train's).
        num_workers: DataLoader workers (persistent when > 0).
        image_size: square input side.
        train_transform / eval_transform: keyword arguments of
            :func:`datamodules.transforms.build_transform`.
        train_split / val_split / test_split: the reader's split names.
        val_sets / test_sets: named evaluation sets, ``{name: {split: S, task: T}}``
            (``task`` defaults to the datamodule's); they replace ``val_split``/``test_split``.
        limit_train_images / limit_eval_images: keep a seeded random subset of that many
            images (file order kept) - for smoke runs.
        seed: seeds the ``limit_*`` subsets; the train order follows ``seed_everything``.
        cache_dir: label-index cache (default ``$FASHIONBENCH_CACHE`` or
            ``~/.cache/fashionbench/index``).
        year / task: the reader's year and task of training (None = reader default).
        reader_options: reader constructor options (e.g. COCO ``include_empty``).
        embeddings: label vectors for every label space (``.npz``, GloVe ``.txt``, FastText
            ``.vec``, or ``sentence_encoder``), aligned by label name.
        extras: per-item features, ``{batch key: ItemExtra}`` (``datamodules.extras``).
        load_images: False leaves ``image`` out of the batch (e.g. cached features).
        crop_to_box: crop each image to the reader's ``bbox`` (DeepFashion).
        train_sampling: per-image sampling weights (``datamodules.extras.SampleWeighting``);
            None = uniform shuffling.
        on_bad_image: ``raise`` (stop with one line naming the file) or ``skip`` (leave the
            image out of its batch; the run record lists it in ``skipped_images``).
    """

    dataset_name: ClassVar[str] = ""

    def __init__(
        self,
        root: str,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 4,
        image_size: int = 224,
        train_transform: dict | None = None,
        eval_transform: dict | None = None,
        train_split: str = "train",
        val_split: str = "val",
        test_split: str = "test",
        val_sets: dict[str, dict[str, str]] | None = None,
        test_sets: dict[str, dict[str, str]] | None = None,
        limit_train_images: int | None = None,
        limit_eval_images: int | None = None,
        seed: int = 0,
        cache_dir: str | None = None,
        year: int | None = None,
        task: str | None = None,
        reader_options: dict | None = None,
        embeddings: str | None = None,
        extras: dict[str, ItemExtra] | None = None,
        load_images: bool = True,
        crop_to_box: bool = False,
        train_sampling: SampleWeighting | None = None,
        on_bad_image: Literal["raise", "skip"] = "raise",
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["extras", "train_sampling"])
        self.root = Path(root)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.image_size = image_size
        self.limit_train_images = limit_train_images
        self.limit_eval_images = limit_eval_images
        self.seed = seed
        self.cache_dir = cache_dir
        self.embeddings = embeddings
        self.extras = dict(extras or {})
        self.load_images = load_images
        self.crop_to_box = crop_to_box
        self.train_sampling = train_sampling
        if on_bad_image not in ("raise", "skip"):
            raise InputError(f"on_bad_image must be 'raise' or 'skip', got '{on_bad_image}'")
        self.on_bad_image = on_bad_image
        self.reader = get_reader(self.dataset_name, **(reader_options or {}))
        self.train_split, self.year, self.task = self.reader.resolve(train_split, year, task)
        self.val_split = self.reader.resolve(val_split, year, task)[0]
        self.test_split = self.reader.resolve(test_split, year, task)[0]
        self.val_sets = self._eval_sets(val_sets, self.val_split, "val_sets")
        self.test_sets = self._eval_sets(test_sets, self.test_split, "test_sets")
        try:
            self.train_transform = build_transform(image_size, True, **(train_transform or {}))
            self.eval_transform = build_transform(image_size, False, **(eval_transform or {}))
        except TypeError as err:
            raise InputError(f"bad transform option: {err}") from None
        self._indices: dict[tuple[str, str, int | None], LabelIndex] = {}
        self._spaces: dict[tuple[str, str], LabelSpace] = {}
        self._datasets: dict[tuple[str, str], LabelIndexDataset] = {}

    def _eval_sets(self, sets: dict[str, dict[str, str]] | None, split: str, option: str) -> list[EvalSet]:
        if not sets:
            return [EvalSet("", split, self.task)]
        out = []
        for name, spec in sets.items():
            spec = dict(spec or {})
            unknown = set(spec) - {"split", "task"}
            if unknown or "/" in name or not name:
                raise InputError(f"{option}.{name}: expected a name without '/' and {{split, task}}, got {sorted(spec)}")
            set_split, _, set_task = self.reader.resolve(spec.get("split", split), self.year, spec.get("task", self.task))
            out.append(EvalSet(name, set_split, set_task))
        return out

    # ---------------------------------------------------------------- indices
    def split_index(self, split: str, limit: int | None = None, task: str | None = None) -> LabelIndex:
        """The split's index for ``task`` (cached), limited to a seeded random subset of ``limit`` rows."""
        task = self.task if task is None else task
        key = (split, task, limit)
        if key not in self._indices:
            full = self._indices.get((split, task, None))
            if full is None:
                full = load_index(self.reader, self.root, split, self.year, task, cache_dir=self.cache_dir)
                self._indices[(split, task, None)] = full
            if limit is not None and limit < len(full):
                rows = np.sort(np.random.default_rng(self.seed).choice(len(full), size=limit, replace=False))
                self._indices[key] = full.subset(rows)
        return self._indices.get(key, self._indices[(split, task, None)])

    def eval_index(self, eval_set: EvalSet) -> LabelIndex:
        return self.split_index(eval_set.split, self.limit_eval_images, eval_set.task)

    @property
    def train_index(self) -> LabelIndex:
        return self.split_index(self.train_split, self.limit_train_images)

    @property
    def val_index(self) -> LabelIndex:
        return self.eval_index(self.val_sets[0])

    @property
    def test_index(self) -> LabelIndex:
        return self.eval_index(self.test_sets[0])

    # ---------------------------------------------------------------- label spaces
    def _label_space(self, split: str, task: str, index: LabelIndex) -> LabelSpace:
        key = (split, task)
        if key not in self._spaces:
            train = self.train_index
            train_freq = dict(zip(train.label_names, train.label_frequencies()))
            seen = index.meta.get("label_seen")
            if seen is None:
                train_names = set(train.label_names)
                seen = [name in train_names for name in index.label_names]
            vectors = None
            if self.embeddings:
                from fashionbench.embeddings import load_label_embeddings

                vectors = load_label_embeddings(self.embeddings, index.label_names).numpy()
            self._spaces[key] = LabelSpace(
                index.label_names, vectors=vectors, parents=index.meta.get("label_parents"),
                frequencies=[float(train_freq.get(name, 0.0)) for name in index.label_names],
                seen=seen, single_label=index.is_single_label,
            )
        return self._spaces[key]

    @property
    def label_space(self) -> LabelSpace:
        """The training label space (linked into the model by the CLI)."""
        return self._label_space(self.train_split, self.task, self.train_index)

    def eval_label_space(self, eval_set: EvalSet) -> LabelSpace:
        return self._label_space(eval_set.split, eval_set.task, self.eval_index(eval_set))

    def eval_sets(self, stage: str) -> list[EvalSet]:
        """The evaluation sets of ``stage`` (``"val"`` or ``"test"``), in loader order."""
        return self.val_sets if stage == "val" else self.test_sets

    # ---------------------------------------------------------------- linked attributes
    @property
    def num_labels(self) -> int:
        return self.train_index.num_labels

    @property
    def label_names(self) -> list[str]:
        return list(self.train_index.label_names)

    @property
    def single_label(self) -> bool:
        """True for single-label tasks (``target`` is a long class id, not a 0/1 vector)."""
        return self.train_index.is_single_label

    @property
    def label_frequencies(self) -> np.ndarray:
        """``float64 [C]``: train positives / known entries."""
        return self.train_index.label_frequencies()

    @property
    def is_synthetic(self) -> bool:
        """True when ``root`` was written by ``fashionbench synth`` (its marker file)."""
        return (self.root / MARKER_FILE).is_file()

    @property
    def n_train(self) -> int:
        return len(self.train_index)

    @property
    def n_val(self) -> int:
        return len(self.val_index)

    @property
    def n_test(self) -> int:
        return len(self.test_index)

    # ---------------------------------------------------------------- lightning hooks
    def prepare_data(self) -> None:
        """Build (or validate) the train index once per node, so ranks read the cache."""
        self.train_index  # noqa: B018

    def setup(self, stage: str | None = None) -> None:
        parts = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        for part in parts.get(stage, ("train", "val", "test")):
            if part == "train":
                self._dataset("train", None)
            else:
                for eval_set in self.eval_sets(part):
                    self._dataset(part, eval_set)

    def _dataset(self, part: str, eval_set: EvalSet | None) -> LabelIndexDataset:
        key = (part, eval_set.name if eval_set else "")
        if key not in self._datasets:
            index = self.train_index if eval_set is None else self.eval_index(eval_set)
            transform = self.train_transform if part == "train" else self.eval_transform
            self._datasets[key] = LabelIndexDataset(
                index, self.root, transform, extras=self.extras, load_images=self.load_images,
                crop_to_box=self.crop_to_box, on_bad_image=self.on_bad_image, target_size=self.image_size,
            )
        return self._datasets[key]

    def _loader(self, dataset: Dataset, batch_size: int, **kwargs: Any) -> DataLoader:
        return DataLoader(
            dataset, batch_size=batch_size, num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0, worker_init_fn=seed_worker,
            pin_memory=torch.cuda.is_available(), collate_fn=collate_items, **kwargs,
        )

    def train_seed(self) -> int:
        """The seed of the train order and workers: ``seed_everything``'s, else ``data.seed``."""
        global_seed = os.environ.get("PL_GLOBAL_SEED")
        return int(global_seed) if global_seed is not None else int(self.seed)

    def train_dataloader(self) -> DataLoader:
        dataset = self._dataset("train", None)
        generator = torch.Generator().manual_seed(self.train_seed())
        drop_last = len(dataset) > self.batch_size  # no size-1 tail batch for batch norm
        if self.train_sampling is not None:
            weights = np.asarray(self.train_sampling(dataset.index), dtype=np.float64)
            if weights.shape != (len(dataset),) or not np.all(np.isfinite(weights)) or weights.min() < 0 or weights.sum() <= 0:
                raise InputError(f"train_sampling gave invalid weights (shape {list(weights.shape)}, need {len(dataset)} non-negative, finite, not all zero)")
            sampler = WeightedRandomSampler(torch.from_numpy(weights), num_samples=len(dataset), replacement=True, generator=generator)
            return self._loader(dataset, self.batch_size, sampler=sampler, drop_last=drop_last, generator=generator)
        return self._loader(dataset, self.batch_size, shuffle=True, drop_last=drop_last, generator=generator)

    def eval_dataloader(self, part: str, eval_set: EvalSet | None = None) -> DataLoader:
        """Unshuffled loader of one evaluation set of ``part``; unpadded shards under DDP."""
        dataset = self._dataset(part, eval_set or self.eval_sets(part)[0])
        world = _distributed_world()
        sampler = None
        if world is not None:
            sampler = UnrepeatedDistributedSampler(dataset, num_replicas=world[0], rank=world[1], shuffle=False)
        return self._loader(dataset, self.eval_batch_size, shuffle=False, sampler=sampler)

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        """One loader per validation set (a single loader when there is one set)."""
        loaders = [self.eval_dataloader("val", s) for s in self.val_sets]
        return loaders[0] if len(loaders) == 1 else loaders

    def test_dataloader(self) -> DataLoader | list[DataLoader]:
        """One loader per test set (a single loader when there is one set)."""
        loaders = [self.eval_dataloader("test", s) for s in self.test_sets]
        return loaders[0] if len(loaders) == 1 else loaders

    def predict_dataloader(self) -> DataLoader:
        return self.eval_dataloader("test", self.test_sets[0])
