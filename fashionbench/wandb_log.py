"""Weights & Biases: one project, runs grouped by paper, and each run record logged to its run.

Layout of the dashboard (every run of the suite logs to the project ``fashionbench``):

- ``group`` = the paper (``record.paper``; the dataset when a config names no paper),
  ``job_type`` = the dataset (``voc2007``, ``nus-wide``, ...: the run record's ``dataset``),
  ``tags`` = ``paper:<paper>``, ``table:<table>``, ``row:<row>``, ``dataset:<dataset>``
  (:func:`wandb_defaults`; the CLI fills them in when the logger config leaves them unset).
- When a test writes a run record, :func:`log_record` (called by
  :class:`fashionbench.runner.RunRecorder` for every record, when a ``WandbLogger`` is among
  the trainer's loggers) logs to the run: the resolved config (``run.config``), the
  record's scalar metrics as summary (``mAP``, ``CF1``, ...; prefixed ``<set>/`` for a named
  evaluation set, e.g. ``zsl/mAP``), the record's identity as ``record`` (or
  ``<set>/record``), the per-class AP (and PR-AUC) as a ``wandb.Table`` and the per-class AP
  bar chart (:func:`fashionbench.report.per_class_ap_figure`) as an image.

Offline by default: without an API key (``WANDB_API_KEY`` or ``~/.netrc``) the CLI sets
``WANDB_MODE=offline`` and each run leaves ``results/logs/wandb/offline-run-<time>-<id>/``.
Upload them later, from a machine with network and a key::

    wandb login                                    # once
    wandb sync results/logs/wandb/offline-run-*    # or one run directory

``wandb sync --sync-all`` uploads every unsynced run under ``./wandb``; ``fashionbench compare``
then reads them back through the W&B API. :func:`offline_summary` reads the summary of an
offline run directory without uploading it (the wandb-core service of wandb >= 0.19 keeps it
in the run's ``run-<id>.wandb`` transaction log and writes no ``files/wandb-summary.json``
offline).
"""
from __future__ import annotations

import json
import netrc
import os
import struct
from pathlib import Path
from typing import Any, Iterable, Iterator

PROJECT = "fashionbench"
#: Modes in which nothing is sent to the W&B server.
OFFLINE_MODES = ("offline", "disabled", "dryrun")
#: W&B refuses tags longer than this.
MAX_TAG = 64
IDENTITY_KEYS = ("paper", "table", "row", "model", "dataset", "task", "eval_set", "split", "data_source",
                 "seed", "config_sha", "git_sha", "started", "wall_s", "hardware", "n_train", "n_test", "checkpoint")


def has_api_key() -> bool:
    """An API key in ``WANDB_API_KEY`` or in ``~/.netrc`` (what ``wandb login`` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def is_online() -> bool:
    """True when W&B may be reached: ``WANDB_MODE`` is not offline/disabled and a key exists."""
    return os.environ.get("WANDB_MODE", "").lower() not in OFFLINE_MODES and has_api_key()


def _tag(key: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    return f"{key}:{value}"[:MAX_TAG]


def wandb_defaults(config: Any, dataset: str) -> dict[str, Any]:
    """The logger's ``project``/``group``/``job_type``/``tags`` for a resolved CLI config
    (``config.record`` holds paper/table/row). ``dataset`` is the name the run record will
    carry (``<dataset_name><year>``)."""
    record = getattr(config, "record", None) or {}
    get = record.get if hasattr(record, "get") else (lambda key: getattr(record, key, None))
    paper, table, row = get("paper"), get("table"), get("row")
    tags = [t for t in (_tag("paper", paper), _tag("table", table), _tag("row", row), _tag("dataset", dataset)) if t]
    return {"project": PROJECT, "group": paper or dataset, "job_type": dataset, "tags": tags}


def config_dataset_name(data_config: Any) -> str | None:
    """``<dataset_name><year>`` of a config's datamodule (as the run record names it), from the
    datamodule class's ``dataset_name``; None when the class cannot be imported."""
    import importlib

    class_path = str(getattr(data_config, "class_path", None) or (data_config or {}).get("class_path", ""))
    module, _, name = class_path.rpartition(".")
    try:
        dataset_name = getattr(importlib.import_module(module), name).dataset_name
    except (ImportError, AttributeError, ValueError):
        return None
    init_args = getattr(data_config, "init_args", None) or {}
    year = init_args.get("year") if hasattr(init_args, "get") else None
    return f"{dataset_name}{year or ''}" if dataset_name else None


def _prefix(record: dict) -> str:
    return f"{record['eval_set']}/" if record.get("eval_set") else ""


def summary_entries(record: dict) -> dict[str, Any]:
    """The summary keys :func:`log_record` writes for one record: each scalar metric (a
    named evaluation set's under ``<set>/``) and ``record`` (its identity)."""
    from fashionbench.records import json_safe

    prefix = _prefix(record)
    out: dict[str, Any] = {}
    for key, value in (record.get("metrics") or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = value
    identity = {k: record.get(k) for k in IDENTITY_KEYS}
    if record.get("_path"):
        identity["record_file"] = os.path.basename(str(record["_path"]))
    out[f"{prefix}record"] = json_safe(identity)
    return json_safe(out)


def per_class_rows(record: dict) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows of the per-class table: label, AP and (when the record has it) PR-AUC."""
    metrics = record.get("metrics") or {}
    ap = metrics.get("AP") if isinstance(metrics.get("AP"), list) else []
    names = list(record.get("label_names") or [f"label {i}" for i in range(len(ap))])
    pr = metrics.get("PR-AUC_per_class") if isinstance(metrics.get("PR-AUC_per_class"), list) else None
    columns = ["label", "AP"] + (["PR-AUC"] if pr is not None and len(pr) == len(ap) else [])
    rows = []
    for i, value in enumerate(ap):
        row = [names[i] if i < len(names) else f"label {i}", value]
        if len(columns) == 3:
            row.append(pr[i])
        rows.append(row)
    return columns, rows


def wandb_loggers(loggers: Iterable[Any]) -> list[Any]:
    """The ``WandbLogger`` instances among ``loggers``."""
    from lightning.pytorch.loggers import WandbLogger

    return [lg for lg in loggers or [] if isinstance(lg, WandbLogger)]


def log_record(record: dict, loggers: Iterable[Any], figures_dir: str | os.PathLike | None = None) -> None:
    """Log one run record to the W&B run of every ``WandbLogger`` in ``loggers``.

    ``figures_dir`` is where the per-class AP chart is written (default: ``figures/runs/``
    beside the record's runs folder, i.e. ``results/figures/runs/``). A failure to log is
    reported on one line and does not fail the run: its record is already written.
    """
    targets = wandb_loggers(loggers)
    if not targets:
        return
    try:
        _log(record, targets, figures_dir)
    except Exception as err:  # noqa: BLE001 - W&B is a mirror of the record, never a reason to fail the run
        print(f"fashionbench: W&B logging of the run record failed ({type(err).__name__}: {err}); the record is written")


def _log(record: dict, targets: list[Any], figures_dir: str | os.PathLike | None) -> None:
    import wandb

    from fashionbench.records import json_safe

    prefix = _prefix(record)
    summary = summary_entries(record)
    columns, rows = per_class_rows(record)
    chart = None
    if rows:
        from fashionbench.report import per_class_ap_figure, record_stem

        if figures_dir is None:
            base = Path(record["_path"]).parent.parent if record.get("_path") else Path("results")
            figures_dir = base / "figures" / "runs"
        chart = per_class_ap_figure(record, Path(figures_dir) / f"{record_stem(record)}_ap.png")
    for logger in targets:
        run = logger.experiment
        if record.get("config"):
            run.config.update(json_safe(record["config"]), allow_val_change=True)
        run.summary.update(summary)
        media: dict[str, Any] = {}
        if rows:
            media[f"{prefix}per_class_AP"] = wandb.Table(columns=columns, data=rows)
        if chart is not None:
            media[f"{prefix}per_class_AP_chart"] = wandb.Image(str(chart))
        if media:
            run.log(media)


# ------------------------------------------------------------- offline run directories
_HEADER = 7           # ":W&B", magic 0xBEE1 (little-endian), version
_BLOCK = 32 * 1024    # the transaction log's block size (LevelDB's log format)
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _log_entries(path: Path) -> Iterator[bytes]:
    """The serialised records of a W&B transaction log (``run-<id>.wandb``): LevelDB's log
    format (32 KiB blocks; chunks of ``crc32 u32, length u16, type u8`` + data; a record
    split over blocks as FIRST, MIDDLE..., LAST)."""
    data = path.read_bytes()
    if data[:4] != b":W&B":
        from fashionbench.errors import InputError

        raise InputError("not a W&B transaction log", path=path)
    pos, pending = _HEADER, b""
    while pos + 7 <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < 7:  # a block's tail too short for a chunk header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack_from("<IHB", data, pos)
        pos += 7
        chunk = data[pos:pos + length]
        pos += length
        if kind == _FULL:
            yield chunk
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        elif kind == _LAST:
            yield pending + chunk
            pending = b""
        elif kind == 0 and length == 0:  # zero padding to the block's end
            pos += _BLOCK - pos % _BLOCK if pos % _BLOCK else 0


def offline_summary(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The summary of an offline W&B run directory (``wandb/offline-run-*``): every summary
    update in its transaction log applied in order (later values win). Reads
    ``files/wandb-summary.json`` instead when the run has one (older wandb versions)."""
    run_dir = Path(run_dir)
    written = run_dir / "files" / "wandb-summary.json"
    if written.is_file():
        return json.loads(written.read_text(encoding="utf-8"))
    from wandb.proto import wandb_internal_pb2 as pb

    summary: dict[str, Any] = {}
    for log in sorted(run_dir.glob("run-*.wandb")):
        for entry in _log_entries(log):
            record = pb.Record()
            try:
                record.ParseFromString(entry)
            except Exception:  # noqa: BLE001 - a torn last record of a killed run
                continue
            if record.WhichOneof("record_type") != "summary":
                continue
            for item in record.summary.update:
                _set(summary, [item.key] if item.key else list(item.nested_key), json.loads(item.value_json))
            for item in record.summary.remove:
                _set(summary, [item.key] if item.key else list(item.nested_key), None, remove=True)
    return summary


def _set(tree: dict, path: list[str], value: Any, remove: bool = False) -> None:
    """Set (or remove) ``tree[path[0]][path[1]]...``: W&B sends nested summary values by key path."""
    for part in path[:-1]:
        child = tree.get(part)
        if not isinstance(child, dict):
            if remove:
                return
            child = tree[part] = {}
        tree = child
    if remove:
        tree.pop(path[-1], None)
    else:
        tree[path[-1]] = value


def offline_run_info(run_dir: str | os.PathLike) -> dict[str, Any]:
    """``project``, ``group``, ``job_type``, ``tags``, ``name`` and ``config`` (every config
    update applied in order) of an offline W&B run directory, from its transaction log."""
    from wandb.proto import wandb_internal_pb2 as pb

    info: dict[str, Any] = {"config": {}}

    def apply(items) -> None:
        for item in items:
            key = item.key or "/".join(item.nested_key)
            value = json.loads(item.value_json)
            info["config"][key] = value.get("value", value) if isinstance(value, dict) and set(value) <= {"value", "desc"} else value

    for log in sorted(Path(run_dir).glob("run-*.wandb")):
        for entry in _log_entries(log):
            record = pb.Record()
            try:
                record.ParseFromString(entry)
            except Exception:  # noqa: BLE001
                continue
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run = record.run
                info.update(project=run.project, group=run.run_group, job_type=run.job_type, tags=list(run.tags),
                            name=run.display_name)
                apply(run.config.update)
            elif kind == "config":
                apply(record.config.update)
    return info


def offline_runs(wandb_dir: str | os.PathLike) -> list[Path]:
    """The offline run directories under ``wandb_dir`` (a logger's ``save_dir``; its
    ``wandb/`` subfolder is looked in too), oldest first."""
    base = Path(wandb_dir)
    found = list(base.glob("offline-run-*")) + list(base.glob("wandb/offline-run-*"))
    return sorted({p.resolve() for p in found if p.is_dir()}, key=lambda p: p.name)
