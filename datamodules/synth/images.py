"""What a synthetic image contains and how it looks; shared by every synthetic writer.

Labels: :func:`sample_label_matrix` draws realistic-looking multi-label sets: per-label
base rates fall off like Zipf (``popularity`` lists the frequent labels first, e.g.
``person``), and each image belongs to one of a few "scenes" whose labels are more likely
together (co-occurrence). Every label keeps a floor rate so each appears a few times.

Pixels: each label has a fixed glyph, a (shape, colour) pair unique to it (8 shapes x 10
colours covers 80 labels). :func:`render` draws every object's glyph at its box over a
noisy low-saturation background, so a small CNN can tell the labels apart in a few hundred
steps. Objects carry their box, so writers derive annotations (VOC ``bndbox``, COCO
``bbox``/polygon/RLE) from exactly what was drawn.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["SHAPES", "PALETTE", "SynthObject", "glyph_style", "glyph_polygon", "polygon_area",
           "sample_label_matrix", "sample_objects", "render"]

SHAPES = ("disc", "square", "triangle", "ring", "cross", "hstripes", "vstripes", "diamond")
PALETTE = (
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (255, 225, 25), (240, 50, 230),
    (70, 240, 240), (245, 130, 48), (145, 30, 180), (255, 255, 255), (0, 0, 0),
)
N_SCENES = 4


@dataclass(frozen=True)
class SynthObject:
    """One drawn object: its label, box ``(x0, y0, x1, y1)`` in pixels, and annotation flags."""

    label: int
    box: tuple[int, int, int, int]
    difficult: bool = False
    crowd: bool = False


def glyph_style(label: int) -> tuple[str, tuple[int, int, int]]:
    """The label's (shape, RGB colour); distinct for labels 0..79."""
    shape = label % len(SHAPES)
    colour = (label // len(SHAPES) + shape) % len(PALETTE)
    return SHAPES[shape], PALETTE[colour]


def sample_label_matrix(
    rng: np.random.Generator,
    n_images: int,
    num_labels: int,
    popularity: Sequence[int] = (),
    top_rate: float = 0.45,
) -> np.ndarray:
    """``bool [n_images, num_labels]`` label sets (see module docstring).

    ``popularity``: labels from most to less frequent (the rest follow in index order);
    ``top_rate``: base rate of the most frequent one. Every image gets at least one label
    (writers empty a few rows themselves where the real dataset has label-less images).
    """
    order = list(popularity) + [c for c in range(num_labels) if c not in set(popularity)]
    rank = np.empty(num_labels, dtype=np.int64)
    rank[order] = np.arange(num_labels)
    floor = min(0.5, 8.0 / max(n_images, 1))
    base = np.maximum(top_rate / (1.0 + rank) ** 0.9, floor)
    scene_of_label = np.arange(num_labels) % N_SCENES
    scene = rng.integers(0, N_SCENES, size=n_images)
    boost = np.where(scene_of_label[None, :] == scene[:, None], 2.0, 0.5)
    boost[:, order[0]] = 1.0  # the most frequent label (person) appears in every scene
    prob = np.clip(base[None, :] * boost, 0.0, 0.9)
    labels = rng.random((n_images, num_labels)) < prob
    # images without a label get their scene's most popular label
    scene_top = np.array([min((c for c in range(num_labels) if scene_of_label[c] == s), key=rank.__getitem__,
                              default=order[0]) for s in range(N_SCENES)])
    none = ~labels.any(axis=1)
    labels[np.flatnonzero(none), scene_top[scene[none]]] = True
    return labels


def _sample_box(rng: np.random.Generator, size: int, lo: float, hi: float) -> tuple[int, int, int, int]:
    side = int(round(rng.uniform(lo, hi) * size))
    x0, y0 = (int(v) for v in rng.integers(0, size - side + 1, size=2))
    return x0, y0, x0 + side, y0 + side


def sample_objects(
    rng: np.random.Generator,
    labels: np.ndarray,
    size: int,
    max_instances: int = 1,
    difficult_rate: float = 0.0,
    crowd_rate: float = 0.0,
) -> list[SynthObject]:
    """Objects for one image: 1..``max_instances`` per positive label, random boxes.

    Objects take 24-44% of the side, shrunk by ``sqrt(3 / count)`` when an image holds more
    than 3 (less occlusion); a difficult object is drawn small (10-18%), as VOC's difficult
    objects are small or occluded.
    """
    positives = np.flatnonzero(labels)
    copies = rng.integers(1, max_instances + 1, size=positives.size)
    shrink = min(1.0, float(np.sqrt(3.0 / max(int(copies.sum()), 1))))
    objects = []
    for label, count in zip(positives, copies):
        for _ in range(int(count)):
            difficult = bool(rng.random() < difficult_rate)
            crowd = bool(rng.random() < crowd_rate)
            lo, hi = (0.10, 0.18) if difficult else (0.24 * shrink, 0.44 * shrink)
            objects.append(SynthObject(int(label), _sample_box(rng, size, lo, hi), difficult, crowd))
    return objects


def glyph_polygon(obj: SynthObject) -> list[float]:
    """Outline of the drawn glyph as a flat ``[x0, y0, x1, y1, ...]`` list (COCO polygon)."""
    shape, _ = glyph_style(obj.label)
    x0, y0, x1, y1 = obj.box
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    if shape in ("disc", "ring"):
        t = np.linspace(0, 2 * np.pi, 16, endpoint=False)
        points = np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)
    elif shape == "triangle":
        points = np.array([(x0, y1), (x1, y1), (cx, y0)])
    elif shape == "diamond":
        points = np.array([(cx, y0), (x1, cy), (cx, y1), (x0, cy)])
    elif shape == "cross":
        a, b = rx / 3, ry / 3
        points = np.array([(cx - a, y0), (cx + a, y0), (cx + a, cy - b), (x1, cy - b), (x1, cy + b),
                           (cx + a, cy + b), (cx + a, y1), (cx - a, y1), (cx - a, cy + b), (x0, cy + b),
                           (x0, cy - b), (cx - a, cy - b)])
    else:  # square and striped squares
        points = np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
    return [round(float(v), 2) for v in points.ravel()]


def polygon_area(flat: Sequence[float]) -> float:
    """Shoelace area of a flat ``[x, y, ...]`` polygon."""
    xy = np.asarray(flat, dtype=np.float64).reshape(-1, 2)
    x, y = xy[:, 0], xy[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def _draw_glyph(draw: ImageDraw.ImageDraw, obj: SynthObject) -> None:
    shape, colour = glyph_style(obj.label)
    x0, y0, x1, y1 = obj.box
    w, h = x1 - x0, y1 - y0
    if shape == "disc":
        draw.ellipse([x0, y0, x1, y1], fill=colour)
    elif shape == "ring":
        draw.ellipse([x0, y0, x1, y1], outline=colour, width=max(3, w // 5))
    elif shape == "hstripes":
        for k in range(3):
            top = y0 + k * h * 2 // 5
            draw.rectangle([x0, top, x1, top + max(1, h // 5)], fill=colour)
    elif shape == "vstripes":
        for k in range(3):
            left = x0 + k * w * 2 // 5
            draw.rectangle([left, y0, left + max(1, w // 5), y1], fill=colour)
    else:
        flat = glyph_polygon(obj)
        draw.polygon(list(zip(flat[0::2], flat[1::2])), fill=colour)


def render(objects: Sequence[SynthObject], rng: np.random.Generator, size: int = 96) -> Image.Image:
    """An RGB ``size`` x ``size`` image: noisy grey-ish background plus each object's glyph."""
    base = rng.integers(70, 170) + rng.integers(-12, 13, size=3)
    noise = rng.integers(-28, 29, size=(size, size, 3))
    pixels = np.clip(base[None, None, :] + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(image)
    for obj in objects:
        _draw_glyph(draw, obj)
    return image
