"""``make bench``: run every benchmark under ``benchmarks/perf/`` and write ``results/perf.md``.

Each ``benchmarks/perf/*.py`` (but this file) runs in its own process, one after the
other, with the arguments of :data:`ARGS` (its quick mode where it has one, so the whole
run fits a 2-core machine: see ``benchmarks/perf/README.md`` for the full sizes); a
benchmark added later and not listed runs with ``--quick`` when its source defines that
flag, else with none. Every benchmark measures its own baseline in the same run.

``results/perf.md`` (written atomically) names the machine (CPU model, cores, memory, GPU
if any, torch version), the date and the load average, then holds **one line per ratio**:
every output line of a benchmark that states a ratio (``1.23x``) or an aim's verdict,
prefixed with the benchmark and its arguments. A benchmark that cannot run here and says
so (``gpu_throughput.py`` without a GPU: "nothing measured") is listed as skipped. One
that fails, times out or prints no ratio gets one line saying so, with its last output
line; the exit status is then 1, and the file is still written.

    python benchmarks/perf/run_all.py [--only map_speed ddp_eval] [--timeout 1800] [--out results/perf.md]
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

PERF = Path(__file__).resolve().parent
REPO = PERF.parents[1]

#: arguments per benchmark: quick modes, sized for a shared 2-core machine
ARGS: dict[str, list[str]] = {
    "map_speed": ["--quick"],
    "ddp_eval": ["--quick"],
    "image_loading": ["--images", "4", "--repeats", "2"],
    "index_build": ["--images", "200000"],
    "feature_cache": ["--images", "160", "--epochs", "3"],
    "sdl_loss": ["--no-step", "--repeats", "3"],
    "startup": ["--repeats", "2"],
    "gpu_throughput": [],  # says so and exits 0 without a GPU
}
RATIO = re.compile(r"(?<![\w.])\d+\.\d+x\b|\baims?\b.*\b(met|NOT met)\b")
#: a benchmark that cannot run here says so (e.g. no GPU): listed as skipped, not failed
SKIPPED = re.compile(r"nothing measured|\bskipped\b", re.IGNORECASE)


def benchmarks(only: list[str] | None) -> list[Path]:
    scripts = sorted(p for p in PERF.glob("*.py") if p.name != Path(__file__).name and not p.name.startswith("_"))
    return [p for p in scripts if not only or p.stem in only]


def arguments(script: Path) -> list[str]:
    if script.stem in ARGS:
        return ARGS[script.stem]
    return ["--quick"] if '"--quick"' in script.read_text(encoding="utf-8") else []


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    except OSError:
        pass
    memory = ""
    try:
        with open("/proc/meminfo") as info:
            kb = int(next(line.split()[1] for line in info if line.startswith("MemTotal:")))
            memory = f", {kb / 2**20:.1f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    import torch

    gpu = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu} ({os.cpu_count()} cores){memory}, {gpu}; {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, torch {torch.__version__}")


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def run(script: Path, timeout: float) -> tuple[list[str], str]:
    """(ratio lines, status) of one benchmark."""
    args = arguments(script)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    label = " ".join([script.name, *args])
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, str(script), *args], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return [f"- `{label}`: timed out after {timeout:.0f} s"], "timeout"
    seconds = time.perf_counter() - start
    out = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    print(f"{label}: exit {done.returncode} after {seconds:.0f} s", flush=True)
    for line in done.stdout.splitlines():
        print(f"  {line}", flush=True)
    lines = [f"- `{label}`: {line}" for line in out if RATIO.search(line)]
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or out or ["no output"])[-1]
        return lines + [f"- `{label}`: FAILED (exit {done.returncode}): {last}"], "failed"
    if not lines and out and SKIPPED.search(out[-1]):
        return [f"- `{label}`: skipped: {out[-1]}"], "skipped"
    if not lines:
        return [f"- `{label}`: no ratio printed; last line: {out[-1] if out else '(none)'}"], "no ratio"
    return lines, "ok"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="benchmark names (file stems) to run")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per benchmark")
    parser.add_argument("--out", default=str(REPO / "results" / "perf.md"))
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from fashionbench.io import atomic_write_text

    started = dt.datetime.now(dt.timezone.utc)
    load_before = _load()
    lines, statuses = [], {}
    for script in benchmarks(args.only):
        got, status = run(script, args.timeout)
        lines += got
        statuses[script.stem] = status
    header = [
        "# Performance",
        "",
        f"Written by `make bench` (`benchmarks/perf/run_all.py`) on {started:%Y-%m-%d %H:%M} UTC, "
        f"in {(dt.datetime.now(dt.timezone.utc) - started).total_seconds() / 60:.0f} min.",
        f"Machine: {machine()}.",
        f"Load average before: {load_before}; after: {_load()} (the machine may be shared: times are of this run).",
        "",
        "Each line is a ratio one benchmark measured in this run against its own baseline (quick sizes where a",
        "benchmark has them; `benchmarks/perf/README.md` describes each one and its full sizes).",
        "",
    ]
    atomic_write_text(args.out, "\n".join(header + lines) + "\n")
    print(f"wrote {args.out}: {len(lines)} line(s); " + ", ".join(f"{k} {v}" for k, v in statuses.items()))
    return 0 if all(v in ("ok", "skipped") for v in statuses.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
