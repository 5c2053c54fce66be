"""MS-COCO 2014/2017 multi-label classification (interfaces.md "Dataset roots": ``coco``).

Layout: ``ROOT/annotations/instances_{split}{year}.json``, images in
``ROOT/{split}{year}/<file_name>``.

An image's labels are the categories of its instance annotations, in category-id order
(80 labels for the real files; ``label_names`` are the category names). *All* annotations
count, ``iscrowd=1`` ones included, as in the multi-label papers' label files (ML-GCN,
ASL). Images without any annotation are left out unless the reader/datamodule option
``include_empty=True`` is set (``data summary`` leaves them out). Every label is known
(no mask).

Zero-shot tasks (COCO 48/17, Bansal et al., ECCV 2018, the split of SDL paper §4.1 and
Table 2): 48 seen and 17 unseen categories (:data:`COCO_ZSL_SEEN`, :data:`COCO_ZSL_UNSEEN`,
the lists of ``shared/fixtures/zero_shot_splits/coco_48_17``; the other 15 categories are
in neither and are dropped), labels in category-id order:

- ``zsl`` / ``gzsl`` on ``train``: the images with at least one seen and no unseen
  annotation; the 48 seen labels.
- ``zsl`` on ``val``: the images with at least one unseen annotation; the 17 unseen labels.
- ``gzsl`` on ``val``: the same images; the 65 seen and unseen labels
  (``meta["label_seen"]`` marks the seen ones).

Bansal et al. also ship image lists (73,774 train / 6,608 test images, drawn from
train2014 *and* val2014, as the SDL paper quotes); those lists are not public here, so
the tasks apply the lists' rule to the split the config names (on the real train2014 /
val2014 files the counts differ from the paper's; ``data summary coco --task zsl`` prints
them).

Speed: ``json.load`` of the 450 MB train2014 file dominates; the annotations become two
numpy arrays (image id, category id) and are mapped to rows/columns with
``searchsorted``, without building per-annotation Python objects.
"""
from __future__ import annotations

import json
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np

from datamodules.index import LabelIndex
from datamodules.readers._json import JSONAnnotationFile, json_array_item_line
from datamodules.registry import DatasetReader, register_reader
from fashionbench.errors import InputError

__all__ = ["COCOReader", "COCO_ZSL_SEEN", "COCO_ZSL_UNSEEN", "coco_annotation_file", "json_array_item_line"]

#: The 48 seen categories of Bansal et al.'s 48/17 split, in category-id order
#: (``coco_zsl_seen48.txt``; alirezazareian/ovr-cnn @c904af74 ``mscoco_seen_classes.json``).
COCO_ZSL_SEEN: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "train", "truck", "boat", "bench", "bird", "horse",
    "sheep", "bear", "zebra", "giraffe", "backpack", "handbag", "suitcase", "frisbee", "skis", "kite",
    "surfboard", "bottle", "fork", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli",
    "carrot", "pizza", "donut", "chair", "bed", "toilet", "tv", "laptop", "mouse", "remote",
    "microwave", "oven", "toaster", "refrigerator", "book", "clock", "vase", "toothbrush",
)
#: The 17 unseen categories, in category-id order (``coco_zsl_unseen17.txt``).
COCO_ZSL_UNSEEN: tuple[str, ...] = (
    "airplane", "bus", "cat", "dog", "cow", "elephant", "umbrella", "tie", "snowboard", "skateboard",
    "cup", "knife", "cake", "couch", "keyboard", "sink", "scissors",
)


def coco_annotation_file(root: Path, split: str, year: int) -> Path:
    return Path(root) / "annotations" / f"instances_{split}{year}.json"


class _COCOFile(JSONAnnotationFile):
    """One parsed instances file."""

    def __init__(self, path: Path):
        super().__init__(path, "images, annotations and categories")

    def section(self, key: str) -> list:
        value = self.doc.get(key)
        if not isinstance(value, list):
            raise InputError(f"missing or non-list \"{key}\"", path=self.path, line=1)
        return value

    def int_column(self, key: str, items: list, field: str) -> np.ndarray:
        """``int64`` array of ``item[field]`` for every item (an InputError names a bad one)."""
        try:
            values = np.array(list(map(itemgetter(field), items)))
            ok = values.dtype.kind in "iu" and values.ndim == 1
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok or (values.size != len(items)):
            for i, item in enumerate(items):
                value = item.get(field) if isinstance(item, dict) else None
                if not isinstance(value, int) or isinstance(value, bool):
                    raise self.error(key, i, f"\"{field}\" must be an integer, got {json.dumps(value)}")
        return values.astype(np.int64) if len(items) else np.zeros(0, np.int64)

    def str_column(self, key: str, items: list, field: str) -> list[str]:
        values = [item.get(field) for item in items]
        if not all(isinstance(v, str) for v in values):
            i = next(i for i, v in enumerate(values) if not isinstance(v, str))
            raise self.error(key, i, f"\"{field}\" must be a string, got {json.dumps(values[i])}")
        return values


def _first_duplicate(values: np.ndarray) -> int | None:
    """Position of the first item that repeats an earlier value, or None."""
    order = np.argsort(values, kind="stable")
    same = values[order[1:]] == values[order[:-1]]
    return int(order[1:][same].min()) if np.any(same) else None


def _lookup(sorted_keys: np.ndarray, sorter: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``queries`` in the unsorted keys, and which were found (vectorised)."""
    if sorted_keys.size == 0:
        return np.zeros(queries.size, np.int64), np.zeros(queries.size, bool)
    at = np.minimum(np.searchsorted(sorted_keys, queries), sorted_keys.size - 1)
    return sorter[at], sorted_keys[at] == queries


# --------------------------------------------------------------------------- reader
@register_reader
class COCOReader(DatasetReader):
    """COCO instances files -> multi-label index (see the module docstring).

    Args:
        include_empty: keep images without any annotation (all-negative rows).
    """

    name = "coco"
    version = 1
    years = (2014, 2017)
    default_year = 2014
    splits = ("train", "val")
    default_split = "train"
    tasks = ("multilabel", "zsl", "gzsl")

    def __init__(self, include_empty: bool = False):
        self.include_empty = bool(include_empty)

    @property
    def options(self) -> dict[str, Any]:
        return {"include_empty": self.include_empty}

    def available(self, root: Path) -> list[tuple[int | None, str]]:
        return [(y, s) for y in self.years for s in self.splits if coco_annotation_file(root, s, y).is_file()]

    def annotation_files(self, root: Path, split: str, year: int | None, task: str) -> list[Path]:
        path = coco_annotation_file(root, split, year)
        if not path.is_file():
            raise InputError("missing annotation file", path=path)
        return [path]

    def read(self, root: Path, split: str, year: int | None, task: str) -> LabelIndex:
        root = Path(root)
        src = _COCOFile(coco_annotation_file(root, split, year))
        categories, images, annotations = src.section("categories"), src.section("images"), src.section("annotations")

        cat_ids = src.int_column("categories", categories, "id")
        cat_names = src.str_column("categories", categories, "name")
        dup = _first_duplicate(cat_ids)
        if dup is not None:
            raise src.error("categories", dup, f"duplicate category id {cat_ids[dup]}")
        cat_order = np.argsort(cat_ids, kind="stable")  # labels in category-id order
        label_names = [cat_names[i] for i in cat_order]
        dup = _first_duplicate(np.array(label_names))
        if dup is not None:
            raise src.error("categories", int(cat_order[dup]), f"duplicate category name '{label_names[dup]}'")

        image_ids = src.int_column("images", images, "id")
        file_names = src.str_column("images", images, "file_name")
        dup = _first_duplicate(image_ids)
        if dup is not None:
            raise src.error("images", dup, f"duplicate image id {image_ids[dup]}")

        ann_images = src.int_column("annotations", annotations, "image_id")
        ann_cats = src.int_column("annotations", annotations, "category_id")
        image_sorter = np.argsort(image_ids)
        rows, found = _lookup(image_ids[image_sorter], image_sorter, ann_images)
        if not np.all(found):
            k = int(np.argmin(found))
            raise src.error("annotations", k, f"unknown image_id {ann_images[k]}")
        sorted_cat_ids = cat_ids[cat_order]
        cols, found = _lookup(sorted_cat_ids, np.arange(sorted_cat_ids.size), ann_cats)
        if not np.all(found):
            k = int(np.argmin(found))
            raise src.error("annotations", k, f"unknown category_id {ann_cats[k]}")

        meta = {
            "root": str(root.resolve()), "year": year, "task": task,
            "include_empty": self.include_empty,
            "annotation_files": [src.path.relative_to(root).as_posix()],
            "category_ids": sorted_cat_ids.tolist(),
            "crowd_annotations_counted": True,
        }
        if task == "multilabel":
            keep = np.ones(image_ids.size, dtype=bool)
            if not self.include_empty:
                keep = np.bincount(rows, minlength=image_ids.size) > 0
        else:
            keep, rows, cols, label_names = self._zero_shot(src, split, task, label_names, rows, cols, image_ids.size, meta)
        new_row = np.cumsum(keep) - 1  # file order of the kept images
        kept = np.flatnonzero(keep)
        entry = keep[rows]
        folder = f"{split}{year}"
        return LabelIndex.from_pairs(
            "coco", split, label_names,
            [f"{folder}/{file_names[i]}" for i in kept], [str(image_ids[i]) for i in kept],
            new_row[rows[entry]], cols[entry], known_by_default=True, meta=meta,
        )

    @staticmethod
    def _zero_shot(src: _COCOFile, split: str, task: str, label_names: list[str], rows: np.ndarray,
                   cols: np.ndarray, n_images: int, meta: dict[str, Any]):
        """The 48/17 images and labels of ``task`` on ``split`` (see the module docstring)."""
        missing = [c for c in COCO_ZSL_SEEN + COCO_ZSL_UNSEEN if c not in label_names]
        if missing:
            raise InputError(f"the COCO 48/17 split needs category '{missing[0]}', which the file lacks", path=src.path)
        seen_set, unseen_set = set(COCO_ZSL_SEEN), set(COCO_ZSL_UNSEEN)
        is_seen = np.array([n in seen_set for n in label_names])
        is_unseen = np.array([n in unseen_set for n in label_names])
        has_seen = np.bincount(rows[is_seen[cols]], minlength=n_images) > 0
        has_unseen = np.bincount(rows[is_unseen[cols]], minlength=n_images) > 0
        if split == "train":
            keep, wanted = has_seen & ~has_unseen, is_seen
        else:
            keep, wanted = has_unseen, (is_unseen if task == "zsl" else is_seen | is_unseen)
        new_col = np.cumsum(wanted) - 1  # category-id order kept
        entry = wanted[cols]
        names = [n for n, w in zip(label_names, wanted) if w]
        meta.update(
            zero_shot_split="COCO 48/17 (Bansal et al. 2018)",
            category_ids=[c for c, w in zip(meta["category_ids"], wanted) if w],
            label_seen=[n in seen_set for n in names],
            images_with_seen=int(has_seen.sum()), images_with_unseen=int(has_unseen.sum()),
        )
        return keep, rows[entry], new_col[cols[entry]], names


# --------------------------------------------------------------------------- datamodule
