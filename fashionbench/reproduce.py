"""``fashionbench reproduce PAPER``: run the configs of a paper's table, then render it.

The runs of a target are listed in ``benchmarks/<paper>/paper.yaml`` under
``reproduce.<target>.runs``. A run whose dataset has a root (``--root voc=/data/voc``)
trains on the real data with the paper's recipe. A run without one is the smoke version:
synthetic data in the dataset's real format (``fashionbench synth``, written once under
``data/synth/<dataset><year>``) and the overrides of ``benchmarks/smoke.yaml`` (tiny backbone
without pretrained weights, small inputs, a few epochs) plus the paper's own
``benchmarks/<paper>/smoke.yaml`` if it has one; its records say ``data_source:
synthetic`` and so does the rendered table. Each run is its own process.

Stages: a run entry may carry an ``id``; a later run whose config has
``init_from: [{checkpoint: "stage:<id>", ...}]`` gets the checkpoint of run ``<id>`` (the
same seed) from that run's record, so a paper's stages run in order and each hands its
checkpoint to the next. A run that fails is reported and the others go on (runs that
need its checkpoint are skipped); the exit code says whether any failed.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    return parts[1].replace("_", "-"), (data.get("init_args") or {}).get("year")  # module nus_wide -> dataset nus-wide


def synthetic_root(dataset: str, year: int | None) -> Path:
    """Where the smoke runs' synthetic copy of ``dataset`` (and year) lives."""
    return SYNTH_DIR / f"{dataset}{year or ''}"


@dataclass
class PlannedRun:
    """One ``fashionbench fit`` of a reproduce target (one config, one seed)."""

    command: list[str]
    dataset: str
    year: int | None
    config: Path
    seed: int | None
    run_id: str | None = None
    label: str = ""
    needs: dict[int, str] = field(default_factory=dict)  # init_from position -> stage id
    init_from: list[dict[str, Any]] = field(default_factory=list)


def _stage_needs(config_path: Path) -> tuple[list[dict[str, Any]], dict[int, str]]:
    """The config's ``model.init_args.init_from`` list and which entries name a stage."""
    config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    init_from = (((config.get("model") or {}).get("init_args") or {}).get("init_from")) or []
    needs = {i: str(spec["checkpoint"])[len("stage:"):] for i, spec in enumerate(init_from)
             if isinstance(spec, dict) and str(spec.get("checkpoint", "")).startswith("stage:")}
    return init_from, needs


def run_commands(paper: str, target: str, roots: dict[str, str], seeds: list[int] | None,
                 runs_dir: str) -> list[PlannedRun]:
    """The ``fashionbench fit`` run of every entry of the target (one per seed), in order."""
    spec = load_paper(paper)
    runs = ((spec.get("reproduce") or {}).get(target) or {}).get("runs")
    if not runs:
        raise InputError(f"paper.yaml has no reproduce.{target}.runs", path=spec["_path"])
    smoke_extra = [p for p in (SMOKE_CONFIG, paper_dir(paper) / "smoke.yaml") if p.is_file()]
    planned, ids = [], set()
    for run in runs:
        config = paper_dir(paper) / run["config"]
        if not config.is_file():
            raise InputError("config not found", path=config)
        dataset, year = config_dataset(config)
        init_from, needs = _stage_needs(config)
        unknown = sorted(set(needs.values()) - ids)
        if unknown:
            raise InputError(f"run {run['config']} needs stage(s) {unknown} that no earlier run has as id", path=spec["_path"])
        root = roots.get(dataset)
        base = [sys.executable, "-m", "fashionbench.cli", "fit", "--config", str(config)]
        extra = list(run.get("args") or [])
        if root is None:
            root = str(synthetic_root(dataset, year))
            base += [arg for p in smoke_extra for arg in ("--config", str(p))]
            extra += list(run.get("smoke_args") or [])
        base += [*map(str, extra), "--data.init_args.root", root, "--record.runs_dir", runs_dir]
        for seed in seeds or [None]:
            command = base + ([] if seed is None else ["--seed_everything", str(seed)])
            planned.append(PlannedRun(command, dataset, year, config, seed, run.get("id"),
                                      run.get("label") or Path(run["config"]).stem, needs, init_from))
        if run.get("id"):
            ids.add(run["id"])
    return planned


def ensure_synthetic(dataset: str, year: int | None) -> None:
    """Write the synthetic root of ``dataset`` (and year) once; later runs reuse it."""
    from datamodules.synth import MARKER_FILE, write_synthetic

    out = synthetic_root(dataset, year)
    if not (out / MARKER_FILE).is_file():
        write_synthetic(dataset, out, **({} if year is None else {"year": int(year)}))


def paper_names(benchmarks_dir: str | os.PathLike = "benchmarks") -> list[str]:
    """Every paper with a ``benchmarks/<paper>/paper.yaml``, sorted."""
    return sorted(p.parent.name for p in Path(benchmarks_dir).glob("*/paper.yaml"))


def reproduce(paper: str, target: str = "table1", roots: dict[str, str] | None = None,
              seeds: list[int] | None = None, runs_dir: str = "results/runs") -> Path:
    """Run every run of one paper's target in order (stages chained), then render it."""
    return reproduce_papers([paper], target, roots, seeds, runs_dir)[0]


def reproduce_papers(papers: list[str], target: str = "table1", roots: dict[str, str] | None = None,
                     seeds: list[int] | None = None, runs_dir: str = "results/runs") -> list[Path]:
    """Run the target of every paper (``["all"]``: every paper that has it), rendering
    each table; a failed run is reported and the rest go on. Raises InputError at the end
    when any run failed (the tables are rendered all the same)."""
    roots = roots or {}
    if papers == ["all"]:
        papers = [p for p in paper_names() if target in (load_paper(p).get("reproduce") or {})]
    plans = [(paper, run_commands(paper, target, roots, seeds, runs_dir)) for paper in papers]
    total = sum(len(planned) for _, planned in plans)
    failed: list[str] = []
    paths: list[Path] = []
    t0, done = time.perf_counter(), 0
    with tempfile.TemporaryDirectory(prefix="fashionbench-reproduce-") as tmp:
        for paper, planned in plans:
            checkpoints: dict[tuple[str, int | None], str] = {}
            for run in planned:
                done += 1
                label = f"{paper} / {run.label}{'' if run.seed is None else f' seed {run.seed}'}"
                print(f"fashionbench reproduce [{done}/{total}] {label} ({(time.perf_counter() - t0) / 60:.1f} min so far)", flush=True)
                if not _execute(run, roots, runs_dir, checkpoints, Path(tmp) / f"stage-{done}.yaml"):
                    failed.append(label)
            paths.append(render_target(paper, target, runs_dir=runs_dir))
            print(f"fashionbench: wrote {paths[-1]}", flush=True)
    print(f"fashionbench reproduce: {total - len(failed)}/{total} runs ok in {(time.perf_counter() - t0) / 60:.1f} min")
    if failed:
        raise InputError(f"{len(failed)} of {total} runs failed: {', '.join(failed)}")
    return paths


def _execute(run: PlannedRun, roots: dict[str, str], runs_dir: str,
             checkpoints: dict[tuple[str, int | None], str], override: Path) -> bool:
    """One run as its own process; True when it succeeded. Fills in the checkpoints of
    the stages it needs, and records its own when it has an ``id``."""
    command = list(run.command)
    if run.needs:
        missing = [sid for sid in run.needs.values() if (sid, run.seed) not in checkpoints]
        if missing:
            print(f"fashionbench reproduce: skipped {run.label}: stage(s) {missing} gave no checkpoint", flush=True)
            return False
        init_from = [dict(spec) for spec in run.init_from]
        for position, sid in run.needs.items():
            init_from[position]["checkpoint"] = checkpoints[(sid, run.seed)]
        override.write_text(yaml.safe_dump({"model": {"init_args": {"init_from": init_from}}}))
        command += ["--config", str(override)]
    if run.dataset not in roots:
        ensure_synthetic(run.dataset, run.year)
    print("fashionbench reproduce:", " ".join(command[3:]), flush=True)
    written = override.with_suffix(".records")
    written.unlink(missing_ok=True)
    result = subprocess.run(command, env={**os.environ, "PYTHONUNBUFFERED": "1", "FASHIONBENCH_RECORD_LIST": str(written)})
    if result.returncode != 0:
        print(f"fashionbench reproduce: FAILED (exit {result.returncode}): {run.label}", flush=True)
        return False
    if run.run_id:  # the checkpoint of the records this very run wrote, whatever else writes to runs_dir
        paths = written.read_text(encoding="utf-8").split() if written.is_file() else []
        records = [json.loads(Path(p).read_text(encoding="utf-8")) for p in paths]
        checkpoints_found = [r["checkpoint"] for r in records if r.get("checkpoint")]
        if checkpoints_found:
            checkpoints[(run.run_id, run.seed)] = checkpoints_found[0]
    return True
