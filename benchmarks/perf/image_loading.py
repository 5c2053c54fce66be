"""Loader throughput on large JPEGs: the suite's loader (draft decoding) against a plain
PIL open + convert + resize, in the same run, on the same files.

Both paths end in the same place, an RGB image resized to ``target``² (bilinear): the
baseline decodes every pixel (``Image.open(p).convert("RGB").resize(...)``); the suite's
``datamodules.images.load_image(p, target_size=target)`` lets libjpeg decode at 1/2, 1/4 or
1/8 scale while the shorter side stays >= ``target``, then resizes the same way.

    python benchmarks/perf/image_loading.py                 # 12 synthetic 4000x3000 JPEGs, target 448
    python benchmarks/perf/image_loading.py --images 4 --repeats 1   # quick

Prints images/s of both, their ratio, and the mean absolute pixel difference of the two
448² results (draft decoding is a slightly different, still faithful, downscale).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from datamodules.images import load_image  # noqa: E402


def write_photos(folder: Path, n: int, width: int, height: int, seed: int = 0) -> list[Path]:
    """Photo-like JPEGs: smooth gradients plus noise (so they do not compress to nothing)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    paths = []
    for i in range(n):
        base = np.stack([(x / width) * 255, (y / height) * 255, ((x + y) / (width + height)) * 255], -1)
        pixels = np.clip(base * rng.uniform(0.5, 1.0) + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        path = folder / f"photo_{i:03d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    return paths


def plain(path: Path, target: int) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB").resize((target, target), Image.BILINEAR)


def suite(path: Path, target: int) -> Image.Image:
    return load_image(path, target_size=target).resize((target, target), Image.BILINEAR)


def best_rate(fn, paths: list[Path], target: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for path in paths:
            fn(path, target)
        best = min(best, time.perf_counter() - t0)
    return len(paths) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--target", type=int, default=448)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_photos(Path(tmp), args.images, args.width, args.height)
        plain_rate = best_rate(plain, paths, args.target, args.repeats)
        suite_rate = best_rate(suite, paths, args.target, args.repeats)
        diff = np.mean([np.abs(np.asarray(plain(p, args.target), np.float32) - np.asarray(suite(p, args.target), np.float32)).mean()
                        for p in paths[:3]])
    print(f"image loading, {args.images} JPEGs {args.width}x{args.height} -> {args.target}x{args.target} (best of {args.repeats}):")
    print(f"  plain PIL open + convert + resize: {plain_rate:7.2f} images/s")
    print(f"  fashionbench load_image (draft):   {suite_rate:7.2f} images/s")
    print(f"  ratio (draft / plain): {suite_rate / plain_rate:.2f}x; mean |pixel difference| {diff:.2f} / 255")


if __name__ == "__main__":
    main()
