"""Synthetic MS-COCO root in the official layout and JSON syntax.

Writes ``OUT/annotations/instances_{train,val}{year}.json`` (one line, keys ``info``,
``images``, ``licenses``, ``annotations``, ``categories`` as in the 2014 release) and the
images ``OUT/{split}{year}/COCO_{split}{year}_<12-digit id>.jpg`` (2014 names; 2017 uses
``<12-digit id>.jpg``). Categories are the real 80 with their ids (gaps included) and
supercategories. Annotations have a polygon ``segmentation`` of the drawn glyph (or, for
``iscrowd=1``, an uncompressed RLE ``{"counts", "size"}`` of its box), ``area``, ``bbox``
``[x, y, w, h]``, ``image_id``, ``category_id`` and a unique ``id``. About 3% of images
(at least one a split) have no annotation and about 3% of objects (at least one a split)
are crowds. Two thirds of the images are train.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from datamodules.synth import staging_dir, write_marker
from datamodules.synth.images import SynthObject, glyph_polygon, polygon_area, render, sample_label_matrix, sample_objects

__all__ = ["write", "COCO_CATEGORIES", "POPULARITY"]

#: The 80 COCO categories: (id, name, supercategory), as in instances_*.json.
COCO_CATEGORIES = (
    (1, "person", "person"), (2, "bicycle", "vehicle"), (3, "car", "vehicle"),
    (4, "motorcycle", "vehicle"), (5, "airplane", "vehicle"), (6, "bus", "vehicle"),
    (7, "train", "vehicle"), (8, "truck", "vehicle"), (9, "boat", "vehicle"),
    (10, "traffic light", "outdoor"), (11, "fire hydrant", "outdoor"), (13, "stop sign", "outdoor"),
    (14, "parking meter", "outdoor"), (15, "bench", "outdoor"), (16, "bird", "animal"),
    (17, "cat", "animal"), (18, "dog", "animal"), (19, "horse", "animal"), (20, "sheep", "animal"),
    (21, "cow", "animal"), (22, "elephant", "animal"), (23, "bear", "animal"), (24, "zebra", "animal"),
    (25, "giraffe", "animal"), (27, "backpack", "accessory"), (28, "umbrella", "accessory"),
    (31, "handbag", "accessory"), (32, "tie", "accessory"), (33, "suitcase", "accessory"),
    (34, "frisbee", "sports"), (35, "skis", "sports"), (36, "snowboard", "sports"),
    (37, "sports ball", "sports"), (38, "kite", "sports"), (39, "baseball bat", "sports"),
    (40, "baseball glove", "sports"), (41, "skateboard", "sports"), (42, "surfboard", "sports"),
    (43, "tennis racket", "sports"), (44, "bottle", "kitchen"), (46, "wine glass", "kitchen"),
    (47, "cup", "kitchen"), (48, "fork", "kitchen"), (49, "knife", "kitchen"), (50, "spoon", "kitchen"),
    (51, "bowl", "kitchen"), (52, "banana", "food"), (53, "apple", "food"), (54, "sandwich", "food"),
    (55, "orange", "food"), (56, "broccoli", "food"), (57, "carrot", "food"), (58, "hot dog", "food"),
    (59, "pizza", "food"), (60, "donut", "food"), (61, "cake", "food"), (62, "chair", "furniture"),
    (63, "couch", "furniture"), (64, "potted plant", "furniture"), (65, "bed", "furniture"),
    (67, "dining table", "furniture"), (70, "toilet", "furniture"), (72, "tv", "electronic"),
    (73, "laptop", "electronic"), (74, "mouse", "electronic"), (75, "remote", "electronic"),
    (76, "keyboard", "electronic"), (77, "cell phone", "electronic"), (78, "microwave", "appliance"),
    (79, "oven", "appliance"), (80, "toaster", "appliance"), (81, "sink", "appliance"),
    (82, "refrigerator", "appliance"), (84, "book", "indoor"), (85, "clock", "indoor"),
    (86, "vase", "indoor"), (87, "scissors", "indoor"), (88, "teddy bear", "indoor"),
    (89, "hair drier", "indoor"), (90, "toothbrush", "indoor"),
)
_NAMES = [name for _, name, _ in COCO_CATEGORIES]
#: Most frequent COCO-2014 train categories by image count, first (person, chair, car, ...).
POPULARITY = tuple(_NAMES.index(c) for c in (
    "person", "chair", "car", "dining table", "cup", "bottle", "bowl", "handbag", "truck", "bench",
    "backpack", "book", "cell phone", "sink", "clock", "tv", "potted plant", "couch", "dog", "knife",
))
_LICENSES = [{"url": "http://creativecommons.org/licenses/by/2.0/", "id": 4, "name": "Attribution License"}]


def _rle_of_box(box: tuple[int, int, int, int], size: int) -> list[int]:
    """Uncompressed column-major COCO RLE counts of a filled box in a size x size mask."""
    x0, y0, x1, y1 = box
    inside = y1 - y0
    counts = [x0 * size + y0]
    for column in range(x0, x1):
        counts.append(inside)
        counts.append(size - inside if column < x1 - 1 else (size - y1) + (size - x1) * size)
    return counts


def _annotation(obj: SynthObject, image_id: int, ann_id: int, size: int) -> dict:
    x0, y0, x1, y1 = obj.box
    if obj.crowd:
        segmentation: object = {"counts": _rle_of_box(obj.box, size), "size": [size, size]}
        area = float((x1 - x0) * (y1 - y0))
    else:
        polygon = glyph_polygon(obj)
        segmentation, area = [polygon], round(polygon_area(polygon), 2)
    return {
        "segmentation": segmentation, "area": area, "iscrowd": int(obj.crowd), "image_id": image_id,
        "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
        "category_id": COCO_CATEGORIES[obj.label][0], "id": ann_id,
    }


def write(out: Path, images: int = 200, seed: int = 0, year: int = 2014, size: int = 96) -> Path:
    """Write ``images`` synthetic COCO images (train + val) with annotations at ``out``."""
    rng = np.random.default_rng(seed)
    n, n_labels = images, len(COCO_CATEGORIES)
    image_ids = np.sort(rng.choice(581_929, size=n, replace=False) + 1)
    is_val = np.zeros(n, dtype=bool)
    is_val[rng.permutation(n)[: n // 3]] = True
    labels = sample_label_matrix(rng, n, n_labels, POPULARITY)
    for split_rows in (np.flatnonzero(~is_val), np.flatnonzero(is_val)):  # ~3% empty, >= 1 a split
        if split_rows.size >= 4:
            labels[rng.choice(split_rows, size=max(1, round(0.03 * split_rows.size)), replace=False)] = False
    objects_of = [sample_objects(rng, labels[row], size, max_instances=2, crowd_rate=0.03) for row in range(n)]
    for split_rows in (np.flatnonzero(~is_val), np.flatnonzero(is_val)):  # >= 1 crowd a split
        rows_with_objects = [r for r in split_rows if objects_of[r]]
        if rows_with_objects and not any(o.crowd for r in split_rows for o in objects_of[r]):
            first = objects_of[rows_with_objects[0]][0]
            objects_of[rows_with_objects[0]][0] = SynthObject(first.label, first.box, crowd=True)
    next_ann_id = int(rng.integers(100_000, 900_000))
    docs = {
        split: {
            "info": {"description": f"fashionbench synthetic COCO {year} (not real data)", "version": "1.0",
                     "year": int(year), "contributor": "fashionbench synth", "date_created": "2024/01/01"},
            "images": [], "licenses": _LICENSES, "annotations": [],
            "categories": [{"supercategory": sup, "id": cid, "name": name} for cid, name, sup in COCO_CATEGORIES],
        }
        for split in ("train", "val")
    }
    positives = {s: np.zeros(n_labels, dtype=np.int64) for s in docs}
    crowd_counts = {s: 0 for s in docs}
    with staging_dir(out) as tmp:
        (tmp / "annotations").mkdir()
        for split in docs:
            (tmp / f"{split}{year}").mkdir()
        for row in range(n):
            split = "val" if is_val[row] else "train"
            image_id = int(image_ids[row])
            name = (f"COCO_{split}{year}_{image_id:012d}.jpg" if int(year) == 2014 else f"{image_id:012d}.jpg")
            objects = objects_of[row]
            render(objects, rng, size).save(tmp / f"{split}{year}" / name, quality=90, subsampling=0)
            docs[split]["images"].append({
                "license": 4, "file_name": name, "coco_url": "", "height": size, "width": size,
                "date_captured": "2013-11-14 16:28:13", "flickr_url": "", "id": image_id,
            })
            for obj in objects:
                docs[split]["annotations"].append(_annotation(obj, image_id, next_ann_id, size))
                next_ann_id += 1
                crowd_counts[split] += int(obj.crowd)
            positives[split] += np.bincount([o.label for o in objects], minlength=n_labels) > 0
        expected = {}
        for split, doc in docs.items():
            (tmp / "annotations" / f"instances_{split}{year}.json").write_text(json.dumps(doc))
            annotated = {a["image_id"] for a in doc["annotations"]}
            expected[split] = {
                "images": len(annotated),
                "images_without_annotations": len(doc["images"]) - len(annotated),
                "crowd_annotations": crowd_counts[split],
                "positives": positives[split].tolist(),
                "ignored": [0] * n_labels,
            }
        write_marker(tmp, "coco", n, seed, {"year": int(year), "label_names": _NAMES, "splits": expected})
    return out
