"""Open Images label-index build and cache hit vs a plain ``pandas.read_csv`` of the same CSV.

Writes a synthetic ``train-annotations-human-imagelabels.csv`` in the real format
(``ImageID,Source,LabelName,Confidence``; 16-hex-digit image ids, rows grouped by image,
~3.3 rows an image, 60% positives, labels drawn Zipf-like from the 7,186 trainable + 400
unseen MIDs plus 400 other MIDs whose rows the reader skips, ~1% repeated rows of which
half conflict) into a dataset root, then runs, each in its own child process (so each
peak resident set size, ``VmHWM``, is its own):

- ``pandas``: ``pandas.read_csv(path)`` with default options: the baseline;
- ``build``: ``OpenImagesReader().read(root, "train", None, "gzsl")`` (7,586 labels) and
  the cache write (``LabelIndex.save``), timed apart;
- ``hit``: ``load_index(...)`` again: a cache hit (stat the annotation files, compare the
  stored key, memory-map the arrays), then one batch of 96 random rows made dense.

and prints times, peak RSS, the build/pandas ratio and the cache-hit time and RSS. The
aims (issue 7): build within 2x the ``read_csv``, build peak under 3 GB, a hit under 2 s
and 300 MB resident at 9M images.

    python benchmarks/perf/index_build.py              # 1.6M images, ~5.3M rows (default)
    python benchmarks/perf/index_build.py --full       # 9M images, ~30M rows (~1.4 GB CSV)
    python benchmarks/perf/index_build.py --images 200000   # a quick sanity run

The CSV is kept in ``--workdir`` (default ``$TMPDIR/fashionbench-index-bench``) and reused
by a later run with the same size and seed.

Results, 2026-12-01, the 2-core development machine (24 GB) while heavily shared (load
average 12-17, so wall times are inflated; the CPU times are the steadier comparison):

    default: 1,600,000 images, 5,332,541 rows (245 MB)
                     phase |   wall s |    cpu s | peak RSS MB
           pandas.read_csv |     8.30 |     2.70 |         669
        index build (read) |    10.27 |     3.33 |         541
             + cache write |     0.21 |     0.07 |         541
                 cache hit |    0.017 |    0.005 |          70 (resident after the hit)
    build/read_csv: wall 1.26x, cpu 1.26x; cache file 79 MB

    --full: 9,000,000 images, 29,997,440 rows (1,375 MB); 8,932,536 images x 7,586 labels
                     phase |   wall s |    cpu s | peak RSS MB
           pandas.read_csv |    42.84 |    13.96 |        3444
        index build (read) |    68.65 |    21.74 |        2290
             + cache write |     2.43 |     0.82 |        2290
                 cache hit |    0.008 |    0.004 |          70 (resident after the hit)
    build/read_csv: wall 1.66x, cpu 1.62x; cache file 442 MB; a batch of 96 made dense 10 ms

All four aims met at both sizes (before this work, on a simulated 9M x 7.6k index: build
96 s at 5.35 GB peak, cache hit 64 s, a 731 MB npz that could not be memory-mapped).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _proc_memory import memory_kb

REPO = Path(__file__).resolve().parents[2]
FIXTURE_LISTS = REPO / "tests" / "fixtures" / "open_images" / "2018_04"
ROWS_PER_IMAGE = 3.3
DEFAULT_IMAGES = 1_600_000
FULL_IMAGES = 9_000_000


# --------------------------------------------------------------------------- data
def label_lists(seed: int) -> tuple[list[str], list[str], list[str]]:
    """(trainable 7,186, unseen 400, other 400) MIDs: the real lists when the test
    fixtures are there, else made-up MIDs of the same shape."""
    import numpy as np

    if (FIXTURE_LISTS / "classes-trainable.txt").is_file():
        trainable = (FIXTURE_LISTS / "classes-trainable.txt").read_text().split()
        unseen = (FIXTURE_LISTS / "unseen_400_mids.txt").read_text().split()
    else:
        trainable = [f"/m/0t{k:05x}" for k in range(7186)]
        unseen = [f"/m/0u{k:04x}" for k in range(400)]
    rng = np.random.default_rng(seed)
    other = [f"/m/0z{k:04x}{int(rng.integers(10))}" for k in range(400)]
    return trainable, unseen, other


def write_csv(path: Path, n_images: int, seed: int) -> int:
    """The synthetic CSV (see module docstring), written in 1M-image chunks; its row count."""
    import numpy as np

    rng = np.random.default_rng(seed)
    trainable, unseen, other = label_lists(seed)
    mids = np.array(trainable + unseen + other, dtype="S")
    weights = 1.0 / (1.0 + np.arange(mids.size)) ** 0.8
    rng.shuffle(weights)
    cdf = np.cumsum(weights / weights.sum())
    sources = np.array([b"verification", b"crowdsource-verification"])
    rows_written = 0
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as out:
        out.write(b"ImageID,Source,LabelName,Confidence\n")
        for lo in range(0, n_images, 1_000_000):
            n = min(1_000_000, n_images - lo)
            ids = rng.integers(0, 2**63, size=n, dtype=np.int64).astype(np.uint64) * 2 + rng.integers(0, 2, size=n).astype(np.uint64)
            id_text = np.char.zfill(np.char.mod("%x", ids.astype(np.uint64)), 16).astype("S16")
            per = np.maximum(1, rng.poisson(ROWS_PER_IMAGE - 1, size=n) + 1)
            image = np.repeat(np.arange(n), per)
            label = np.minimum(np.searchsorted(cdf, rng.random(image.size)), mids.size - 1)
            conf = (rng.random(image.size) < 0.6).astype(np.int8)
            dup = rng.random(image.size) < 0.01  # repeat ~1% of rows, half with the other value
            image = np.concatenate([image, image[dup]])
            label = np.concatenate([label, label[dup]])
            conf = np.concatenate([conf, np.where(rng.random(int(dup.sum())) < 0.5, conf[dup], 1 - conf[dup])])
            order = np.argsort(image, kind="stable")
            image, label, conf = image[order], label[order], conf[order]
            src = sources[rng.integers(0, 2, size=image.size)]
            line = np.char.add(np.char.add(np.char.add(id_text[image], b","), src), b",")
            line = np.char.add(np.char.add(np.char.add(line, mids[label]), b","), np.where(conf == 1, b"1", b"0"))
            out.write(b"\n".join(line.tolist()) + b"\n")
            rows_written += image.size
    os.replace(tmp, path)
    return rows_written


def prepare(workdir: Path, n_images: int, seed: int) -> tuple[Path, dict]:
    root = workdir / f"oi-{n_images}-s{seed}"
    csv_path = root / "2018_04" / "train" / "train-annotations-human-imagelabels.csv"
    info_path = root / "bench.json"
    if info_path.is_file() and csv_path.is_file():
        return root, json.loads(info_path.read_text())
    shutil.rmtree(root, ignore_errors=True)
    csv_path.parent.mkdir(parents=True)
    trainable, unseen, _ = label_lists(seed)
    (root / "2018_04" / "classes-trainable.txt").write_text("\n".join(trainable) + "\n")
    (root / "2018_04" / "unseen_400_mids.txt").write_text("\n".join(unseen) + "\n")
    start = time.perf_counter()
    rows = write_csv(csv_path, n_images, seed)
    info = {"images": n_images, "rows": rows, "bytes": csv_path.stat().st_size,
            "write_s": round(time.perf_counter() - start, 1)}
    info_path.write_text(json.dumps(info))
    return root, info


# --------------------------------------------------------------------------- children
def child(phase: str, root: Path, cache: Path) -> dict:
    sys.path.insert(0, str(REPO))
    csv_path = root / "2018_04" / "train" / "train-annotations-human-imagelabels.csv"
    if phase == "pandas":
        import pandas as pd

        before = memory_kb()["VmRSS"]
        start, cpu = time.perf_counter(), time.process_time()
        frame = pd.read_csv(csv_path)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        return {"wall_s": wall, "cpu_s": cpu, "rows": len(frame), "rss_before_mb": before / 1024,
                "peak_mb": memory_kb()["VmHWM"] / 1024}
    import numpy as np

    from datamodules.index import cache_key, cache_path, load_index
    from datamodules.readers.open_images import OpenImagesReader

    reader = OpenImagesReader()
    if phase == "build":
        before = memory_kb()["VmRSS"]
        start, cpu = time.perf_counter(), time.process_time()
        index = reader.read(root, "train", None, "gzsl")
        read_s, read_cpu = time.perf_counter() - start, time.process_time() - cpu
        peak_read = memory_kb()["VmHWM"]
        path = cache_path(reader, root, "train", None, "gzsl", cache)
        start, cpu = time.perf_counter(), time.process_time()
        index.save(path, cache_key=cache_key(reader, root, "train", None, "gzsl"))
        save_s, save_cpu = time.perf_counter() - start, time.process_time() - cpu
        return {"read_s": read_s, "save_s": save_s, "read_cpu_s": read_cpu, "save_cpu_s": save_cpu, "images": len(index), "labels": index.num_labels,
                "verified": int(index.mask_indices.size), "positives": int(index.pos_indices.size),
                "stats": {k: index.meta[k] for k in ("rows", "ignored_rows", "duplicate_rows", "conflicting_pairs")},
                "rss_before_mb": before / 1024, "peak_read_mb": peak_read / 1024,
                "peak_mb": memory_kb()["VmHWM"] / 1024, "cache_mb": path.stat().st_size / 2**20}
    if phase == "hit":
        calls = {"n": 0}
        real = reader.read

        def counted(*args):
            calls["n"] += 1
            return real(*args)

        reader.read = counted  # type: ignore[method-assign]
        before = memory_kb()["VmRSS"]
        start, cpu = time.perf_counter(), time.process_time()
        index = load_index(reader, root, "train", None, "gzsl", cache_dir=cache)
        hit_s, hit_cpu = time.perf_counter() - start, time.process_time() - cpu
        after = memory_kb()["VmRSS"]
        rows = np.sort(np.random.default_rng(0).choice(len(index), size=96, replace=False))
        start = time.perf_counter()
        targets, mask = index.dense_targets(rows), index.dense_mask(rows)
        batch_s = time.perf_counter() - start
        return {"hit_s": hit_s, "hit_cpu_s": hit_cpu, "rebuilt": calls["n"], "images": len(index), "rss_before_mb": before / 1024,
                "rss_after_mb": after / 1024, "batch_s": batch_s, "batch_positives": int(targets.sum()),
                "batch_known": int(mask.sum()), "first_path": index.image_paths[0]}
    raise SystemExit(f"unknown phase {phase}")


def run_child(phase: str, root: Path, cache: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", phase, "--root", str(root), "--cache", str(cache)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=DEFAULT_IMAGES)
    parser.add_argument("--full", action="store_true", help=f"{FULL_IMAGES:,} images (~30M rows)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "fashionbench-index-bench"))
    parser.add_argument("--child")
    parser.add_argument("--root")
    parser.add_argument("--cache")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, Path(args.root), Path(args.cache))))
        return
    n_images = FULL_IMAGES if args.full else args.images
    root, info = prepare(Path(args.workdir), n_images, args.seed)
    cache = Path(args.workdir) / f"cache-{n_images}-s{args.seed}"
    shutil.rmtree(cache, ignore_errors=True)
    print(f"CSV: {info['images']:,} images, {info['rows']:,} rows, {info['bytes'] / 2**20:,.0f} MB "
          f"(written in {info['write_s']} s); load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    pandas = run_child("pandas", root, cache)
    build = run_child("build", root, cache)
    hit = run_child("hit", root, cache)
    total = build["read_s"] + build["save_s"]
    total_cpu = build["read_cpu_s"] + build["save_cpu_s"]
    print(f"{'phase':>22} | {'wall s':>8} | {'cpu s':>8} | {'peak RSS MB':>11}")
    print("-" * 59)
    print(f"{'pandas.read_csv':>22} | {pandas['wall_s']:8.2f} | {pandas['cpu_s']:8.2f} | {pandas['peak_mb']:11.0f}")
    print(f"{'index build (read)':>22} | {build['read_s']:8.2f} | {build['read_cpu_s']:8.2f} | {build['peak_read_mb']:11.0f}")
    print(f"{'  + cache write':>22} | {build['save_s']:8.2f} | {build['save_cpu_s']:8.2f} | {build['peak_mb']:11.0f}")
    print(f"{'cache hit':>22} | {hit['hit_s']:8.3f} | {hit['hit_cpu_s']:8.3f} | {hit['rss_after_mb']:11.0f}"
          " (resident after the hit)")
    print(f"{'  + one batch of 96':>22} | {hit['batch_s']:8.4f} |")
    print(f"index: {build['images']:,} images x {build['labels']:,} labels, {build['verified']:,} verified pairs, "
          f"{build['positives']:,} positives; rows {build['stats']}; cache file {build['cache_mb']:,.0f} MB; "
          f"hit rebuilt {hit['rebuilt']}x")
    print(f"ratios build/read_csv: wall {total / pandas['wall_s']:.2f}x, cpu {total_cpu / pandas['cpu_s']:.2f}x "
          f"(build incl. the cache write); peak RSS build/read_csv {build['peak_mb'] / pandas['peak_mb']:.2f}")
    ok = (total <= 2 * pandas["wall_s"] and build["peak_mb"] < 3072 and hit["hit_s"] < 2
          and hit["rss_after_mb"] < 300 and hit["rebuilt"] == 0)
    print("aims (build <= 2x read_csv wall, build peak < 3 GB, hit < 2 s and < 300 MB): " + ("met" if ok else "NOT met"))

if __name__ == "__main__":
    main()
