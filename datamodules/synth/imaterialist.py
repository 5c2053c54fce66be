"""Synthetic iMaterialist (Fashion) FGVC5 root in the official layout and JSON syntax.

Writes ``OUT/{train,validation,test}.json`` and ``OUT/images/<split>/<imageId>.jpg`` (the
layout ``fashionbench download imaterialist`` leaves). As in the real files: ``images``
entries are ``{"url", "imageId"}``, ``annotations`` entries ``{"labelId": [...], "imageId"}``
in the images' order with the label ids in no particular order; ids are strings in
``train.json``/``validation.json`` and integers in ``test.json``, which has no
``annotations``; each split numbers its images from 1. URLs point at the reserved
``.invalid`` domain, so nothing is ever fetched for them. About 5% of the listed images of
each split (at least one where a split has 5 or more) have no file, as the real roots lack
the images of dead URLs.

Labels follow the real label map (228 labels in 8 task groups) and its structure: one
gender and one category per image (sometimes two), one or two colours, and a few
materials, patterns, necklines, sleeves and styles, each group Zipf-distributed over a
seeded popularity order; the material leans on the category (co-occurrence for the
recurrent part to find). Pixels depend on the labels: the colour labels paint the image's
frame (the colour histogram sees them); every other label draws a fixed glyph
(``synth/images.py``: shape x colour for 80 glyphs) in one of three horizontal bands
(glyph ``k`` in band ``k // 80``), so all 207 non-colour labels look different.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import ImageDraw

from datamodules.readers.imaterialist import load_label_map
from datamodules.synth import staging_dir, write_marker
from datamodules.synth.images import SynthObject, render

__all__ = ["write", "COLOUR_RGB", "GROUP_COUNTS"]

#: RGB of the 21 colour labels (``Multi Color`` paints the frame in stripes of several).
COLOUR_RGB = {
    "Beige": (225, 198, 153), "Black": (10, 10, 10), "Blue": (20, 60, 220), "Bronze": (205, 127, 50),
    "Brown": (110, 60, 20), "Clear": (235, 240, 245), "Gold": (255, 200, 0), "Gray": (128, 128, 128),
    "Green": (30, 160, 40), "Maroon": (128, 0, 32), "Multi Color": (0, 0, 0), "Orange": (255, 130, 0),
    "Peach": (255, 203, 164), "Pink": (255, 150, 200), "Purple": (120, 30, 160), "Red": (220, 20, 30),
    "Silver": (192, 192, 200), "Tan": (210, 180, 140), "Teal": (0, 128, 128), "White": (255, 255, 255),
    "Yellow": (250, 240, 40),
}
_STRIPES = ((220, 20, 30), (30, 160, 40), (20, 60, 220), (250, 240, 40))
#: per task group: (min, max) labels an image gets, and the mean beyond the minimum
GROUP_COUNTS = {
    "gender": (1, 1, 0.0), "category": (1, 2, 0.2), "color": (1, 2, 0.4), "material": (0, 2, 0.8),
    "pattern": (0, 1, 0.5), "neckline": (0, 1, 0.4), "sleeve": (0, 1, 0.6), "style": (0, 2, 0.7),
}
SPLIT_SHARES = (("train", 0.7), ("validation", 0.2), ("test", 0.1))
MISSING_RATE = 0.05


def _zipf_choice(rng: np.random.Generator, order: np.ndarray, k: int, exclude: set[int]) -> list[int]:
    """``k`` distinct labels from ``order`` (most popular first), Zipf(1) weights."""
    weights = 1.0 / (1.0 + np.arange(order.size))
    weights[[i for i, c in enumerate(order) if c in exclude]] = 0.0
    k = min(k, int((weights > 0).sum()))
    if k == 0:
        return []
    return [int(c) for c in rng.choice(order, size=k, replace=False, p=weights / weights.sum())]


def _sample_labels(rng: np.random.Generator, groups: dict[str, np.ndarray]) -> list[int]:
    labels: list[int] = []
    category = None
    for group, (lo, hi, extra) in GROUP_COUNTS.items():
        order = groups[group]
        k = int(min(hi, lo + rng.poisson(extra))) if extra > 0 else lo
        chosen: list[int] = []
        if group == "material" and k > 0 and category is not None and rng.random() < 0.6:
            chosen.append(int(order[category % order.size]))  # the category's usual material
        chosen += _zipf_choice(rng, order, k - len(chosen), set(chosen))
        if group == "category":
            category = int(np.flatnonzero(order == chosen[0])[0])
        labels += chosen
    return labels


def _paint_frame(image, colours: list[str], size: int) -> None:
    border = max(2, size // 10)
    draw = ImageDraw.Draw(image)
    rgbs = [c for name in colours for c in (_STRIPES if name == "Multi Color" else (COLOUR_RGB[name],))]
    step = size / len(rgbs)
    for k, rgb in enumerate(rgbs):  # the frame in vertical sections, one per colour
        x0, x1 = int(round(k * step)), int(round((k + 1) * step)) - 1
        draw.rectangle([x0, 0, x1, border - 1], fill=rgb)
        draw.rectangle([x0, size - border, x1, size - 1], fill=rgb)
        if k == 0:
            draw.rectangle([0, 0, border - 1, size - 1], fill=rgb)
        if k == len(rgbs) - 1:
            draw.rectangle([size - border, 0, size - 1, size - 1], fill=rgb)


def _objects(rng: np.random.Generator, glyphs: list[int], size: int) -> list[SynthObject]:
    """One glyph per label in its band of the inner square (inside the frame)."""
    border = max(2, size // 10)
    inner = size - 2 * border
    band = inner // 3
    side = max(4, int(band * 0.85))
    out = []
    for g in glyphs:
        y0 = border + (g // 80) * band + (band - side) // 2
        x0 = border + int(rng.integers(0, max(1, inner - side + 1)))
        out.append(SynthObject(g % 80, (x0, y0, x0 + side, y0 + side)))
    return out


def write(out: Path, images: int = 200, seed: int = 0, size: int = 96) -> Path:
    """Write ``images`` synthetic iMaterialist images (train 70%, validation 20%, test 10%)."""
    rng = np.random.default_rng(seed)
    names, tasks, _ = load_label_map()
    n_labels = len(names)
    groups = {g: rng.permutation(np.flatnonzero(np.array(tasks) == g)) for g in GROUP_COUNTS}
    non_colour = [c for c in range(n_labels) if tasks[c] != "color"]
    glyph_of = {c: k for k, c in enumerate(non_colour)}  # 207 glyphs: 80 styles x 3 bands
    counts = [max(1, int(round(images * share))) for _, share in SPLIT_SHARES[:-1]]
    counts.append(max(1, images - sum(counts)))
    expected = {}
    with staging_dir(out) as tmp:
        for (split, _), n in zip(SPLIT_SHARES, counts):
            folder = tmp / "images" / split
            folder.mkdir(parents=True)
            n_missing = int(round(MISSING_RATE * n)) if n >= 5 else 0
            n_missing = max(n_missing, 1) if n >= 5 else 0
            missing = set(rng.choice(n, size=n_missing, replace=False).tolist()) if n_missing else set()
            doc_images, doc_annotations = [], []
            positives = np.zeros(n_labels, dtype=np.int64)
            for row in range(n):
                image_id = row + 1
                labels = _sample_labels(rng, groups)
                rng.shuffle(labels)
                colours = [names[c] for c in labels if tasks[c] == "color"]
                glyphs = [glyph_of[c] for c in labels if tasks[c] != "color"]
                image = render(_objects(rng, glyphs, size), rng, size)
                _paint_frame(image, colours, size)
                if row not in missing:
                    image.save(folder / f"{image_id}.jpg", quality=90)
                url = f"https://contestimg.synthetic.invalid/api/webimage/{rng.bytes(12).hex()}-large"
                if split == "test":
                    doc_images.append({"url": url, "imageId": image_id})
                    continue
                doc_images.append({"url": url, "imageId": str(image_id)})
                doc_annotations.append({"labelId": [str(c + 1) for c in labels], "imageId": str(image_id)})
                positives[labels] += 1
            doc = {"images": doc_images}
            if split != "test":
                doc["annotations"] = doc_annotations
            (tmp / f"{split}.json").write_text(json.dumps(doc))
            expected[split] = {
                "images": n, "missing_images": len(missing),
                "positives": positives.tolist() if split != "test" else [0] * n_labels,
            }
        write_marker(tmp, "imaterialist", images, seed, {"label_names": names, "splits": expected})
    return out
