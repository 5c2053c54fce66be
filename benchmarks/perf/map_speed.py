"""Speed and peak memory of exact mAP: fashionbench vs torchmetrics vs one argsort.

Times exact macro mAP (metrics.md "Ranking metrics") on random float32 scores with ties
(rounded to a 1e-4 grid) and ~2% positives, every class holding at least one positive
(so torchmetrics, which counts classes without a positive differently, computes the same
number), with:

- ``fashionbench``: ``fashionbench.metrics.functional.average_precision(...).nanmean()``;
- ``torchmetrics``: ``MultilabelAveragePrecision(num_labels=C, average="macro",
  thresholds=None, validate_args=False)`` (exact; ``update`` then ``compute``);
- ``argsort``: one ``numpy.argsort(scores, axis=0)`` of the same matrix, the floor any
  exact method that sorts each class pays.

Each (method, size) runs in its own child process (``--child``), which builds the data
from the seed, records its resident set size (VmRSS), resets the kernel's peak-RSS mark
(``echo 5 > /proc/self/clear_refs``), runs the method ``--repeats`` times (once if a run
takes over 30 s) and reports the best wall time, the best process CPU time (all threads;
a shared machine disturbs it less) and ``VmHWM - VmRSS(before)``: the peak resident
memory the method added on top of its inputs. The parent checks that fashionbench and
torchmetrics agree and prints a table (exit status 1 if they do not).

    python benchmarks/perf/map_speed.py            # N=20,000 x C=1,000 and 6,400 x 7,586
    python benchmarks/perf/map_speed.py --quick    # small sizes, a sanity run
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from _proc_memory import memory_kb

FULL_SIZES = [(20_000, 1_000), (6_400, 7_586)]
QUICK_SIZES = [(2_000, 100), (640, 759)]
METHODS = ("fashionbench", "torchmetrics", "argsort")
POSITIVE_RATE = 0.02
TIE_GRID = 1e4
LONG_RUN_S = 30.0


def make_data(n: int, c: int, seed: int):
    """float32 scores on a 1e-4 grid (ties) and bool targets, >= 1 positive per class."""
    import numpy as np

    rng = np.random.default_rng(seed)
    scores = (np.round(rng.random((n, c), dtype=np.float32) * TIE_GRID) / TIE_GRID).astype(np.float32)
    targets = rng.random((n, c), dtype=np.float32) < POSITIVE_RATE
    targets[rng.integers(0, n, size=c), np.arange(c)] = True
    return scores, targets


def _run_child(method: str, n: int, c: int, seed: int, repeats: int, threads: int) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    scores, targets = make_data(n, c, seed)

    if method == "fashionbench":
        from fashionbench.metrics.functional import average_precision

        def run():
            return float(average_precision(torch.from_numpy(scores), torch.from_numpy(targets)).nanmean())

    elif method == "torchmetrics":
        from torchmetrics.classification import MultilabelAveragePrecision

        def run():
            metric = MultilabelAveragePrecision(num_labels=c, average="macro", thresholds=None, validate_args=False)
            metric.update(torch.from_numpy(scores), torch.from_numpy(targets).long())
            return float(metric.compute())

    elif method == "argsort":

        def run():
            np.argsort(scores, axis=0)
            return None

    else:
        raise SystemExit(f"unknown method {method!r}")

    warm = np.argsort(scores[:10], axis=0)  # load numpy's sort code before the baseline
    del warm
    before = memory_kb()["VmRSS"]
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    times, cpu_times, value = [], [], None
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        value = run()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
        if sum(times) > LONG_RUN_S:  # a run of half a minute or more is timed once
            break
    peak = memory_kb()["VmHWM"]
    return {"wall_s": min(times), "cpu_s": min(cpu_times), "peak_mb": max(0, peak - before) / 1024, "mAP": value}


def _measure(method: str, n: int, c: int, args) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--child", method, "--n", str(n), "--c", str(c),
               "--seed", str(args.seed), "--repeats", str(args.repeats), "--threads", str(args.threads)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    repo_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [repo_root, env.get("PYTHONPATH")]))
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{method} N={n} C={c} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a sanity run")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads (default: all cores)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="runs per method, best time kept (default 3, quick 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--c", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3

    if args.child:
        print(json.dumps(_run_child(args.child, args.n, args.c, args.seed, args.repeats, args.threads)))
        return 0

    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    print(f"exact mAP, float32 scores on a 1e-4 grid, {POSITIVE_RATE:.0%} positives, "
          f"threads={args.threads}, best of {args.repeats}, load average {_load()}")
    header = (f"{'N x C':>14} | {'method':>12} | {'wall s':>8} | {'cpu s':>8} | {'peak MB':>8} | {'mAP':>10}")
    print(header)
    print("-" * len(header))
    failed = False
    for n, c in sizes:
        rows = {method: _measure(method, n, c, args) for method in METHODS}
        for method in METHODS:
            row = rows[method]
            value = "" if row["mAP"] is None else f"{row['mAP']:.8f}"
            print(f"{f'{n:,} x {c:,}':>14} | {method:>12} | {row['wall_s']:8.3f} | {row['cpu_s']:8.3f} | "
                  f"{row['peak_mb']:8.1f} | {value:>10}")
        ours, theirs, floor = rows["fashionbench"], rows["torchmetrics"], rows["argsort"]
        agree = abs(ours["mAP"] - theirs["mAP"]) < 1e-6
        failed |= not agree
        print(f"{'':>14}   ours/floor {ours['wall_s'] / floor['wall_s']:.2f}x "
              f"(cpu {ours['cpu_s'] / floor['cpu_s']:.2f}x), "
              f"torchmetrics/ours {theirs['wall_s'] / ours['wall_s']:.1f}x "
              f"(cpu {theirs['cpu_s'] / ours['cpu_s']:.1f}x), "
              f"peak ours/torchmetrics {ours['peak_mb'] / max(theirs['peak_mb'], 1e-9):.2f}, "
              f"|mAP ours - torchmetrics| = {abs(ours['mAP'] - theirs['mAP']):.1e} "
              f"({'agree' if agree else 'DISAGREE'})")
    print(f"load average after: {_load()}")
    return 1 if failed else 0


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
