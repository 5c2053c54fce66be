"""Exact multi-label evaluation at Open Images test scale: class-sharded DDP vs one process
vs torchmetrics' gather of every row.

The same synthetic ``[N, C]`` matrix (default N = 125,456 × C = 7,586, the Open Images
test set: float32 scores on a 1e-4 grid, so there are ties; 0.2% positives, a little
above the test set's ~8 verified positive labels per image; 90% of the entries known;
positives score higher on average) is scored three ways, each in its own child process:

- ``single``: one process (``--threads`` torch threads, default 2) updates a
  ``MultilabelEvaluator`` batch by batch with every row and computes;
- ``sharded``: ``--world`` gloo ranks (forked, 1 thread each) each update the default
  ``MultilabelEvaluator`` with their rows (contiguous halves) and compute: counts on the
  own rows, an all-to-all of class shards, ranking per shard, per-class results gathered
  (``fashionbench/metrics/sharded.py``);
- ``gather``: the same ranks with ``MultilabelEvaluator(sharded=False)``: torchmetrics
  gathers the list states of every rank onto every rank (``dist_reduce_fx="cat"``) and
  each rank computes everything.

Every rank builds its rows (a contiguous ``N / W``) from the seed block by block (512
rows per block -- one ``update`` each, like an evaluation batch -- from its own generator), so the three see the same matrix.
Measured: the wall and process CPU time of ``compute()`` (the slowest rank for the DDP modes, between barriers), and each
process's peak resident memory during ``compute()`` above its baseline (``VmHWM``, reset
by ``clear_refs`` once the rows are in, minus ``VmRSS`` after the imports, before any row
existed, after a ``malloc_trim``: so the evaluator's own rows count, the data generator's
freed buffers do not), against its *share*: the bytes
of its own evaluator state (``N·C/W`` entries × 6 bytes: float32 score, bool target, bool
mask). The mAP and per-class AP of each mode are compared with the single process.

A mode whose estimated memory does not fit in ``MemAvailable`` (with 2 GB to spare) is
not started; its line says what it would need. torchmetrics' gather at full scale needs
about 17 GB per rank (its own rows, the copy torchmetrics caches before a sync, the
gathered list and its concatenation), which a 24 GB machine cannot give two ranks: there
``--quick`` (N / 10) measures all three.

    python benchmarks/perf/ddp_eval.py            # full Open Images test size
    python benchmarks/perf/ddp_eval.py --quick    # N = 12,546: every mode, a few minutes
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

from _proc_memory import memory_kb

OPEN_IMAGES_TEST = (125_456, 7_586)
BLOCK_ROWS = 512  # rows per generator block and per update (an evaluation batch)
POSITIVE_RATE = 0.002
KNOWN_RATE = 0.9
BYTES_PER_ENTRY = 6  # evaluator state: float32 score + bool target + bool mask
SPARE_BYTES = 2 << 30
MODES = ("single", "sharded", "gather")


# ------------------------------------------------------------------------------ data
def make_block(block: int, rows: int, c: int, seed: int):
    """Rows ``[block * BLOCK_ROWS, +rows)`` of the synthetic matrix, from their own generator
    (drawn 64 rows at a time: the generator's own buffers stay around 2 MB)."""
    import torch

    gen = torch.Generator().manual_seed(seed * 1_000_003 + block)
    scores = torch.empty(rows, c)
    targets = torch.empty(rows, c, dtype=torch.bool)
    mask = torch.empty(rows, c, dtype=torch.bool)
    for lo in range(0, rows, 64):
        hi = min(lo + 64, rows)
        torch.lt(torch.rand(hi - lo, c, generator=gen), POSITIVE_RATE, out=targets[lo:hi])
        torch.lt(torch.rand(hi - lo, c, generator=gen), KNOWN_RATE, out=mask[lo:hi])
        torch.rand(hi - lo, c, generator=gen, out=scores[lo:hi])
    scores.add_(targets, alpha=0.5).mul_(1e4 / 1.5).round_().div_(1e4)  # ties on a 1e-4 grid
    return scores, targets, mask


def row_blocks(n: int, world: int, rank: int) -> list[tuple[int, int, int]]:
    """``(block, start, stop)``: the rows of ``rank`` (a contiguous ``n / world``) by block."""
    lo, hi = rank * n // world, (rank + 1) * n // world
    out = []
    for block in range(lo // BLOCK_ROWS, (hi + BLOCK_ROWS - 1) // BLOCK_ROWS):
        first = block * BLOCK_ROWS
        start, stop = max(lo, first) - first, min(hi, first + BLOCK_ROWS) - first
        if start < stop:
            out.append((block, start, stop))
    return out


# --------------------------------------------------------------------------- memory
def _reset_peak() -> None:
    """Hand the heap's free pages back (``malloc_trim``: the generator's freed buffers would
    otherwise stay resident), then restart the peak mark at the current resident set."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:  # not Linux, or not allowed: the peak then includes the baseline's history
        pass


def _available_bytes() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def estimate_bytes(mode: str, n: int, c: int, world: int) -> int:
    """Rough resident need of a mode, all its processes together (baselines included)."""
    full, base = n * c * BYTES_PER_ENTRY, 400 << 20
    share = full // world
    if mode == "single":  # its rows + their concatenation in compute + work
        return 2 * full + base + (300 << 20)
    if mode == "sharded":  # own rows + its class shard (score + 1-byte code) + work
        return world * (share + n * ((c + world - 1) // world) * 5 + base + (300 << 20))
    # gather: own rows + torchmetrics' cached copy + gathered list + its concatenation
    return world * (2 * share + 2 * full + base)


# --------------------------------------------------------------------------- children
def _fill(evaluator, n: int, c: int, seed: int, world: int, rank: int) -> int:
    rows = 0
    for block, start, stop in row_blocks(n, world, rank):
        scores, targets, mask = make_block(block, min(BLOCK_ROWS, n - block * BLOCK_ROWS), c, seed)
        evaluator.update(scores[start:stop], targets[start:stop], mask[start:stop])
        rows += stop - start
    return rows


def _single(args) -> dict:
    import torch

    from fashionbench.metrics import MultilabelEvaluator

    torch.set_num_threads(args.threads)
    before = memory_kb()["VmRSS"]
    evaluator = MultilabelEvaluator(args.classes, ks=(3,))
    rows = _fill(evaluator, args.rows, args.classes, args.seed, 1, 0)
    _reset_peak()
    start, cpu = time.perf_counter(), time.process_time()
    result = evaluator.compute()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak = memory_kb()["VmHWM"]
    return {"ranks": [{"rank": 0, "rows": rows, "wall_s": wall, "cpu_s": cpu, "peak_kb": peak - before,
                       "baseline_kb": before}], "result": result}


def _rank_main(rank: int, args, out_dir: str) -> None:
    import torch
    import torch.distributed as dist

    from fashionbench.metrics import MultilabelEvaluator

    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=args.world)
    try:
        before = memory_kb()["VmRSS"]
        evaluator = MultilabelEvaluator(args.classes, ks=(3,), sharded=args.child == "sharded")
        rows = _fill(evaluator, args.rows, args.classes, args.seed, args.world, rank)
        _reset_peak()
        dist.barrier()
        start, cpu = time.perf_counter(), time.process_time()
        result = evaluator.compute()
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        dist.barrier()
        peak = memory_kb()["VmHWM"]
        record = {"rank": rank, "rows": rows, "wall_s": wall, "cpu_s": cpu, "peak_kb": peak - before,
                  "baseline_kb": before, "shard": getattr(evaluator, "last_shard_stats", {})}
        if rank == 0:
            record["result"] = result
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as handle:
            json.dump(record, handle)
    finally:
        dist.destroy_process_group()


def _ddp(args) -> dict:
    import socket

    import torch

    from fashionbench.metrics import MultilabelEvaluator  # noqa: F401  (imported once, before the fork)

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    with tempfile.TemporaryDirectory() as out_dir:
        torch.multiprocessing.start_processes(_rank_main, args=(args, out_dir), nprocs=args.world, join=True,
                                              start_method="fork")
        ranks = [json.load(open(os.path.join(out_dir, f"rank{r}.json"))) for r in range(args.world)]
    result = ranks[0].pop("result")
    return {"ranks": ranks, "result": result}


def _run_mode(mode: str, args) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--child", mode, "--rows", str(args.rows),
               "--classes", str(args.classes), "--world", str(args.world), "--threads", str(args.threads),
               "--seed", str(args.seed)]
    threads = args.threads if mode == "single" else 1
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    repo_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [repo_root, env.get("PYTHONPATH")]))
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": (done.stderr or done.stdout).strip().splitlines()[-1:] or ["failed"], "total_s": time.perf_counter() - start}
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["total_s"] = time.perf_counter() - start
    return out


# ----------------------------------------------------------------------------- report
def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def _ap_diff(a: list, b: list) -> float:
    diffs = [abs(x - y) for x, y in zip(a, b) if x is not None and y is not None]
    same_none = all((x is None) == (y is None) for x, y in zip(a, b))
    return max(diffs, default=0.0) if same_none else float("inf")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N / 10 (12,546 rows): every mode fits in a few GB")
    parser.add_argument("--rows", type=int, default=None, help=f"N (default {OPEN_IMAGES_TEST[0]:,})")
    parser.add_argument("--classes", type=int, default=OPEN_IMAGES_TEST[1])
    parser.add_argument("--world", type=int, default=2, help="DDP ranks")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of the single process (default: --world)")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rows is None:
        args.rows = OPEN_IMAGES_TEST[0] // 10 if args.quick else OPEN_IMAGES_TEST[0]
    if args.threads is None:
        args.threads = args.world
    if args.child:
        print(json.dumps(_single(args) if args.child == "single" else _ddp(args)))
        return 0

    n, c, w = args.rows, args.classes, args.world
    share_gb = n * c * BYTES_PER_ENTRY / w / 1e9
    print(f"exact evaluation of N={n:,} x C={c:,} ({n * c * BYTES_PER_ENTRY / 1e9:.2f} GB of evaluator state; "
          f"{share_gb:.2f} GB per rank of {w}), {platform.machine()} {os.cpu_count()} cores, "
          f"load average {_load()}")
    print(f"single: {args.threads} torch threads; sharded / gather: {w} gloo ranks x 1 thread")
    header = f"{'mode':>8} | {'compute s':>9} | {'cpu s':>8} | {'peak GB/rank':>12} | {'peak/share':>10} | {'mAP':>10} | {'max|dAP|':>8}"
    print(header)
    print("-" * len(header))
    results = {}
    for mode in [m for m in args.modes.split(",") if m]:
        need, free = estimate_bytes(mode, n, c, w), _available_bytes()
        if need > free - SPARE_BYTES:
            print(f"{mode:>8} | not run: needs ~{need / 1e9:.1f} GB, {free / 1e9:.1f} GB available")
            results[mode] = None
            continue
        out = _run_mode(mode, args)
        if "error" in out:
            print(f"{mode:>8} | failed: {out['error'][0]}")
            results[mode] = None
            continue
        results[mode] = out
        peak = max(r["peak_kb"] for r in out["ranks"]) * 1024 / 1e9
        share = share_gb if mode != "single" else share_gb * w
        single = results.get("single")
        diff = ""
        if single:
            diff = f"{_ap_diff(out['result']['AP'], single['result']['AP']):8.1e}"
        print(f"{mode:>8} | {max(r['wall_s'] for r in out['ranks']):9.2f} | {max(r['cpu_s'] for r in out['ranks']):8.2f} | "
              f"{peak:12.2f} | {peak / share:10.2f} | {out['result']['mAP']:10.8f} | {diff:>8}")
    single, sharded, gather = (results.get(m) for m in MODES)

    def wall(out):
        return max(r["wall_s"] for r in out["ranks"])

    def peak(out):
        return max(r["peak_kb"] for r in out["ranks"])

    failed = False
    if sharded and single:
        same = sharded["result"] == single["result"]
        failed |= not same
        print(f"sharded vs single: compute time {wall(single) / wall(sharded):.2f}x faster "
              f"({wall(sharded):.1f} s vs {wall(single):.1f} s); |mAP difference| "
              f"{abs(sharded['result']['mAP'] - single['result']['mAP']):.1e}; every metric identical: {same}")
    if sharded:
        ratio = peak(sharded) * 1024 / 1e9 / share_gb
        print(f"sharded peak per rank: {peak(sharded) * 1024 / 1e9:.2f} GB = {ratio:.2f}x its share "
              f"({share_gb:.2f} GB; aim < 2x: {'met' if ratio < 2 else 'NOT met'})")
    if sharded and gather:
        same = sharded["result"] == gather["result"]
        failed |= not same
        print(f"sharded vs torchmetrics gather: compute time {wall(gather) / wall(sharded):.2f}x faster, "
              f"peak per rank {peak(gather) / peak(sharded):.2f}x lower "
              f"({peak(gather) * 1024 / 1e9:.2f} GB vs {peak(sharded) * 1024 / 1e9:.2f} GB); every metric identical: {same}")
    print(f"load average after: {_load()}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
