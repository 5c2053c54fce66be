"""Synthetic NUS-WIDE root in the official layout and syntax, with zero-shot-learnable images.

Writes (the layout of ``datamodules/readers/nus_wide.py``)::

    OUT/ConceptsList/Concepts81.txt                  the real 81 concepts (CRLF, as shipped)
    OUT/NUS_WID_Tags/TagList1k.txt                   the real 1,000 tags (CRLF)
    OUT/NUS_WID_Tags/AllTags1k.txt                   one row a line: 1,000 tab-terminated 0/1 values
    OUT/ImageList/Imagelist.txt                      C:\\ImageData\\Flickr\\<folder>\\<file>.jpg (CRLF)
    OUT/ImageList/{Train,Test}Imagelist.txt          <folder>\\<file>.jpg (CRLF), 60% / 40%
    OUT/Groundtruth/TrainTestLabels/Labels_<c>_{Train,Test}.txt   one 0/1 a line (LF, as shipped)
    OUT/Groundtruth/AllLabels/Labels_<c>.txt         the same, aligned with Imagelist.txt
    OUT/Flickr/<folder>/<NNNN>_<flickr id>.jpg       the images (about 1% listed but absent)
    OUT/fashionbench_label_vectors.npz               the 1,006 labels' FastText vectors (see below)

Images are grouped in folders named after one of their tags, as the real crawl's query
folders are, and the lists follow the folders in alphabetical order.

Labels look like NUS-WIDE's: each image has a topic concept (Zipf popularity; ~20% of the
images have no concept, as many real ones), 0-3 more concepts near it in word-vector
space, and 2-9 tags drawn with probability ``exp(cos(tag, concepts) / 0.08)`` (the tag
named like a concept goes with it 60% of the time); ~3% of images have no tag.

Pixels: a zero-shot model can only score an unseen concept if the image says something
about it through what the seen labels share with it. The label vectors (the real FastText
vectors of the 1,006 NUS-WIDE zero-shot labels that SDL uses, ``assets/
nuswide_fasttext300.npz``) are that link: an image's *code* is the mean of its positive
labels' vectors (tags and concepts) projected on the 12 principal directions of the 1,006
vectors (:func:`semantic_projection`) and z-scored over the root's images
(:func:`standardise`), and the image is rendered from the code alone
(:func:`render_semantic`): 12 oriented colour gratings (one per direction, a fixed
orientation, frequency and colour each, a random phase) whose contrasts are
``sigmoid(1.7 code)``, over the noisy background of :func:`datamodules.synth.images.render`. A CNN that reads the
contrasts recovers the projected mean vector, so a model trained on the 925 seen tags
ranks an unseen concept by how close its vector lies to the image's code: zero-shot is
learnable, and an unseen concept is predicted from seen ones because the tags of an image
are drawn near its concepts' vectors. Checked on an 800-image root (seed 1): ranking the
81 concepts by the true codes gives a ZSL mAP of 0.45 (random 0.06), and a two-layer MLP
on the 12 grating amplitudes measured from the pixels, trained on the 925 seen tags only
(listwise softmax over the seen tags' vectors), reaches ZSL mAP 0.24 and GZSL mAP 0.16
on the test images (random 0.05 and 0.02). ``fashionbench_label_vectors.npz`` (``names``,
``vectors``; not part of NUS-WIDE, the reader ignores it) holds those vectors for a smoke
run's ``embeddings:``.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image

from datamodules.synth import staging_dir, write_marker
from datamodules.synth.images import render

__all__ = ["write", "ASSETS", "load_label_vectors", "semantic_projection", "semantic_codes", "render_semantic",
           "standardise", "VECTORS_FILE", "CONCEPT_POPULARITY"]

ASSETS = Path(__file__).parent / "assets"
VECTORS_FILE = "fashionbench_label_vectors.npz"
CODE_DIMS = 12
#: NUS-WIDE concepts by image count, most frequent first (sky, clouds, person, water, ...).
CONCEPT_POPULARITY = (
    "sky", "clouds", "person", "water", "animal", "grass", "buildings", "window", "plants", "lake",
    "ocean", "road", "flowers", "sunset", "reflection", "rocks", "vehicle", "snow", "tree", "beach",
    "mountain", "street", "birds", "sun", "toy", "house", "dog", "boats", "cars", "leaf",
)


def _names(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@functools.lru_cache(maxsize=1)
def load_label_vectors() -> tuple[tuple[str, ...], np.ndarray]:
    """The 1,006 NUS-WIDE zero-shot labels' FastText vectors (unit norm, names sorted)."""
    with np.load(ASSETS / "nuswide_fasttext300.npz", allow_pickle=False) as z:
        return tuple(str(n) for n in z["names"]), z["vectors"].astype(np.float64)


def semantic_projection(vectors: np.ndarray, dims: int = CODE_DIMS, iterations: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mean [d], basis [d, dims], scale [dims])``: an orthonormal basis of the leading
    principal subspace of a label set's vectors and the spread of the vectors along it.

    Orthogonal (subspace) iteration from a fixed start, with ``einsum`` products and
    Gram-Schmidt only: LAPACK's and BLAS's worker threads can take tens of seconds for
    this on an oversubscribed machine, and the basis needs to be deterministic, not exact.
    """
    mean = vectors.mean(axis=0)
    x = vectors - mean
    dims = min(dims, *x.shape)
    q = np.random.default_rng(0).standard_normal((x.shape[1], dims))
    for _ in range(iterations):  # einsum: no BLAS threads (see above)
        q = _orthonormal(np.einsum("nd,nk->dk", x, np.einsum("nd,dk->nk", x, q)))
    proj = np.einsum("nd,dk->nk", x, q)
    order = np.argsort(-proj.var(axis=0), kind="stable")
    q, proj = q[:, order], proj[:, order]
    sign = np.where(q[np.abs(q).argmax(axis=0), np.arange(dims)] < 0, -1.0, 1.0)
    q *= sign
    scale = np.maximum(proj.std(axis=0), 1e-12)
    return mean, q, scale


def _orthonormal(m: np.ndarray) -> np.ndarray:
    """Modified Gram-Schmidt on the columns of ``m``."""
    out = np.array(m, dtype=np.float64)
    for k in range(out.shape[1]):
        for j in range(k):
            out[:, k] -= (out[:, j] @ out[:, k]) * out[:, j]
        out[:, k] /= max(np.linalg.norm(out[:, k]), 1e-300)
    return out


def semantic_codes(labels: np.ndarray, vectors: np.ndarray, projection: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """``float [n, dims]``: the standardised projection of each image's mean label vector
    (an image without a label gets the code of the labels' mean: all zeros)."""
    mean, basis, scale = projection
    counts = labels.sum(axis=1, keepdims=True)
    centre = np.where(counts > 0, labels.astype(np.float64) @ vectors / np.maximum(counts, 1), mean)
    return (centre - mean) @ basis / scale


@functools.lru_cache(maxsize=4)
def _gratings(size: int, dims: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(cos [dims, size, size], sin [dims, size, size], colours [dims, 3])``: one
    oriented grating per direction (orientation ``pi k / dims``, 5 or 9 cycles an image)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) / size
    phase, colours = [], []
    palette = np.array([(1, 0.2, 0.2), (0.2, 1, 0.2), (0.2, 0.4, 1), (1, 1, 0.2), (1, 0.2, 1), (0.2, 1, 1)])
    for k in range(dims):
        angle = np.pi * k / dims
        cycles = (5.0, 9.0)[k % 2]
        phase.append(2 * np.pi * cycles * (x * np.cos(angle) + y * np.sin(angle)))
        colours.append(palette[k % len(palette)])
    phase = np.stack(phase)
    return np.cos(phase), np.sin(phase), np.stack(colours)


def render_semantic(code: np.ndarray, rng: np.random.Generator, size: int = 96) -> Image.Image:
    """An RGB image: the noisy background of :func:`datamodules.synth.images.render` plus
    one grating per code entry, of contrast ``sigmoid(1.7 * code)`` and a random phase
    (the texture, not its position, carries the code)."""
    cos, sin, colours = _gratings(size, code.size)
    base = np.asarray(render([], rng, size), dtype=np.float64)
    contrast = 1.0 / (1.0 + np.exp(-1.7 * np.asarray(code, dtype=np.float64)))
    phi = rng.uniform(0, 2 * np.pi, size=code.size)
    weight = contrast * 110.0 / np.sqrt(code.size)
    texture = np.einsum("k,khw,kc->hwc", weight * np.cos(phi), cos, colours) \
        - np.einsum("k,khw,kc->hwc", weight * np.sin(phi), sin, colours)
    return Image.fromarray(np.clip(base + texture, 0, 255).astype(np.uint8), "RGB")


def standardise(codes: np.ndarray) -> np.ndarray:
    """Each code entry z-scored over the dataset's images (so contrasts use their range)."""
    return (codes - codes.mean(axis=0)) / np.maximum(codes.std(axis=0), 1e-9)


def _sample_labels(rng: np.random.Generator, n: int, concepts: list[str], tags: list[str],
                   vec_of: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(concept matrix bool [n, 81], tag matrix bool [n, 1000])`` (see module docstring)."""
    cv = np.stack([vec_of[c] for c in concepts])
    tv = np.stack([vec_of[t] for t in tags])
    rank = {c: i for i, c in enumerate(CONCEPT_POPULARITY)}
    order = sorted(range(len(concepts)), key=lambda i: rank.get(concepts[i], len(rank) + i))
    popularity = np.empty(len(concepts))
    popularity[order] = 1.0 / (1.0 + np.arange(len(concepts))) ** 0.8
    popularity /= popularity.sum()
    concept_sim = cv @ cv.T
    tag_index = {t: j for j, t in enumerate(tags)}
    has_c = np.zeros((n, len(concepts)), dtype=bool)
    has_t = np.zeros((n, len(tags)), dtype=bool)
    for i in range(n):
        if rng.random() < 0.8:
            topic = int(rng.choice(len(concepts), p=popularity))
            near = np.exp(concept_sim[topic] / 0.1)
            near[topic] = 0
            extra = rng.choice(len(concepts), size=min(int(rng.poisson(0.8)), 3), replace=False, p=near / near.sum())
            chosen = np.unique(np.concatenate([[topic], extra])).astype(int)
            has_c[i, chosen] = True
            centre = cv[chosen].mean(axis=0)
        else:
            centre = tv[int(rng.integers(len(tags)))]
            chosen = np.zeros(0, dtype=int)
        if rng.random() < 0.97:
            weight = np.exp(tv @ centre / np.linalg.norm(centre) / 0.08)
            k = min(2 + int(rng.poisson(3)), 9)
            has_t[i, rng.choice(len(tags), size=k, replace=False, p=weight / weight.sum())] = True
            for c in chosen:  # the tag named like a concept goes with it 60% of the time
                j = tag_index.get(concepts[c])
                if j is not None and rng.random() < 0.6:
                    has_t[i, j] = True
    return has_c, has_t


def write(out: Path, images: int = 200, seed: int = 0, size: int = 96) -> Path:
    """Write ``images`` synthetic NUS-WIDE images with their lists and labels at ``out``."""
    rng = np.random.default_rng(seed)
    concepts, tags = _names(ASSETS / "Concepts81.txt"), _names(ASSETS / "TagList1k.txt")
    names, vectors = load_label_vectors()
    vec_of = dict(zip(names, vectors))
    n = images
    has_c, has_t = _sample_labels(rng, n, concepts, tags, vec_of)
    concept_set = set(concepts)
    seen_tags = [t for t in tags if t not in concept_set]
    label_names = seen_tags + concepts  # the 1,006 of the gzsl task
    label_vectors = np.stack([vec_of[x] for x in label_names])
    projection = semantic_projection(label_vectors)
    # every positive label of an image: its tags (a concept-named tag is the concept) and concepts
    positive = np.zeros((n, len(label_names)), dtype=bool)
    column = {x: k for k, x in enumerate(label_names)}
    for j, t in enumerate(tags):
        positive[has_t[:, j], column[t]] = True
    positive[:, len(seen_tags):] |= has_c
    codes = standardise(semantic_codes(positive, label_vectors, projection))
    # folders named after a tag of the image (else a concept), files NNNN_<flickr id>.jpg
    folder = []
    for i in range(n):
        options = [tags[j] for j in np.flatnonzero(has_t[i])] or [concepts[j] for j in np.flatnonzero(has_c[i])] or ["misc"]
        folder.append(options[int(rng.integers(len(options)))])
    flickr_ids = rng.choice(2_990_000_000, size=n, replace=False) + 10_000_000
    order = sorted(range(n), key=lambda i: (folder[i], int(flickr_ids[i])))
    counter: dict[str, int] = {}
    files = {}
    for i in order:
        counter[folder[i]] = counter.get(folder[i], 0) + 1
        files[i] = f"{counter[folder[i]]:04d}_{int(flickr_ids[i])}.jpg"
    is_test = np.zeros(n, dtype=bool)
    is_test[rng.permutation(n)[: int(round(0.4 * n))]] = True
    absent = set(rng.choice(n, size=max(1, n // 100), replace=False).tolist()) if n >= 2 else set()
    crlf = "\r\n"
    with staging_dir(out) as tmp:
        for sub in ("ConceptsList", "NUS_WID_Tags", "ImageList", "Groundtruth/TrainTestLabels",
                    "Groundtruth/AllLabels", "Flickr"):
            (tmp / sub).mkdir(parents=True)
        (tmp / "ConceptsList" / "Concepts81.txt").write_bytes((ASSETS / "Concepts81.txt").read_bytes())
        (tmp / "NUS_WID_Tags" / "TagList1k.txt").write_bytes((ASSETS / "TagList1k.txt").read_bytes())
        with open(tmp / "NUS_WID_Tags" / "AllTags1k.txt", "w", newline="") as handle:
            for i in order:
                handle.write("".join(f"{int(v)}\t" for v in has_t[i]) + "\n")
        windows = {i: f"{folder[i]}\\{files[i]}" for i in order}
        with open(tmp / "ImageList" / "Imagelist.txt", "w", newline="") as handle:
            handle.write("".join(f"C:\\ImageData\\Flickr\\{windows[i]}{crlf}" for i in order))
        split_rows = {"Train": [i for i in order if not is_test[i]], "Test": [i for i in order if is_test[i]]}
        for split, rows in split_rows.items():
            with open(tmp / "ImageList" / f"{split}Imagelist.txt", "w", newline="") as handle:
                handle.write("".join(f"{windows[i]}{crlf}" for i in rows))
            for c, concept in enumerate(concepts):
                (tmp / "Groundtruth" / "TrainTestLabels" / f"Labels_{concept}_{split}.txt").write_text(
                    "".join(f"{int(has_c[i, c])}\n" for i in rows))
        for c, concept in enumerate(concepts):
            (tmp / "Groundtruth" / "AllLabels" / f"Labels_{concept}.txt").write_text(
                "".join(f"{int(has_c[i, c])}\n" for i in order))
        for i in order:
            code = codes[i]
            image = render_semantic(code, rng, size)
            if i in absent:
                continue  # a dead URL: listed, never downloaded
            (tmp / "Flickr" / folder[i]).mkdir(exist_ok=True)
            image.save(tmp / "Flickr" / folder[i] / files[i], quality=90, subsampling=0)
        np.savez(tmp / VECTORS_FILE, names=np.array(label_names), vectors=label_vectors.astype(np.float32))
        expected = {}
        seen_cols = [column[t] for t in seen_tags]
        for split, rows in (("train", split_rows["Train"]), ("test", split_rows["Test"])):
            p = positive[rows]
            expected[split] = {
                "images": len(rows),
                "missing_images": sorted(f"Flickr/{folder[i]}/{files[i]}" for i in rows if i in absent),
                "concepts81": {"positives": has_c[rows].sum(axis=0).tolist()},
                "seen_tags": {"positives": p[:, seen_cols].sum(axis=0).tolist()},
            }
        write_marker(tmp, "nus-wide", n, seed, {
            "label_names": {"concepts81": concepts, "seen_tags": seen_tags},
            "code_dims": CODE_DIMS, "splits": expected,
        })
    return out
