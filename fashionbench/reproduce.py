"""``fashionbench reproduce PAPER``: run the configs of a paper's table, then render it.

The runs of a target are listed in ``benchmarks/<paper>/paper.yaml`` under
``reproduce.<target>.runs``. A run whose dataset has a root (``--root voc=/data/voc``)
trains on the real data with the paper's recipe. A run without one is the smoke version:
synthetic data in the dataset's real format (``fashionbench synth``, written once under
``data/synth/<dataset>``) and the overrides of ``benchmarks/smoke.yaml`` (tiny backbone
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


def config_dataset(config_path: Path) -> str:
    """The dataset a config trains on: the module of its datamodule (``datamodules.voc`` -> ``voc``)."""
    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise InputError(f"cannot read config: {err}", path=config_path) from None
    class_path = ((config or {}).get("data") or {}).get("class_path", "")
    parts = class_path.split(".")
    if len(parts) < 3 or parts[0] != "datamodules":
        raise InputError(f"data.class_path '{class_path}' is not a datamodules.<dataset>.<Class>", path=config_path)
    return parts[1]


def run_commands(paper: str, target: str, roots: dict[str, str], seeds: list[int] | None, runs_dir: str) -> list[list[str]]:
    """The ``fashionbench fit`` command of every run of the target (one per seed)."""
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
        dataset = config_dataset(config)
        root = roots.get(dataset)
        base = [sys.executable, "-m", "fashionbench.cli", "fit", "--config", str(config)]
        if root is None:
            root = str(SYNTH_DIR / dataset)
            base += [arg for p in smoke_extra for arg in ("--config", str(p))]
        base += ["--data.init_args.root", root, "--record.runs_dir", runs_dir]
        for seed in seeds or [None]:
            commands.append(base + ([] if seed is None else ["--seed_everything", str(seed)]))
    return commands


def ensure_synthetic(dataset: str) -> None:
    from datamodules.synth import write_synthetic

    out = SYNTH_DIR / dataset
    if not (out / "fashionbench_synthetic.json").is_file():
        write_synthetic(dataset, out)


def reproduce(paper: str, target: str = "table1", roots: dict[str, str] | None = None,
              seeds: list[int] | None = None, runs_dir: str = "results/runs") -> Path:
    roots = roots or {}
    commands = run_commands(paper, target, roots, seeds, runs_dir)
    for cmd in commands:
        root = cmd[cmd.index("--data.init_args.root") + 1]
        if root.startswith(str(SYNTH_DIR)):
            ensure_synthetic(Path(root).name)
        print("fashionbench reproduce:", " ".join(cmd[2:]), flush=True)
        result = subprocess.run(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        if result.returncode != 0:
            raise InputError(f"run failed (exit {result.returncode}): {' '.join(cmd[3:])}")
    path = render_target(paper, target, runs_dir=runs_dir)
    print(f"fashionbench: wrote {path}")
    return path
