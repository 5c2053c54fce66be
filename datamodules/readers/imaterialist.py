"""iMaterialist Challenge (Fashion) at FGVC5, 2018 (interfaces.md "Dataset roots": ``imaterialist``).

Layout (the official Kaggle download, unchanged): ``ROOT/{train,validation,test}.json``,
images in ``ROOT/images/<split>/<imageId>.jpg`` (what ``fashionbench download imaterialist``
writes; the competition ships URLs only). Each JSON holds ``images`` (``{"url", "imageId"}``)
and, for ``train`` and ``validation``, ``annotations`` (``{"imageId", "labelId": [...]}``).
Ids are strings in some files (``validation.json``: ``"imageId": "1"``, ``"labelId":
["62", ...]``) and integers in others (``test.json``: ``"imageId": 1``); both are read, and
an id is the decimal string of its value (the image file name).

Labels: the 228 labels of the official label map (``imaterialist_labels.csv``, package data,
copied from visipedia/imat_fashion_comp), label index = ``int(labelId) - 1`` (never the
lexicographic order of the id strings), names ``labelName``, and the 8 task groups
(category, color, gender, material, neckline, pattern, sleeve, style) as
``meta["label_parents"]``. Every entry of a labelled split is known (no mask). An image
listed without an annotation entry has no positive (counted in
``meta["images_without_annotations"]``); two annotation entries of one image are merged.

Splits: ``train``, ``validation``, ``test`` as shipped. ``test.json`` has no labels (the
competition's test labels were never released): its index lists the images with every
entry *unknown* (masked), so ``data summary imaterialist --split test`` reports the images,
zero positives and ``ignored`` = the image count for every label; nothing can be scored
on it. For a labelled test set the reader cuts a deterministic hold-out out of
``train.json``: ``holdout`` (a ``holdout_fraction`` of the train images, default 0.04 ~
40K images, the size of the competition's test set given in the poster) and
``train_minus_holdout`` (the rest). An image is held out when
``blake2b(f"{holdout_seed}:{imageId}")`` read as a 64-bit fraction is below
``holdout_fraction``: the choice depends on the image id only, not on the file order or
on which other images are present, so the two parts never overlap and are the same on
every machine. ``validation`` is kept for choosing per-class thresholds.

Missing images: many of the competition's URLs are dead, so a root usually lacks some
listed images. ``data summary`` lists them (``missing_images``). With the reader option
``drop_missing_images=True`` (what the datamodule sets) the images without a file under
``ROOT/images/<split>/`` are left out of the index and counted in
``meta["missing_images"]`` (``meta["listed_images"]`` is the count before); the image
folder then joins the cache key (its mtime changes when a file is added or removed).

Bad input (``InputError``, ``file:line: problem``): unparseable JSON, a non-list section,
a duplicate ``imageId``, an id that is neither a string nor an integer (or names a path),
an annotation of an unknown image, a ``labelId`` that is not an integer in 1..228.
"""
from __future__ import annotations

import csv
import hashlib
import json
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from datamodules.index import LabelIndex
from datamodules.readers._json import JSONAnnotationFile
from datamodules.registry import DatasetReader, register_reader
from fashionbench.errors import InputError

__all__ = [
    "IMaterialistReader", "LABEL_MAP_FILE", "NUM_LABELS", "SPLIT_FILES", "IMAGE_FOLDERS",
    "load_label_map", "holdout_mask", "image_folder",
]

LABEL_MAP_FILE = Path(__file__).with_name("imaterialist_labels.csv")
NUM_LABELS = 228
#: split -> the annotation file it is read from
SPLIT_FILES = {
    "train": "train.json", "validation": "validation.json", "test": "test.json",
    "train_minus_holdout": "train.json", "holdout": "train.json",
}
#: split -> the image folder under ``ROOT/images`` (the held-out parts live with train)
IMAGE_FOLDERS = {
    "train": "train", "validation": "validation", "test": "test",
    "train_minus_holdout": "train", "holdout": "train",
}
DEFAULT_HOLDOUT_FRACTION = 0.04
_LABEL_MAP_HEADER = ["labelId", "taskId", "labelName", "taskName"]


def image_folder(root: Path, split: str) -> Path:
    """``ROOT/images/<folder>``: where the images of ``split`` lie."""
    return Path(root) / "images" / IMAGE_FOLDERS[split]


# --------------------------------------------------------------------------- label map
def load_label_map(path: str | Path = LABEL_MAP_FILE) -> tuple[list[str], list[str], list[int]]:
    """``(names, task_names, task_ids)`` of the 228 labels, in labelId order (1..228).

    The file is the official ``iMat_fashion_2018_label_map_228.csv``
    (``labelId,taskId,labelName,taskName``); its rows must list labelId 1..228 in order.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError("missing label map", path=path) from None
    rows = list(csv.reader(text.splitlines()))
    if not rows or [c.strip() for c in rows[0]] != _LABEL_MAP_HEADER:
        raise InputError(f"label map header must be {','.join(_LABEL_MAP_HEADER)}", path=path, line=1)
    names, tasks, task_ids = [], [], []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != 4:
            raise InputError(f"expected 4 fields, got {len(row)}", path=path, line=line)
        label_id, task_id, name, task = (c.strip() for c in row)
        if not label_id.isdigit() or int(label_id) != len(names) + 1:
            raise InputError(f"labelId {label_id!r} out of order (expected {len(names) + 1})", path=path, line=line)
        if not task_id.isdigit():
            raise InputError(f"taskId must be an integer, got {task_id!r}", path=path, line=line)
        if name in names:
            raise InputError(f"duplicate labelName {name!r}", path=path, line=line)
        names.append(name)
        tasks.append(task)
        task_ids.append(int(task_id))
    if len(names) != NUM_LABELS:
        raise InputError(f"expected {NUM_LABELS} labels, got {len(names)}", path=path)
    return names, tasks, task_ids


# --------------------------------------------------------------------------- hold-out
def holdout_mask(image_ids: list[str], fraction: float, seed: int) -> np.ndarray:
    """``bool [N]``: True for the images of the hold-out part (see the module docstring)."""
    cut = int(round(float(fraction) * 2**64))
    prefix = f"{int(seed)}:".encode()
    out = np.fromiter(
        (int.from_bytes(hashlib.blake2b(prefix + i.encode(), digest_size=8).digest(), "big") < cut
         for i in image_ids),
        dtype=bool, count=len(image_ids),
    )
    return out


# --------------------------------------------------------------------------- JSON file
class _IMatFile(JSONAnnotationFile):
    """One parsed iMaterialist JSON."""

    def __init__(self, path: Path):
        super().__init__(path, '"images" (and "annotations")')

    def section(self, key: str) -> list | None:
        if key not in self.doc:
            return None
        value = self.doc[key]
        if not isinstance(value, list):
            raise InputError(f"\"{key}\" must be a list", path=self.path, line=self._key_line(key))
        return value

    def _key_line(self, key: str) -> int:
        text = self.raw.decode("utf-8")
        at = text.find(f'"{key}"')
        return text.count("\n", 0, max(at, 0)) + 1



def _id_string(value: Any) -> str | None:
    """An id as the string the image file is named by; None if it is not a valid id."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value and value.strip() == value and not any(c in value for c in "/\\\0") \
            and value not in (".", ".."):
        return value
    return None


def _label_value(value: Any) -> int | None:
    """A labelId as an int (``"62"`` or ``62``); None if it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


def _label_ids(src: _IMatFile, label_lists: list[list]) -> np.ndarray:
    """All labelIds as int64, flattened in annotation order (fast path: one numpy parse)."""
    flat = list(chain.from_iterable(label_lists))
    if not flat:
        return np.zeros(0, dtype=np.int64)
    types = set(map(type, flat))
    try:
        if types == {str}:
            arr = np.array(flat)
            if bool(np.char.isdigit(arr).all()):
                return arr.astype(np.int64)
        elif types == {int}:
            return np.array(flat, dtype=np.int64)
    except (ValueError, OverflowError):
        pass
    for k, labels in enumerate(label_lists):  # slow path: find the first bad value
        for value in labels:
            if _label_value(value) is None:
                raise src.error("annotations", k, f"labelId must be an integer 1..{NUM_LABELS}, got {json.dumps(value)}")
    return np.array([_label_value(v) for v in flat], dtype=np.int64)


def _image_ids(src: _IMatFile, images: list) -> list[str]:
    """The ``imageId`` of every image as a string; duplicates and bad ids are InputErrors."""
    try:
        values = [image["imageId"] for image in images]
    except (KeyError, TypeError):
        values = None
    ids: list[str] | None = None
    if values is not None:
        types = set(map(type, values))
        if types == {str} and all(map(str.isdigit, values)) and all(map(str.isascii, values)):
            ids = values
        elif types == {int}:
            ids = list(map(str, values))
    if ids is None:  # mixed or unusual ids: one by one, naming the first bad one
        ids = []
        for k, image in enumerate(images):
            value = image.get("imageId") if isinstance(image, dict) else None
            iid = _id_string(value)
            if iid is None:
                raise src.error("images", k, f"imageId must be a string or an integer, got {json.dumps(value)}")
            ids.append(iid)
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        for k, iid in enumerate(ids):
            if iid in seen:
                raise src.error("images", k, f"duplicate imageId {iid}")
            seen.add(iid)
    return ids


def _annotation_rows(src: _IMatFile, annotations: list, ids: list[str]) -> tuple[np.ndarray, list[list]]:
    """``(row of each annotation's image, each annotation's labelId list)``.

    Fast path: the annotations list the images in the same order as ``images`` with
    plain ids (the real files do); otherwise each id is looked up, naming a bad entry.
    """
    try:
        raw_ids = [ann["imageId"] for ann in annotations]
        label_lists = [ann["labelId"] for ann in annotations]
    except (KeyError, TypeError):
        raw_ids = label_lists = None
    if raw_ids is not None and set(map(type, label_lists)) <= {list}:
        types = set(map(type, raw_ids))
        as_str = raw_ids if types <= {str} else list(map(str, raw_ids)) if types == {int} else None
        if as_str is not None and as_str == ids:
            return np.arange(len(ids), dtype=np.int64), label_lists
    row_of = {iid: r for r, iid in enumerate(ids)}
    rows = np.empty(len(annotations), dtype=np.int64)
    label_lists = []
    for k, ann in enumerate(annotations):
        if not isinstance(ann, dict):
            raise src.error("annotations", k, "expected an object with imageId and labelId")
        value = ann.get("imageId")
        iid = _id_string(value)
        if iid is None:
            raise src.error("annotations", k, f"imageId must be a string or an integer, got {json.dumps(value)}")
        row = row_of.get(iid)
        if row is None:
            raise src.error("annotations", k, f"unknown imageId {iid} (not in \"images\")")
        labels = ann.get("labelId")
        if not isinstance(labels, list):
            raise src.error("annotations", k, f"labelId must be a list, got {json.dumps(labels)}")
        rows[k] = row
        label_lists.append(labels)
    return rows, label_lists


def _csr(rows: np.ndarray, cols: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Positives as CSR (rows' columns sorted and unique): one sort of ``row * C + col``."""
    keys = np.sort(rows.astype(np.int64) * NUM_LABELS + cols)
    if keys.size:
        keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys // NUM_LABELS, minlength=n_rows), out=indptr[1:])
    return indptr, (keys % NUM_LABELS).astype(np.int32)


# --------------------------------------------------------------------------- reader
@register_reader
class IMaterialistReader(DatasetReader):
    """iMaterialist FGVC5 JSON files -> multi-label index of 228 labels (module docstring).

    Args:
        holdout_fraction: share of ``train.json`` in the ``holdout`` split (0 < f < 1).
        holdout_seed: seeds which images are held out.
        drop_missing_images: leave out the listed images whose file is absent (count in
            ``meta["missing_images"]``); ``data summary`` reads with this off.
    """

    name = "imaterialist"
    version = 1
    splits = ("train", "validation", "test", "train_minus_holdout", "holdout")
    default_split = "train"

    def __init__(self, holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION, holdout_seed: int = 0,
                 drop_missing_images: bool = False):
        fraction = float(holdout_fraction)
        if not 0.0 < fraction < 1.0:
            raise InputError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
        self.holdout_fraction = fraction
        self.holdout_seed = int(holdout_seed)
        self.drop_missing_images = bool(drop_missing_images)

    @property
    def options(self) -> dict[str, Any]:
        return {"holdout_fraction": self.holdout_fraction, "holdout_seed": self.holdout_seed,
                "drop_missing_images": self.drop_missing_images}

    def available(self, root: Path) -> list[tuple[int | None, str]]:
        return [(None, s) for s in ("train", "validation", "test") if (Path(root) / SPLIT_FILES[s]).is_file()]

    def annotation_files(self, root: Path, split: str, year: int | None, task: str) -> list[Path]:
        path = Path(root) / SPLIT_FILES[split]
        if not path.is_file():
            raise InputError("missing annotation file", path=path)
        files = [path]
        folder = image_folder(root, split)
        if self.drop_missing_images and folder.is_dir():
            files.append(folder)  # its mtime changes when an image is added or removed
        return files

    def read(self, root: Path, split: str, year: int | None, task: str) -> LabelIndex:
        root = Path(root)
        src = _IMatFile(root / SPLIT_FILES[split])
        names, tasks, task_ids = load_label_map()
        images = src.section("images")
        if images is None:
            raise InputError("missing \"images\" list", path=src.path, line=1)
        annotations = src.section("annotations")

        ids = _image_ids(src, images)
        labelled = annotations is not None
        pos_rows = np.zeros(0, dtype=np.int64)
        pos_cols = np.zeros(0, dtype=np.int64)
        duplicate_annotations = 0
        annotated = np.zeros(len(ids), dtype=bool)
        if labelled:
            ann_rows, label_lists = _annotation_rows(src, annotations, ids)
            lengths = np.fromiter(map(len, label_lists), dtype=np.int64, count=len(label_lists))
            label_ids = _label_ids(src, label_lists)
            bad = (label_ids < 1) | (label_ids > NUM_LABELS)
            if np.any(bad):
                at = int(np.argmax(bad))
                k = int(np.searchsorted(np.cumsum(lengths), at, side="right"))
                raise src.error("annotations", k, f"labelId {label_ids[at]} outside 1..{NUM_LABELS}")
            pos_rows = np.repeat(ann_rows, lengths)
            pos_cols = label_ids - 1  # label index = int(labelId) - 1
            annotated[ann_rows] = True
            duplicate_annotations = int(len(annotations) - int(annotated.sum()))

        keep = np.ones(len(ids), dtype=bool)
        meta: dict[str, Any] = {
            "root": str(root.resolve()), "task": task, "labelled": labelled,
            "annotation_files": [src.path.relative_to(root).as_posix()],
            "label_parents": list(tasks), "label_task_ids": list(task_ids),
            "label_ids": list(range(1, NUM_LABELS + 1)),
            "images_without_annotations": int((~annotated).sum()) if labelled else None,
            "duplicate_annotations": duplicate_annotations,
        }
        if split in ("holdout", "train_minus_holdout"):
            held = holdout_mask(ids, self.holdout_fraction, self.holdout_seed)
            keep &= held if split == "holdout" else ~held
            meta["holdout"] = {"fraction": self.holdout_fraction, "seed": self.holdout_seed,
                               "of": SPLIT_FILES[split], "train_images": len(ids)}
        folder = IMAGE_FOLDERS[split]
        paths = [f"images/{folder}/{i}.jpg" for i in ids]
        if self.drop_missing_images:
            from datamodules.summary import missing_files

            listed = int(keep.sum())
            candidates = np.flatnonzero(keep)
            missing = set(missing_files(root, [paths[i] for i in candidates]))
            if missing:
                keep[[i for i in candidates if paths[i] in missing]] = False
            meta["listed_images"] = listed
            meta["missing_images"] = listed - int(keep.sum())
            if listed and not keep.any():
                raise InputError(
                    f"none of the {listed} images of split '{split}' is on disk under {image_folder(root, split)}; "
                    f"fetch them with: fashionbench download imaterialist --root {root} --split {folder}")
        kept = np.flatnonzero(keep)
        new_row = np.cumsum(keep) - 1
        sel = keep[pos_rows]
        indptr, indices = _csr(new_row[pos_rows[sel]], pos_cols[sel], kept.size)
        # test.json has no labels: every entry unknown (known_by_default False, none listed)
        return LabelIndex("imaterialist", split, names, [paths[i] for i in kept], [ids[i] for i in kept],
                          indptr, indices, known_by_default=labelled, meta=meta)
