"""Synthetic DeepFashion Category and Attribute Prediction root, in the official layout
and syntax (``datamodules/readers/deepfashion.py``).

Writes ``OUT/Anno/{list_category_cloth,list_category_img,list_attr_cloth,list_attr_img,list_bbox}.txt``,
``OUT/Eval/list_eval_partition.txt`` and the JPEGs ``OUT/img/<Product_Title>/img_00000001.jpg``.
The two cloth lists are the real ones, byte for byte (50 categories, 1,000 attributes;
package data in ``datamodules/readers/deepfashion_cloth/``). Every list starts with its count
line and header line; the image name is padded to 71 characters as in the real lists (so
fields are separated by runs of spaces), attribute values are ``%2d`` fields joined by
spaces, and boxes are zero-padded (``072 079 232 273``). Folder names are product titles
built from the image's own attributes and category, e.g. ``Striped_Chiffon_Blouse`` or
``Floral_Print_A-Line_Dress``; images with the same title share the folder and are numbered
in it from 1. All lists share one row order. About 72% / 14% / 14% of the images are
train / val / test (the real 209,222 / 40,000 / 40,000).

Labels: a category per image (Zipf-like popularity, most frequent first as in DeepFashion:
Dress, Tee, Blouse, ...); the 11 pattern groups of ``deepfashion_patterns.yaml`` at rates
that mirror the semantic-embedding paper's imbalance (Solid, Stripe, Animal above 5%, the
rest below; Solid excludes the other patterns); each positive group sets one (sometimes two)
of its member attributes to 1; 1-3 further non-pattern attributes are 1; about 0.1% of the
remaining entries are 0 (unknown), and each split has at least one pattern entry left
unknown by a 0 on a member of a group the image is negative for. In every split with at
least 11 images each pattern group has a positive.

Pixels (depend on the labels): a noisy grey background; the garment is the box of
``list_bbox.txt`` (inside the image, x_2/y_2 exclusive as PIL's crop takes them), filled
with the texture of each positive pattern group (one horizontal band per group: flat colour,
tartan, flowers, stripes, checks, stars, tie-dye rings, leopard spots, letters, dots,
paisley drops; a noisy plain colour when no group is positive); in its centre a grey label
patch carries the category's glyph (``synth/images.py``: a shape-and-colour pair per
label), so the box always contains the glyph.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from datamodules.readers.deepfashion import CLOTH_DIR, load_pattern_groups, read_cloth_list
from datamodules.synth import staging_dir, write_marker
from datamodules.synth.images import SynthObject, _draw_glyph
from fashionbench.errors import InputError

__all__ = ["write", "POPULARITY", "PATTERN_RATES", "SPLIT_SHARES", "title_of"]

#: DeepFashion categories, most frequent first (approximate order of the real image
#: counts); the rest follow in list order.
POPULARITY = ("Dress", "Tee", "Blouse", "Shorts", "Tank", "Skirt", "Cardigan", "Sweater", "Jacket", "Top",
              "Blazer", "Romper", "Jeans", "Jumpsuit", "Leggings", "Joggers", "Hoodie", "Sweatpants",
              "Kimono", "Coat", "Cutoffs", "Sweatshorts")
#: Per-image rate of each pattern group (majority > 5%: Solid, Stripe, Animal, as in the
#: semantic-embedding paper §V; the others are minorities).
PATTERN_RATES = {"Solid": 0.30, "Plaid": 0.035, "Floral": 0.045, "Stripe": 0.14, "Check": 0.035,
                 "Graphic": 0.04, "Tie Dye": 0.03, "Animal": 0.07, "Words/Letters": 0.03, "Dot": 0.04,
                 "Paisley": 0.03}
SPLIT_SHARES = {"train": 209_222 / 289_222, "val": 40_000 / 289_222, "test": 40_000 / 289_222}
UNKNOWN_RATE = 0.001
_NAME_FIELD = 71  # the real lists pad image_name to 71 characters
_GARMENT = np.array([(200, 40, 50), (30, 60, 150), (240, 240, 235), (25, 25, 30), (90, 150, 60),
                     (235, 200, 60), (120, 60, 140), (230, 120, 160), (110, 190, 210), (150, 90, 50),
                     (250, 150, 40), (60, 130, 120)], dtype=np.int64)
_PATCH = (128, 128, 128)
_WORDS = ("LOVE", "NYC", "PARIS", "ABC", "XOXO", "CITY", "WILD", "HEY")


def title_of(words: list[str]) -> str:
    """A folder name from attribute/category names: ``["floral print", "a-line", "Dress"]`` ->
    ``Floral_Print_A-Line_Dress``."""
    parts = []
    for phrase in words:
        for word in phrase.split():
            parts.append("-".join(piece[:1].upper() + piece[1:] for piece in word.split("-")))
    return "_".join(parts)


def _pad(name: str) -> str:
    return name.ljust(_NAME_FIELD) if len(name) < _NAME_FIELD else name + " "


def _colours(rng: np.random.Generator, k: int) -> list[np.ndarray]:
    """``k`` distinct garment colours."""
    return [_GARMENT[i] for i in rng.choice(len(_GARMENT), size=k, replace=False)]


# --------------------------------------------------------------------------- textures
def _texture(group: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """``uint8 [h, w, 3]`` swatch of one pattern group (periods of 6-16 px)."""
    yy, xx = np.mgrid[0:h, 0:w]
    c1, c2, c3 = _colours(rng, 3)
    out = np.empty((h, w, 3), dtype=np.int64)
    out[:] = c1
    dy, dx = (int(v) for v in rng.integers(0, 16, size=2))
    if group == "Solid":
        pass
    elif group == "Stripe":
        out[((yy + dy) // 4) % 2 == 0] = c2
    elif group == "Check":
        out[((yy + dy) // 6 + (xx + dx) // 6) % 2 == 0] = c2
    elif group == "Plaid":
        band_y, band_x = (yy + dy) % 16 < 5, (xx + dx) % 16 < 5
        out[band_y] = (out[band_y] + c2) // 2
        out[band_x] = (out[band_x] + c3) // 2
        out[((yy + dy) % 16 == 10) | ((xx + dx) % 16 == 10)] = (20, 20, 20)
    elif group == "Dot":
        out[((yy + dy) % 8 - 4) ** 2 + ((xx + dx) % 8 - 4) ** 2 <= 4] = c2
    elif group == "Tie Dye":
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        radius = np.hypot(yy - cy, xx - cx) + 2.5 * np.sin(5 * np.arctan2(yy - cy, xx - cx))
        ring = (radius // 3).astype(np.int64) % 3
        bright = np.array([(250, 60, 160), (60, 200, 250), (250, 230, 50)], dtype=np.int64)
        out[:] = bright[ring]
    else:
        base = (205, 160, 90) if group == "Animal" else tuple(int(v) for v in c1)
        image = Image.new("RGB", (w, h), base)
        draw = ImageDraw.Draw(image)
        ink = tuple(int(v) for v in c2)
        if group == "Words/Letters":  # letters dark on a light garment, light on a dark one
            ink = (15, 15, 15) if np.mean(base) >= 110 else (245, 245, 245)
        _draw_motifs(draw, group, w, h, rng, ink)
        return np.asarray(image, dtype=np.uint8)
    return out.astype(np.uint8)


def _draw_motifs(draw: ImageDraw.ImageDraw, group: str, w: int, h: int, rng: np.random.Generator,
                 ink: tuple[int, int, int]) -> None:
    """Scattered motifs drawn with PIL: flowers, leopard spots, paisley drops, stars, words."""
    if group == "Words/Letters":
        font = ImageFont.load_default(size=9)
        for top in range(-int(rng.integers(0, 6)), h, 10):
            left = -int(rng.integers(0, 12))
            while left < w:
                word = _WORDS[int(rng.integers(len(_WORDS)))]
                draw.text((left, top), word, fill=ink, font=font)
                left += 6 * len(word) + 4
        return
    if group == "Graphic":  # two bold stars with black outlines
        for cx in (w * 0.25, w * 0.75):
            cy, r = h / 2, min(w / 4, h / 2) * 0.9
            t = np.arange(10) * np.pi / 5 - np.pi / 2
            radii = np.where(np.arange(10) % 2 == 0, r, r * 0.45)
            draw.polygon([(cx + q * np.cos(a), cy + q * np.sin(a)) for q, a in zip(radii, t)],
                         fill=ink, outline=(0, 0, 0), width=2)
        return
    n = max(2, int(w * h / 90))
    for _ in range(n):
        x, y = float(rng.uniform(0, w)), float(rng.uniform(0, h))
        if group == "Floral":
            for k in range(5):
                a = 2 * np.pi * k / 5
                px, py = x + 2.6 * np.cos(a), y + 2.6 * np.sin(a)
                draw.ellipse([px - 1.8, py - 1.8, px + 1.8, py + 1.8], fill=ink)
            draw.ellipse([x - 1.2, y - 1.2, x + 1.2, y + 1.2], fill=(250, 220, 40))
        elif group == "Animal":
            rx, ry = float(rng.uniform(2.5, 4.5)), float(rng.uniform(2.0, 3.5))
            draw.ellipse([x - rx, y - ry, x + rx, y + ry], fill=(120, 70, 30), outline=(15, 10, 5), width=2)
        else:  # Paisley: a drop with a curled tail
            draw.ellipse([x - 3.5, y - 2.5, x + 3.5, y + 2.5], fill=ink, outline=(20, 20, 20))
            draw.polygon([(x + 2.5, y - 1.5), (x + 7, y - 5), (x + 3.5, y + 1)], fill=ink)
            draw.ellipse([x - 1, y - 1, x + 1, y + 1], fill=(245, 240, 230))


def _render(rng: np.random.Generator, width: int, height: int, box: tuple[int, int, int, int],
            groups: list[str], category: int) -> Image.Image:
    """Background noise, the garment box with its pattern bands, the label patch and glyph."""
    base = rng.integers(70, 170) + rng.integers(-12, 13, size=3)
    pixels = np.clip(base[None, None, :] + rng.integers(-28, 29, size=(height, width, 3)), 0, 255)
    x1, y1, x2, y2 = box
    bw, bh = x2 - x1, y2 - y1
    if groups:
        edges = np.linspace(y1, y2, len(groups) + 1).round().astype(int)
        for group, top, bottom in zip(groups, edges[:-1], edges[1:]):
            pixels[top:bottom, x1:x2] = _texture(group, int(bottom - top), bw, rng)
    else:  # no pattern attribute: a plain colour with a fabric-like noise
        colour = _colours(rng, 1)[0]
        pixels[y1:y2, x1:x2] = np.clip(colour + rng.integers(-22, 23, size=(bh, bw, 3)), 0, 255)
    image = Image.fromarray(pixels.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    side = max(8, int(round(0.42 * min(bw, bh))))
    px, py = x1 + (bw - side) // 2, y1 + (bh - side) // 2
    draw.rectangle([px, py, px + side - 1, py + side - 1], fill=_PATCH)
    _draw_glyph(draw, SynthObject(category, (px + 2, py + 2, px + side - 2, py + side - 2)))
    return image


# --------------------------------------------------------------------------- labels
def _splits(rng: np.random.Generator, n: int) -> np.ndarray:
    order = rng.permutation(n)
    n_val = n_test = int(round(n * SPLIT_SHARES["val"]))
    if n >= 3:
        n_val, n_test = max(1, n_val), max(1, n_test)
    out = np.full(n, "train", dtype=object)
    out[order[:n_val]] = "val"
    out[order[n_val:n_val + n_test]] = "test"
    return out.astype(str)


def _categories(rng: np.random.Generator, n: int, names: list[str]) -> np.ndarray:
    order = [names.index(c) for c in POPULARITY] + [i for i, c in enumerate(names) if c not in POPULARITY]
    rank = np.empty(len(names), dtype=np.int64)
    rank[order] = np.arange(len(names))
    weight = 1.0 / (1.0 + rank) ** 0.9 + 0.01
    return rng.choice(len(names), size=n, p=weight / weight.sum())


def _draw_patterns(rng: np.random.Generator, n: int, group_names: list[str]) -> np.ndarray:
    """``bool [n, groups]`` at :data:`PATTERN_RATES`; Solid excludes the other patterns."""
    rates = np.array([PATTERN_RATES.get(name, 0.04) for name in group_names])
    pos = rng.random((n, len(group_names))) < rates
    if "Solid" in group_names:
        solid = group_names.index("Solid")
        others = np.delete(np.arange(len(group_names)), solid)
        pos[pos[:, others].any(axis=1), solid] = False
    return pos


def _cover_groups(rng: np.random.Generator, patterns: np.ndarray, split_of: np.ndarray) -> list[int]:
    """Give each group a positive in every split of >= (groups) images by turning images into
    one-group images (taking them from groups that keep another positive); returns the rows."""
    changed = []
    g = patterns.shape[1]
    for split in ("train", "val", "test"):
        rows = np.flatnonzero(split_of == split)
        if rows.size < g:
            continue
        for k in range(g):
            if patterns[rows, k].any():
                continue
            counts = patterns[rows].sum(axis=0)
            spare = [r for r in rows if r not in changed and np.all(counts[patterns[r]] > 1)]
            r = int(rng.choice(spare if spare else [r for r in rows if r not in changed]))
            patterns[r] = False
            patterns[r, k] = True
            changed.append(r)
    return changed


def write(out: Path, images: int = 200, seed: int = 0, size: int = 96, year: int | None = None) -> Path:
    """Write ``images`` synthetic DeepFashion images with all lists at ``out``; returns ``out``."""
    if year is not None:
        raise InputError(f"deepfashion has no year or edition (got --year {year})")
    rng = np.random.default_rng(seed)
    n = int(images)
    categories = read_cloth_list(CLOTH_DIR / "list_category_cloth.txt", "category")
    attributes = read_cloth_list(CLOTH_DIR / "list_attr_cloth.txt", "attribute")
    groups, _ = load_pattern_groups()
    group_names = list(groups)
    attr_index = {name: c for c, name in enumerate(attributes.names)}
    members = [np.array([attr_index[a] for a in groups[g]]) for g in group_names]
    n_groups_of = np.zeros(len(attributes.names), dtype=np.int64)
    for m in members:
        n_groups_of[m] += 1
    in_group = n_groups_of > 0
    # a positive group sets members of no other group ("floral paisley" would add Paisley)
    own = [m[n_groups_of[m] == 1] for m in members]
    plain_attrs = np.flatnonzero(~in_group)  # attributes that are no pattern
    plain_weight = 1.0 / (1.0 + rng.permutation(plain_attrs.size)) ** 0.8
    plain_weight /= plain_weight.sum()

    def labels_of(pattern_row: np.ndarray, plain: np.ndarray) -> tuple[np.ndarray, list[int]]:
        """Attribute values of one product (1 for a member of each positive group, and the
        plain attributes), and the attributes its title names."""
        row = np.full(len(attributes.names), -1, dtype=np.int8)
        chosen = []
        for g in np.flatnonzero(pattern_row):
            picks = rng.choice(own[g], size=min(own[g].size, 1 + int(rng.random() < 0.3)), replace=False)
            row[picks] = 1
            chosen.append(int(picks[0]))
        row[plain] = 1
        return row, chosen[:1] + [int(plain[0])]

    # products (folders) of 1-5 images sharing category and attributes; each image its split
    sizes: list[int] = []
    while sum(sizes) < n:
        sizes.append(int(rng.integers(1, 6)))
    sizes[-1] -= sum(sizes) - n
    product_of = np.repeat(np.arange(len(sizes)), sizes)
    p_category = _categories(rng, len(sizes), categories.names)
    p_patterns = _draw_patterns(rng, len(sizes), group_names)
    p_plain = [rng.choice(plain_attrs, size=int(rng.integers(1, 4)), replace=False, p=plain_weight)
               for _ in sizes]
    p_labels = [labels_of(p_patterns[p], p_plain[p]) for p in range(len(sizes))]
    split_of = _splits(rng, n)
    category = p_category[product_of]
    patterns = p_patterns[product_of]
    values = np.stack([p_labels[p][0] for p in product_of])
    title_attrs = [p_labels[p][1] for p in product_of]
    for r in _cover_groups(rng, patterns, split_of):  # a covering image is a product of its own
        values[r], title_attrs[r] = labels_of(patterns[r], p_plain[product_of[r]])
    unknown = (rng.random(values.shape) < UNKNOWN_RATE) & (values == -1)
    values[unknown] = 0
    for split in ("train", "val", "test"):  # one pattern entry per split left unknown by a 0
        rows = np.flatnonzero(split_of == split)
        candidates = [(r, g) for r in rows for g in range(len(group_names)) if not patterns[r, g]]
        if candidates:
            r, g = candidates[int(rng.integers(len(candidates)))]
            values[r, rng.choice(members[g])] = 0

    # product folders: title from the image's labels; same title, same folder; list order by folder
    titles = [title_of([attributes.names[a] for a in title_attrs[r]] + [categories.names[category[r]]])
              for r in range(n)]
    folder_order = {t: k for k, t in enumerate(dict.fromkeys(titles))}
    order = sorted(range(n), key=lambda r: (folder_order[titles[r]], r))
    count_in: dict[str, int] = {}
    names = [""] * n
    for r in order:
        count_in[titles[r]] = count_in.get(titles[r], 0) + 1
        names[r] = f"img/{titles[r]}/img_{count_in[titles[r]]:08d}.jpg"

    with staging_dir(out) as tmp:
        (tmp / "Anno").mkdir()
        (tmp / "Eval").mkdir()
        for name in ("list_category_cloth.txt", "list_attr_cloth.txt"):
            (tmp / "Anno" / name).write_bytes((CLOTH_DIR / name).read_bytes())
        boxes = np.zeros((n, 4), dtype=np.int64)
        for r in order:
            width = size if rng.random() < 0.5 else int(round(size * 0.75))
            height = size
            bw = int(round(width * rng.uniform(0.55, 0.85)))
            bh = int(round(height * rng.uniform(0.60, 0.90)))
            x1, y1 = int(rng.integers(0, width - bw + 1)), int(rng.integers(0, height - bh + 1))
            boxes[r] = (x1, y1, x1 + bw, y1 + bh)
            groups_here = [group_names[g] for g in np.flatnonzero(patterns[r])]
            image = _render(rng, width, height, tuple(int(v) for v in boxes[r]), groups_here, int(category[r]))
            path = tmp / names[r]
            path.parent.mkdir(parents=True, exist_ok=True)
            image.save(path, quality=90, subsampling=0)
        lists = {
            "Anno/list_category_img.txt": ("image_name  category_label", [str(category[r] + 1) for r in order]),
            "Anno/list_attr_img.txt": ("image_name  attribute_labels",
                                       [" ".join("%2d" % v for v in values[r]) for r in order]),
            "Anno/list_bbox.txt": ("image_name  x_1  y_1  x_2  y_2",
                                   [" ".join("%03d" % v for v in boxes[r]) for r in order]),
            "Eval/list_eval_partition.txt": ("image_name  evaluation_status", [str(split_of[r]) for r in order]),
        }
        for rel, (header, cells) in lists.items():
            body = "".join(f"{_pad(names[r])}{cell}\n" for r, cell in zip(order, cells))
            (tmp / rel).write_text(f"{n}\n{header}\n{body}")

        expected = {}
        for split in ("train", "val", "test"):
            rows = np.flatnonzero(split_of == split)
            v = values[rows]
            group_pos = np.stack([(v[:, m] == 1).any(axis=1) for m in members], axis=1) if rows.size else \
                np.zeros((0, len(members)), dtype=bool)
            group_known = group_pos | np.stack([(v[:, m] == -1).all(axis=1) for m in members], axis=1) \
                if rows.size else np.zeros((0, len(members)), dtype=bool)
            expected[split] = {
                "images": int(rows.size),
                "category": {"positives": np.bincount(category[rows], minlength=len(categories.names)).tolist()},
                "attributes": {"positives": (v == 1).sum(axis=0).tolist(), "ignored": (v == 0).sum(axis=0).tolist()},
                "patterns": {"positives": group_pos.sum(axis=0).tolist(), "ignored": (~group_known).sum(axis=0).tolist()},
            }
        write_marker(tmp, "deepfashion", n, seed, {"pattern_groups": group_names, "splits": expected})
    return out
