"""``fashionbench reproduce PAPER``: run the configs of a paper's table, then render it.

The runs of a target are listed in ``benchmarks/<paper>/paper.yaml`` under
``reproduce.<target>.runs``. A run whose dataset has a root (``--root voc=/data/voc``)
trains on the real data with the paper's recipe. A run without one is the smoke version:
synthetic data in the dataset's real format (``fashionbench synth``, written once under
``data/synth/<dataset><year>``) and the overrides of ``benchmarks/smoke.yaml`` (tiny backbone
without pretrained weights, small inputs, a few epochs) plus the paper's own
``benchmarks/<paper>/smoke.yaml`` if it has one; its records say ``data_source:
synthetic`` and so does the rendered table. Each run is its own process.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from fashionbench.errors import InputError
from fashionbench.tables import load_paper, paper_dir, render_target

SMOKE_CONFIG = Path("benchmarks/smoke.yaml")
SYNTH_DIR = Path("data/synth")


def parse_roots(items: list[str]) -> dict[str, str]:
    """``["voc=/data/voc", ...]`` -> ``{"voc": "/data/voc"}``."""
    roots = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise InputError(f"--root expects DATASET=DIR, got '{item}'")
        if not Path(path).is_dir():
            raise InputError(f"data root for {name} is not a directory: {path}")
        roots[name.strip().lower()] = path
    return roots


def config_dataset(config_path: Path) -> tuple[str, int | None]:
    """The dataset a config trains on, from its datamodule's module (``datamodules.voc`` ->
    ``voc``), and the ``year`` it asks for (None when it names none)."""
    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise InputError(f"cannot read config: {err}", path=config_path) from None
    data = (config or {}).get("data") or {}
    class_path = data.get("class_path", "")
    parts = class_path.split(".")
    if len(parts) < 3 or parts[0] != "datamodules":
        raise InputError(f"data.class_path '{class_path}' is not a datamodules.<dataset>.<Class>", path=config_path)
    return parts[1], (data.get("init_args") or {}).get("year")


def synthetic_root(dataset: str, year: int | None) -> Path:
    """Where the smoke runs' synthetic copy of ``dataset`` (and year) lives."""
    return SYNTH_DIR / f"{dataset}{year or ''}"


def run_commands(paper: str, target: str, roots: dict[str, str], seeds: list[int] | None,
                 runs_dir: str) -> list[tuple[list[str], tuple[str, int | None]]]:
    """The ``fashionbench fit`` command of every run of the target (one per seed), with
    the dataset and year it trains on."""
    spec = load_paper(paper)
    runs = ((spec.get("reproduce") or {}).get(target) or {}).get("runs")
    if not runs:
        raise InputError(f"paper.yaml has no reproduce.{target}.runs", path=spec["_path"])
    smoke_extra = [p for p in (SMOKE_CONFIG, paper_dir(paper) / "smoke.yaml") if p.is_file()]
    commands = []
    for run in runs:
        config = paper_dir(paper) / run["config"]
        if not config.is_file():
            raise InputError("config not found", path=config)
        dataset, year = config_dataset(config)
        root = roots.get(dataset)
        base = [sys.executable, "-m", "fashionbench.cli", "fit", "--config", str(config)]
        if root is None:
            root = str(synthetic_root(dataset, year))
            base += [arg for p in smoke_extra for arg in ("--config", str(p))]
        base += ["--data.init_args.root", root, "--record.runs_dir", runs_dir]
        for seed in seeds or [None]:
            commands.append((base + ([] if seed is None else ["--seed_everything", str(seed)]), (dataset, year)))
    return commands


def ensure_synthetic(dataset: str, year: int | None) -> None:
    """Write the synthetic root of ``dataset`` (and year) once; later runs reuse it."""
    from datamodules.synth import MARKER_FILE, write_synthetic

    out = synthetic_root(dataset, year)
    if not (out / MARKER_FILE).is_file():
        write_synthetic(dataset, out, **({} if year is None else {"year": int(year)}))


def reproduce(paper: str, target: str = "table1", roots: dict[str, str] | None = None,
              seeds: list[int] | None = None, runs_dir: str = "results/runs") -> Path:
    roots = roots or {}
    commands = run_commands(paper, target, roots, seeds, runs_dir)
    for cmd, (dataset, year) in commands:
        if dataset not in roots:
            ensure_synthetic(dataset, year)
        print("fashionbench reproduce:", " ".join(cmd[2:]), flush=True)
        result = subprocess.run(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        if result.returncode != 0:
            raise InputError(f"run failed (exit {result.returncode}): {' '.join(cmd[3:])}")
    path = render_target(paper, target, runs_dir=runs_dir)
    print(f"fashionbench: wrote {path}")
    return path
