"""``fashionbench data summary DATASET --root DIR`` (interfaces.md): a split's label counts.

Reads the annotations as they lie on disk now (no cache, no image opened) and returns
the JSON-ready dict: ``dataset``, ``split``, ``images``, ``labels``, ``label_names``,
``positives`` (per label, known positives), ``ignored`` (per label, masked entries),
``missing_images`` (the listed images, as root-relative paths, whose file is absent).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from datamodules.registry import get_reader
from fashionbench.errors import InputError

__all__ = ["summarize", "missing_files", "resolve_year_split"]


def missing_files(root: Path, rel_paths: Sequence[str]) -> list[str]:
    """The ``rel_paths`` with no file under ``root``: one ``listdir`` per folder and a
    vectorised membership test per folder (existence only; nothing is opened)."""
    if len(rel_paths) == 0:
        return []
    paths = np.array(rel_paths, dtype=str)
    parts = np.char.rpartition(paths, "/")
    folders, inverse = np.unique(parts[:, 0], return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    groups = np.split(order, np.cumsum(np.bincount(inverse, minlength=folders.size))[:-1])
    missing = np.ones(paths.size, dtype=bool)
    for folder, rows in zip(folders, groups):  # one listdir per folder
        try:
            present = np.array(os.listdir(root / folder), dtype=str)
        except (FileNotFoundError, NotADirectoryError):
            continue
        missing[rows] = ~np.isin(parts[rows, 2], present)
    return paths[missing].tolist()


def resolve_year_split(reader: Any, root: Path, split: str | None, year: int | str | None) -> tuple[str | None, Any]:
    """Defaults of ``data summary``: the year (then split) present on disk if exactly one
    is, else the reader's defaults (VOC 2007 ``trainval``, COCO 2014 ``train``)."""
    present = reader.available(root)
    if year is None:
        years = sorted({y for y, _ in present}, key=str)
        year = years[0] if len(years) == 1 else reader.default_year
    if split is None:
        splits = sorted({s for y, s in present if str(y) == str(year)})
        split = splits[0] if len(splits) == 1 else reader.default_split
    return split, year


def summarize(dataset: str, root: str | os.PathLike, split: str | None = None,
              year: int | str | None = None, task: str | None = None) -> dict[str, Any]:
    """The ``data summary`` JSON object for one split of ``dataset`` under ``root``."""
    root = Path(root)
    reader = get_reader(dataset)
    if not root.is_dir():
        raise InputError("dataset root is not a folder", path=root)
    split, year = resolve_year_split(reader, root, split, year)
    split, year, task = reader.resolve(split, year, task)
    index = reader.read(root, split, year, task)
    return {
        "dataset": dataset,
        "split": split,
        "images": len(index),
        "labels": index.num_labels,
        "label_names": list(index.label_names),
        "positives": index.positive_counts().tolist(),
        "ignored": index.ignored_counts().tolist(),
        "missing_images": missing_files(root, index.image_paths),
    }
