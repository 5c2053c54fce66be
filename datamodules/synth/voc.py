"""Synthetic PASCAL VOC root in the devkit's layout and syntax.

Writes ``OUT/VOCdevkit/VOC{year}/``: ``JPEGImages/<id>.jpg``, ``Annotations/<id>.xml``
(folder, filename, source, size, segmented, object(name, pose, truncated, difficult,
bndbox) with 1-based pixel boxes, tab-indented like the devkit's files),
``ImageSets/Main/{train,val,trainval,test}.txt`` and the 80 class files
``ImageSets/Main/<class>_<split>.txt`` in the devkit's ``"%s %2d"`` format (1 = has a
non-difficult object, 0 = only difficult ones, -1 = none). Half the images are ``test``
(as in VOC2007: 5,011 trainval / 4,952 test), the rest split evenly into train and val.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from datamodules.synth import staging_dir, write_marker
from datamodules.synth.images import render, sample_label_matrix, sample_objects
from datamodules.readers.voc import VOC_CLASSES

__all__ = ["write", "POPULARITY"]

#: VOC2007 trainval classes by image count, most frequent first (person, car, chair, dog...).
POPULARITY = tuple(VOC_CLASSES.index(c) for c in (
    "person", "car", "chair", "dog", "cat", "bird", "train", "pottedplant", "tvmonitor", "horse",
    "motorbike", "bottle", "bicycle", "aeroplane", "sofa", "diningtable", "bus", "boat", "cow", "sheep",
))
_POSES = ("Unspecified", "Left", "Right", "Frontal", "Rear")
SPLITS = ("train", "val", "trainval", "test")


def _xml(year: int, image_id: str, size: int, objects, rng: np.random.Generator) -> str:
    parts = [
        "<annotation>",
        f"\t<folder>VOC{year}</folder>",
        f"\t<filename>{image_id}.jpg</filename>",
        "\t<source>",
        f"\t\t<database>The VOC{year} Database</database>",
        f"\t\t<annotation>PASCAL VOC{year}</annotation>",
        "\t\t<image>fashionbench synthetic</image>",
        "\t</source>",
        "\t<size>",
        f"\t\t<width>{size}</width>",
        f"\t\t<height>{size}</height>",
        "\t\t<depth>3</depth>",
        "\t</size>",
        "\t<segmented>0</segmented>",
    ]
    for obj in objects:
        x0, y0, x1, y1 = obj.box
        parts += [
            "\t<object>",
            f"\t\t<name>{VOC_CLASSES[obj.label]}</name>",
            f"\t\t<pose>{_POSES[int(rng.integers(len(_POSES)))]}</pose>",
            f"\t\t<truncated>{int(x0 == 0 or y0 == 0 or x1 == size or y1 == size)}</truncated>",
            f"\t\t<difficult>{int(obj.difficult)}</difficult>",
            "\t\t<bndbox>",
            f"\t\t\t<xmin>{x0 + 1}</xmin>",
            f"\t\t\t<ymin>{y0 + 1}</ymin>",
            f"\t\t\t<xmax>{x1}</xmax>",
            f"\t\t\t<ymax>{y1}</ymax>",
            "\t\t</bndbox>",
            "\t</object>",
        ]
    parts.append("</annotation>")
    return "\n".join(parts) + "\n"


def write(out: Path, images: int = 200, seed: int = 0, year: int = 2007, size: int = 96) -> Path:
    """Write ``images`` synthetic VOC images with annotations at ``out``; returns ``out``."""
    rng = np.random.default_rng(seed)
    n, n_classes = images, len(VOC_CLASSES)
    prefix = "" if int(year) == 2007 else f"{int(year)}_"  # VOC2012-style ids: 2012_000001
    ids = np.array([f"{prefix}{i:06d}" for i in range(1, n + 1)])
    split_of = np.empty(n, dtype=object)
    order = rng.permutation(n)
    n_test = n // 2
    n_train = (n - n_test + 1) // 2
    split_of[order[:n_test]] = "test"
    split_of[order[n_test:n_test + n_train]] = "train"
    split_of[order[n_test + n_train:]] = "val"

    labels = sample_label_matrix(rng, n, n_classes, POPULARITY)
    easy = np.zeros((n, n_classes), dtype=bool)
    hard = np.zeros((n, n_classes), dtype=bool)
    with staging_dir(out) as tmp:
        base = tmp / "VOCdevkit" / f"VOC{year}"
        for sub in ("Annotations", "ImageSets/Main", "JPEGImages"):
            (base / sub).mkdir(parents=True)
        for row, image_id in enumerate(ids):
            objects = sample_objects(rng, labels[row], size, max_instances=2, difficult_rate=0.12)
            for obj in objects:
                (hard if obj.difficult else easy)[row, obj.label] = True
            render(objects, rng, size).save(base / "JPEGImages" / f"{image_id}.jpg", quality=90, subsampling=0)
            (base / "Annotations" / f"{image_id}.xml").write_text(_xml(year, image_id, size, objects, rng))
        value = np.where(easy, 1, np.where(hard, 0, -1))
        expected = {}
        main = base / "ImageSets" / "Main"
        for split in SPLITS:
            rows = np.flatnonzero(np.isin(split_of, ("train", "val")) if split == "trainval" else split_of == split)
            (main / f"{split}.txt").write_text("".join(f"{ids[r]}\n" for r in rows))
            for c, name in enumerate(VOC_CLASSES):
                (main / f"{name}_{split}.txt").write_text("".join("%s %2d\n" % (ids[r], value[r, c]) for r in rows))
            expected[split] = {
                "images": int(rows.size),
                "positives": easy[rows].sum(axis=0).tolist(),
                "ignored": (hard[rows] & ~easy[rows]).sum(axis=0).tolist(),
            }
        write_marker(tmp, "voc", n, seed, {"year": int(year), "label_names": list(VOC_CLASSES), "splits": expected})
    return out
