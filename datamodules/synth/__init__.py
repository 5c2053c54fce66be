"""Synthetic datasets in the real on-disk formats (interfaces.md ``fashionbench synth``).

``write_synthetic("voc" | "coco", out, images=N, seed=S)`` writes a dataset root that the
readers parse exactly like a real one, plus the marker file ``ROOT/fashionbench_synthetic.json``
(generator, seed, version, and the label counts the writer intended) that the readers
ignore and the datamodule reports as ``is_synthetic``. Image content depends on the labels
(``synth/images.py``), so a small CNN learns them. Output is deterministic given the seed
and appears atomically: each writer fills a temp folder next to ``out`` and renames it.
"""
from __future__ import annotations

import importlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from fashionbench.errors import InputError

__all__ = ["MARKER_FILE", "SYNTH_VERSION", "WRITERS", "write_synthetic", "write_marker", "staging_dir"]

#: Left in a synthetic root; ``MultiLabelDataModule.is_synthetic`` looks for it.
MARKER_FILE = "fashionbench_synthetic.json"
#: Bump when the generated content for a given seed changes.
SYNTH_VERSION = 1
#: dataset name -> module (under ``datamodules.synth``) with ``write(out, images, seed, **kw)``.
WRITERS = {"voc": "voc", "coco": "coco", "deepfashion": "deepfashion", "imaterialist": "imaterialist"}
WRITERS.update({"nus-wide": "nus_wide", "open-images": "open_images"})
DEFAULT_IMAGES = 200


def write_synthetic(dataset: str, out: str | os.PathLike, images: int = DEFAULT_IMAGES, seed: int = 0,
                    **options: Any) -> Path:
    """Write a synthetic ``dataset`` root at ``out`` (must not exist, or be an empty folder)."""
    if dataset not in WRITERS:
        raise InputError(f"no synthetic writer for '{dataset}'; known: {', '.join(sorted(WRITERS))}")
    if int(images) < 1:
        raise InputError(f"--images must be at least 1, got {images}")
    module = importlib.import_module(f"datamodules.synth.{WRITERS[dataset]}")
    return module.write(Path(out), images=int(images), seed=int(seed), **options)


def write_marker(root: Path, dataset: str, images: int, seed: int, expected: dict[str, Any]) -> None:
    """The marker file: who wrote the root, with what seed, and the intended label counts."""
    marker = {
        "generator": f"fashionbench.synth.{dataset}",
        "dataset": dataset,
        "version": SYNTH_VERSION,
        "seed": seed,
        "images": images,
        "expected": expected,
    }
    (root / MARKER_FILE).write_text(json.dumps(marker, indent=1) + "\n")


class staging_dir:
    """Context manager: a temp folder beside ``out``, renamed to ``out`` on success and
    removed on failure, so a crash never leaves half a dataset."""

    def __init__(self, out: Path):
        self.out = Path(out)

    def __enter__(self) -> Path:
        if self.out.exists() and (not self.out.is_dir() or any(self.out.iterdir())):
            raise InputError("output exists and is not an empty folder", path=self.out)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(dir=self.out.parent, prefix=f".{self.out.name}.tmp-"))
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        os.chmod(self.tmp, 0o755)
        if self.out.is_dir():
            self.out.rmdir()  # empty (checked on entry)
        os.replace(self.tmp, self.out)
