"""Synthetic Open Images v4 root in the 2018_04 layout and CSV syntax.

Writes (the layout of ``datamodules/readers/open_images.py``)::

    OUT/2018_04/class-descriptions.csv      MID,display name for the classes used (sorted by MID)
    OUT/2018_04/classes-trainable.txt       62 real trainable MIDs (the seen labels)
    OUT/2018_04/unseen_400_mids.txt         16 real MIDs outside the trainable list (the unseen)
    OUT/2018_04/<split>/<split>-annotations-human-imagelabels.csv   train 60%, validation 15%, test 25%
    OUT/images/<split>/<ImageID>.jpg
    OUT/fashionbench_label_vectors.npz      the 78 labels' FastText vectors, keyed by MID

The label set is a small, consistent subset of the real one: real MIDs and names from
``class-descriptions.csv`` whose lower-cased names are NUS-WIDE zero-shot labels, so that
their real FastText vectors (``assets/nuswide_fasttext300.npz``) give the semantic link a
zero-shot model needs; three of the unseen (Fauna, Flora, Diving) are in the real
unseen-400 list. Eight more real MIDs, in neither list, get rows too: the reader skips
them (``ignored_rows``).

Rows (``ImageID,Source,LabelName,Confidence``, sorted by ``ImageID``, 16 hex digits): each
image has 1-5 true labels drawn near a topic label in word-vector space (about 3% have
none); a true label is verified (a ``1`` row) 85% of the time, and 1-3 other labels get a
verified-negative ``0`` row. ``train`` verifies seen labels only (the unseen are "not
present in the training data", SDL §4.1), ``validation``/``test`` both. About 20% of the
images get a row for one of the eight other MIDs, and ~1% of the rows are exact repeats
(duplicates, no conflicts: those are tested with hand-written files).

Pixels: rendered from the image's *true* labels' vectors (verified or not, seen or not)
as in :mod:`datamodules.synth.nus_wide` (12 principal directions of the 78 vectors, one
grating each), so what an image shows is tied to the label vectors and zero-shot is
learnable.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from datamodules.synth import staging_dir, write_marker
from datamodules.synth.nus_wide import (
    VECTORS_FILE, load_label_vectors, render_semantic, semantic_codes, semantic_projection, standardise,
)

__all__ = ["write", "SEEN", "UNSEEN", "OTHER"]

#: Real trainable MIDs of ``classes-trainable.txt`` with their ``class-descriptions.csv`` names.
SEEN: tuple[tuple[str, str], ...] = (
    ("/m/01226z", "Football"), ("/m/012v4j", "Hiking"), ("/m/013_1c", "Statue"), ("/m/0134l", "Autumn"),
    ("/m/0138tl", "Toy"), ("/m/014j1m", "Apple"), ("/m/015kr", "Bridge"), ("/m/015p6", "Bird"),
    ("/m/018jz", "Baseball"), ("/m/0199g", "Bicycle"), ("/m/019jd", "Boat"), ("/m/01b2w5", "Sunset"),
    ("/m/01bqvp", "Sky"), ("/m/01c8br", "Street"), ("/m/01cbzq", "Rock"), ("/m/01d40f", "Dress"),
    ("/m/01d74z", "Night"), ("/m/01dv4h", "Portrait"), ("/m/01dws", "Bear"), ("/m/01fdzj", "Tower"),
    ("/m/01g317", "Person"), ("/m/01m3v", "Computer"), ("/m/01wb7", "Church"), ("/m/01yrx", "Cat"),
    ("/m/026bk", "Dance"), ("/m/0284w", "Desert"), ("/m/02vx4", "Soccer"), ("/m/02wbm", "Food"),
    ("/m/02xwb", "Fruit"), ("/m/02zr8", "Forest"), ("/m/039jq", "Glass"), ("/m/03jm5", "House"),
    ("/m/03k3r", "Horse"), ("/m/04h4w", "Lake"), ("/m/04rlf", "Music"), ("/m/04wv_", "Moon"),
    ("/m/05kq4", "Ocean"), ("/m/06cnp", "River"), ("/m/06gfj", "Road"), ("/m/06m_p", "Sun"),
    ("/m/07dm6", "Tiger"), ("/m/07j7r", "Tree"), ("/m/07jdr", "Train"), ("/m/081hv", "Wedding"),
    ("/m/0838f", "Water"), ("/m/0898b", "Zebra"), ("/m/08t9c_", "Grass"), ("/m/096mb", "Lion"),
    ("/m/09d_r", "Mountain"), ("/m/09t49", "Leaf"), ("/m/0b3yr", "Beach"), ("/m/0bl0l", "Garden"),
    ("/m/0bt9lr", "Dog"), ("/m/0bt_c3", "Book"), ("/m/0bwd_0j", "Elephant"), ("/m/0c9ph5", "Flower"),
    ("/m/0cgh4", "Building"), ("/m/0cmf2", "Airplane"), ("/m/0d4v4", "Window"), ("/m/0d5gx", "Castle"),
    ("/m/0jnvp", "Baby"), ("/m/0k4j", "Car"),
)
#: Real MIDs outside ``classes-trainable.txt`` (the first three are in the real unseen 400).
UNSEEN: tuple[tuple[str, str], ...] = (
    ("/m/035qhg", "Fauna"), ("/m/03bmqb", "Flora"), ("/m/02bkg", "Diving"), ("/m/01dgwv", "Bug"),
    ("/m/01gjs6", "Booby"), ("/m/02hrh1q", "Actor"), ("/m/053xrq", "Cabin"), ("/m/057wy", "Manhattan"),
    ("/m/0866r", "Weather"), ("/m/09c5_", "Tornado"), ("/m/03b61y", "Game"), ("/m/05wkw", "Photography"),
    ("/m/01ctsf", "Atmosphere"), ("/m/0521dbh", "Texture"), ("/m/0c5lg", "Judge"), ("/m/0dz9l", "Magic"),
)
#: Real MIDs in neither list: their rows are skipped by the reader.
OTHER: tuple[tuple[str, str], ...] = (
    ("/m/016dld", "Jerky"), ("/m/01c4dl", "Ball bearing"), ("/m/01hww_", "Autoharp"), ("/m/01n_5n", "Night heron"),
    ("/m/01sf9c", "Bowhead"), ("/m/02h6nbj", "Chiropractor"), ("/m/02q0tk", "Boza"), ("/m/0273sxl", "Station master"),
)
SPLITS = (("train", 0.60), ("validation", 0.15), ("test", 0.25))
_SOURCES = ("verification", "crowdsource-verification")


def _split_of(rng: np.random.Generator, n: int) -> np.ndarray:
    order = rng.permutation(n)
    cut1, cut2 = int(round(0.60 * n)), int(round(0.75 * n))
    split = np.empty(n, dtype=object)
    split[order[:cut1]], split[order[cut1:cut2]], split[order[cut2:]] = "train", "validation", "test"
    return split


def write(out: Path, images: int = 200, seed: int = 0, size: int = 96) -> Path:
    """Write ``images`` synthetic Open Images images with their label CSVs at ``out``."""
    rng = np.random.default_rng(seed)
    n = images
    labels = SEEN + UNSEEN
    mids = [m for m, _ in labels]
    n_seen = len(SEEN)
    names, vectors = load_label_vectors()
    vec_of = dict(zip(names, vectors))
    label_vectors = np.stack([vec_of[name.lower()] for _, name in labels])
    projection = semantic_projection(label_vectors)
    similar = label_vectors @ label_vectors.T
    popularity = 1.0 / (1.0 + rng.permutation(len(labels))) ** 0.7
    popularity /= popularity.sum()
    truth = np.zeros((n, len(labels)), dtype=bool)
    for i in range(n):
        if rng.random() < 0.03:
            continue  # an image with no true label: only negative rows
        topic = int(rng.choice(len(labels), p=popularity))
        near = np.exp(similar[topic] / 0.1)
        near[topic] = 0
        extra = rng.choice(len(labels), size=int(rng.integers(0, 5)), replace=False, p=near / near.sum())
        truth[i, topic] = True
        truth[i, extra] = True
    codes = standardise(semantic_codes(truth, label_vectors, projection))
    split = _split_of(rng, n)
    ids = rng.choice(2**62, size=n, replace=False).astype(np.uint64) * 3 + rng.integers(0, 3, size=n).astype(np.uint64)
    image_ids = [f"{int(v):016x}" for v in ids]
    rows: dict[str, list[tuple[str, str, str, int]]] = {s: [] for s, _ in SPLITS}
    for i in range(n):
        verifiable = n_seen if split[i] == "train" else len(labels)
        lines = []
        for c in np.flatnonzero(truth[i, :verifiable]):
            if rng.random() < 0.85:
                lines.append((mids[c], 1))
        negatives = [c for c in range(verifiable) if not truth[i, c]]
        for c in rng.choice(negatives, size=int(rng.integers(1, 4)), replace=False):
            lines.append((mids[int(c)], 0))
        if rng.random() < 0.2:
            lines.append((OTHER[int(rng.integers(len(OTHER)))][0], int(rng.integers(0, 2))))
        lines.sort()
        for mid, conf in lines:
            rows[split[i]].append((image_ids[i], _SOURCES[int(rng.random() < 0.2)], mid, conf))
            if rng.random() < 0.01:
                rows[split[i]].append(rows[split[i]][-1])  # an exact repeat
    expected = {}
    with staging_dir(out) as tmp:
        release = tmp / "2018_04"
        release.mkdir()
        described = sorted(SEEN + UNSEEN + OTHER)
        (release / "class-descriptions.csv").write_text("".join(f"{m},{name}\n" for m, name in described))
        (release / "classes-trainable.txt").write_text("".join(f"{m}\n" for m in sorted(m for m, _ in SEEN)))
        (release / "unseen_400_mids.txt").write_text("".join(f"{m}\n" for m, _ in UNSEEN))
        for name, _ in SPLITS:
            (release / name).mkdir()
            (tmp / "images" / name).mkdir(parents=True)
            ordered = sorted(rows[name], key=lambda r: r[0])  # stable: an image's rows keep their order
            with open(release / name / f"{name}-annotations-human-imagelabels.csv", "w", newline="") as handle:
                handle.write("ImageID,Source,LabelName,Confidence\n")
                handle.write("".join(f"{a},{b},{c},{d}\n" for a, b, c, d in ordered))
            expected[name] = _expected(ordered, [m for m, _ in sorted(SEEN)], [m for m, _ in UNSEEN])
        for i in sorted(range(n), key=lambda i: image_ids[i]):
            render_semantic(codes[i], rng, size).save(tmp / "images" / split[i] / f"{image_ids[i]}.jpg",
                                                      quality=90, subsampling=0)
        np.savez(tmp / VECTORS_FILE, names=np.array(mids), vectors=label_vectors.astype(np.float32))
        write_marker(tmp, "open-images", n, seed, {"code_dims": int(codes.shape[1]), "splits": expected})
    return out


def _expected(rows: list[tuple[str, str, str, int]], seen: list[str], unseen: list[str]) -> dict:
    """What ``data summary`` must report for each task, counted from the rows in plain Python."""
    out = {"rows": len(rows)}
    for task, names in (("multilabel", seen), ("zsl", unseen), ("gzsl", seen + unseen)):
        wanted = set(names)
        verified: dict[tuple[str, str], int] = {}
        for image, _, mid, conf in rows:
            if mid in wanted:
                verified[image, mid] = max(verified.get((image, mid), 0), conf)
        images = sorted({image for image, _ in verified})
        out[task] = {
            "images": len(images),
            "positives": [sum(1 for (i, m), v in verified.items() if m == name and v == 1) for name in names],
            "ignored": [len(images) - sum(1 for (i, m) in verified if m == name) for name in names],
            "ignored_rows": sum(1 for _, _, mid, _ in rows if mid not in wanted),
        }
    return out
