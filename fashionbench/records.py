"""Run records (``specs/interfaces.md``, "Run records"): one JSON file per ``test`` run
under ``results/runs/``, never rewriting another's. Every number in a leaderboard or a
paper table is read from these files.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import platform
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any, Iterable

from fashionbench.errors import InputError
from fashionbench.io import write_new_text

REQUIRED_KEYS = (
    "paper", "table", "row", "model", "dataset", "task", "split", "metrics", "data_source",
    "config", "config_sha", "git_sha", "seed", "started", "wall_s", "hardware", "n_train", "n_test",
)
#: Fields every new record carries (interfaces.md); records written before them load with
#: these defaults.
ADDED_KEYS = {"checkpoint": None, "skipped_images": [], "eval_set": None}
DEFAULT_RUNS_DIR = Path("results/runs")

# Keys of the resolved config that say where or how fast a run happened, not what was
# run: left out of ``config_sha`` so the seeds of one recipe share a hash.
_MACHINE_KEYS = {
    "seed_everything", "root", "cache_dir", "num_workers", "logger", "default_root_dir",
    "enable_progress_bar", "devices", "num_nodes", "accelerator", "strategy", "ckpt_path",
    "dirpath", "out_dir",
}


def _strip_machine_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_machine_keys(v) for k, v in value.items() if k not in _MACHINE_KEYS}
    if isinstance(value, list):
        return [_strip_machine_keys(v) for v in value]
    return value


def config_sha(config: dict) -> str:
    """sha256 (first 12 hex digits) of the recipe: the config without seeds and paths."""
    canonical = json.dumps(_strip_machine_keys(config), sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def git_sha(cwd: str | os.PathLike | None = None) -> str:
    """The checkout's commit, with ``-dirty`` when tracked files differ; ``unknown`` outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


def describe_hardware(accelerator: str, num_devices: int) -> str:
    """E.g. ``1x NVIDIA H100 80GB HBM3`` or ``cpu (2 cores, x86_64)``."""
    if accelerator == "cuda":
        import torch

        return f"{num_devices}x {torch.cuda.get_device_name(0)}"
    return f"{num_devices}x cpu ({os.cpu_count()} cores, {platform.machine()})"


def json_safe(value: Any) -> Any:
    """Tensors and numpy values to plain Python, dataclasses to dicts, other objects to
    their ``repr``; NaN/inf to None (JSON has no NaN)."""
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {"class_path": f"{type(value).__module__}.{type(value).__qualname__}", "init_args": dataclasses.asdict(value)}
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", str(text)).strip("-").lower()[:40] or "x"


def write_record(record: dict, runs_dir: str | os.PathLike = DEFAULT_RUNS_DIR) -> Path:
    """Write ``record`` as a new file in ``runs_dir`` (never replacing one) and return its path."""
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise ValueError(f"run record lacks {missing}")
    record = {**ADDED_KEYS, **record}
    stamp = record["started"].replace(":", "").replace("-", "")[:15]
    name = f"{stamp}-{_slug(record['paper'] or 'none')}-{_slug(record['model'])}-{_slug(record['dataset'])}-s{record['seed']}-{uuid.uuid4().hex[:6]}.json"
    return write_new_text(Path(runs_dir) / name, json.dumps(json_safe(record), indent=2, sort_keys=True) + "\n")


def load_records(runs_dir: str | os.PathLike = DEFAULT_RUNS_DIR) -> list[dict]:
    """Every record under ``runs_dir`` (sorted by file name); a bad file is an InputError."""
    records = []
    for path in sorted(Path(runs_dir).glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise InputError(f"not a JSON run record: {err.msg}", path=path, line=err.lineno) from None
        if not isinstance(record, dict):
            raise InputError("not a JSON object", path=path, line=1)
        missing = [k for k in REQUIRED_KEYS if k not in record]
        if missing:
            raise InputError(f"run record lacks {', '.join(missing)}", path=path)
        for key, default in ADDED_KEYS.items():
            record.setdefault(key, default)
        record["_path"] = str(path)
        records.append(record)
    return records


def select(records: Iterable[dict], **where: Any) -> list[dict]:
    """Records whose fields equal every ``where`` value."""
    return [r for r in records if all(r.get(k) == v for k, v in where.items())]
