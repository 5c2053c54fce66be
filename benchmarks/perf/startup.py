"""Start-up time of the light commands, against bare interpreters, in one run.

- ``fashionbench data summary voc`` (on the VOC test fixture) against ``python -c "import numpy"``
  (aim: within 6x);
- ``fashionbench score`` (a 100 x 20 predictions file) against ``python -c "import torch"``
  (aim: within 1.5x);
- ``fashionbench synth voc --images 4`` and ``fashionbench leaderboard``, for the record;
- ``fashionbench fit --help`` (Lightning, timm and the models must load for it).

Each command runs ``--repeats`` times (default 5) in a fresh process; the best wall time
counts. ``python benchmarks/perf/startup.py``.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def best(cmd: list[str], repeats: int, cwd: Path) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed: {result.stderr[-500:]}")
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    py, fb = sys.executable, [sys.executable, "-m", "fashionbench.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rng = np.random.default_rng(0)
        np.savez(tmp / "p.npz", scores=rng.random((100, 20)), targets=(rng.random((100, 20)) < 0.2).astype(np.int64))
        (tmp / "runs").mkdir()
        numpy_s = best([py, "-c", "import numpy"], args.repeats, REPO)
        torch_s = best([py, "-c", "import torch"], args.repeats, REPO)
        rows = [
            ("data summary voc", best([*fb, "data", "summary", "voc", "--root", str(REPO / "tests/fixtures/voc")], args.repeats, REPO), numpy_s, "import numpy", 6.0),
            ("score", best([*fb, "score", str(tmp / "p.npz")], args.repeats, REPO), torch_s, "import torch", 1.5),
            ("synth voc --images 4", best([py, "-c", f"import sys, shutil; from fashionbench.cli import main; shutil.rmtree('{tmp}/s', True); sys.exit(main(['synth', 'voc', '--out', '{tmp}/s', '--images', '4']))"], args.repeats, REPO), numpy_s, "import numpy", None),
            ("leaderboard", best([*fb, "leaderboard", "--runs", str(tmp / "runs"), "--out", str(tmp / "board")], args.repeats, REPO), numpy_s, "import numpy", None),
            ("fit --help", best([*fb, "fit", "--help"], min(args.repeats, 2), REPO), torch_s, "import torch", None),
        ]
    print(f"start-up, best of {args.repeats} fresh processes: import numpy {numpy_s:.2f} s, import torch {torch_s:.2f} s")
    for name, seconds, base, base_name, aim in rows:
        ratio = seconds / base
        verdict = "" if aim is None else (f"  (aim <= {aim:g}x: {'ok' if ratio <= aim else 'MISSED'})")
        print(f"  fashionbench {name:22s} {seconds:6.2f} s = {ratio:5.2f}x {base_name}{verdict}")


if __name__ == "__main__":
    main()
