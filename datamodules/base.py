"""The base multi-label datamodule, its dataset and the one image loader.

Flow (architecture.md): reader -> :class:`~datamodules.index.LabelIndex` (cached) ->
:class:`LabelIndexDataset` -> ``DataLoader``. A batch is a dict:

- ``image``  float ``[B, 3, H, W]`` (normalised),
- ``target`` float ``[B, C]`` in {0, 1} (multi-label) or long ``[B]`` (single-label),
- ``mask``   bool ``[B, C]``: True where the entry is known (scored/trained on),
- ``index``  long ``[B]``: the row of the split's (possibly limited) index.

Attributes the runner links into the model (LightningCLI ``link_arguments(...,
apply_on="instantiate")``) work right after ``__init__``: ``num_labels``, ``label_names``,
``single_label``, ``label_frequencies``, ``dataset_name``, ``task``, ``is_synthetic``; they load the train
index lazily through the cache. Eval loaders never pad under DDP: with a process group of
world size > 1 they use Lightning's ``UnrepeatedDistributedSampler`` so every image is
scored exactly once (Lightning leaves a ``DistributedSampler`` it finds alone); training
uses Lightning's own distributed sampler.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset

from datamodules.index import LabelIndex, load_index
from datamodules.registry import get_reader
from datamodules.synth import MARKER_FILE
from datamodules.transforms import build_transform
from fashionbench.errors import InputError

__all__ = ["load_image", "LabelIndexDataset", "MultiLabelDataModule", "seed_worker"]


def load_image(path: str | os.PathLike) -> Image.Image:
    """The one image loader: an RGB PIL image; a missing/unreadable file is an InputError."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError:
        raise InputError("missing image file", path=path) from None
    except (UnidentifiedImageError, OSError) as err:
        raise InputError(f"cannot decode image ({err})", path=path) from None


class LabelIndexDataset(Dataset):
    """Items of one :class:`LabelIndex`; labels are made dense one row at a time."""

    def __init__(self, index: LabelIndex, root: str | os.PathLike,
                 transform: Callable[[Image.Image], Any] | None = None):
        self.index = index
        self.root = Path(root)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        image = load_image(self.root / self.index.image_paths[i])
        image = self.transform(image) if self.transform is not None else _to_tensor(image)
        if self.index.is_single_label:
            target = torch.tensor(int(self.index.class_ids[i]), dtype=torch.long)
            mask = torch.ones(self.index.num_labels, dtype=torch.bool)
        else:
            target = torch.from_numpy(self.index.dense_targets(i)[0]).float()
            mask = torch.from_numpy(self.index.dense_mask(i)[0])
        return {"image": image, "target": target, "mask": mask, "index": torch.tensor(i, dtype=torch.long)}


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
        limit_train_images / limit_eval_images: keep a seeded random subset of that many
            images (file order kept) - for smoke runs.
        seed: seeds the subsets, the train shuffling and the workers.
        cache_dir: label-index cache (default ``$FASHIONBENCH_CACHE`` or
            ``~/.cache/fashionbench/index``).
        year / task: the reader's year and task (None = reader default).
        reader_options: reader constructor options (e.g. COCO ``include_empty``).
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
        limit_train_images: int | None = None,
        limit_eval_images: int | None = None,
        seed: int = 0,
        cache_dir: str | None = None,
        year: int | None = None,
        task: str | None = None,
        reader_options: dict | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.root = Path(root)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.image_size = image_size
        self.limit_train_images = limit_train_images
        self.limit_eval_images = limit_eval_images
        self.seed = seed
        self.cache_dir = cache_dir
        self.reader = get_reader(self.dataset_name, **(reader_options or {}))
        self.train_split, self.year, self.task = self.reader.resolve(train_split, year, task)
        self.val_split = self.reader.resolve(val_split, year, task)[0]
        self.test_split = self.reader.resolve(test_split, year, task)[0]
        try:
            self.train_transform = build_transform(image_size, True, **(train_transform or {}))
            self.eval_transform = build_transform(image_size, False, **(eval_transform or {}))
        except TypeError as err:
            raise InputError(f"bad transform option: {err}") from None
        self._indices: dict[tuple[str, int | None], LabelIndex] = {}
        self._datasets: dict[str, LabelIndexDataset] = {}

    # ---------------------------------------------------------------- indices
    def split_index(self, split: str, limit: int | None = None) -> LabelIndex:
        """The split's index (cached), limited to a seeded random subset of ``limit`` rows."""
        key = (split, limit)
        if key not in self._indices:
            full = self._indices.get((split, None))
            if full is None:
                full = load_index(self.reader, self.root, split, self.year, self.task, cache_dir=self.cache_dir)
                self._indices[(split, None)] = full
            if limit is not None and limit < len(full):
                rows = np.sort(np.random.default_rng(self.seed).choice(len(full), size=limit, replace=False))
                self._indices[key] = full.subset(rows)
        return self._indices.get(key, self._indices[(split, None)])

    @property
    def train_index(self) -> LabelIndex:
        return self.split_index(self.train_split, self.limit_train_images)

    @property
    def val_index(self) -> LabelIndex:
        return self.split_index(self.val_split, self.limit_eval_images)

    @property
    def test_index(self) -> LabelIndex:
        return self.split_index(self.test_split, self.limit_eval_images)

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
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        for part in wanted.get(stage, ("train", "val", "test")):
            self._dataset(part)

    def _dataset(self, part: str) -> LabelIndexDataset:
        if part not in self._datasets:
            index = getattr(self, f"{part}_index")
            transform = self.train_transform if part == "train" else self.eval_transform
            self._datasets[part] = LabelIndexDataset(index, self.root, transform)
        return self._datasets[part]

    def _loader(self, dataset: Dataset, batch_size: int, **kwargs: Any) -> DataLoader:
        return DataLoader(
            dataset, batch_size=batch_size, num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0, worker_init_fn=seed_worker,
            pin_memory=torch.cuda.is_available(), **kwargs,
        )

    def train_dataloader(self) -> DataLoader:
        dataset = self._dataset("train")
        return self._loader(
            dataset, self.batch_size, shuffle=True,
            drop_last=len(dataset) > self.batch_size,  # no size-1 tail batch for batch norm
            generator=torch.Generator().manual_seed(self.seed),
        )

    def eval_dataloader(self, part: str) -> DataLoader:
        """Unshuffled loader of ``part`` (``"val"``/``"test"``); unpadded shards under DDP."""
        dataset = self._dataset(part)
        world = _distributed_world()
        sampler = None
        if world is not None:
            sampler = UnrepeatedDistributedSampler(dataset, num_replicas=world[0], rank=world[1], shuffle=False)
        return self._loader(dataset, self.eval_batch_size, shuffle=False, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return self.eval_dataloader("val")

    def test_dataloader(self) -> DataLoader:
        return self.eval_dataloader("test")

    def predict_dataloader(self) -> DataLoader:
        return self.eval_dataloader("test")
