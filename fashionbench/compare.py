"""``fashionbench compare``: the runs side by side, as the W&B dashboard would show them,
in one pandas table and one matplotlib figure, without a browser.

Where the runs come from (``--source``):

- ``wandb`` (the default when W&B is reachable: ``WANDB_MODE`` is not ``offline``/
  ``disabled`` and an API key exists): the runs of the project (``fashionbench``) through
  ``wandb.Api()``; each run's summary holds its run records as :mod:`fashionbench.wandb_log`
  logged them (``record`` / ``<set>/record`` with the identity, the metrics beside them), so
  one W&B run with two evaluation sets gives two rows, as its records do.
- ``records`` (the default otherwise): the run records under ``results/runs/``.

The table (``results/compare.csv``, printed): one row per model x dataset x task x data
source (and recipe), with the number of runs, the seeds and, of the chosen metric (default:
each run's headline, ``mAP`` or ``top1``), the median, min, max, mean and standard deviation
over the runs. The figure (``results/figures/compare.png``): one panel per dataset and task,
a bar per model (median, whisker min to max; grey = synthetic data).
``--filter KEY=VALUE`` (repeatable) keeps the runs whose field equals the value (e.g.
``paper=cmsg``, ``data_source=real``); ``--group-by`` changes the grouping.
"""
from __future__ import annotations

import math
import os
import statistics
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from fashionbench.errors import InputError
from fashionbench.io import atomic_open, atomic_write_text

IDENTITY = ["paper", "table", "row", "model", "dataset", "task", "split", "data_source", "seed", "config_sha"]
DEFAULT_GROUP = ["model", "dataset", "task", "data_source", "config_sha"]


def _scalar_metrics(metrics: dict) -> dict[str, float]:
    return {k: float(v) for k, v in (metrics or {}).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def runs_from_records(runs_dir: str | os.PathLike = "results/runs") -> pd.DataFrame:
    """One row per run record: its identity, ``run`` (the record file) and every scalar metric."""
    from fashionbench.records import load_records

    rows = []
    for record in load_records(runs_dir) if Path(runs_dir).is_dir() else []:
        row = {k: record.get(k) for k in IDENTITY}
        row.update(origin="records", run=os.path.basename(str(record.get("_path", ""))))
        row.update(_scalar_metrics(record.get("metrics") or {}))
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else IDENTITY + ["origin", "run"])


def rows_from_summary(summary: dict, run_name: str = "") -> list[dict[str, Any]]:
    """The run-record rows of one W&B run summary: each ``record`` / ``<set>/record`` entry
    with the scalar metrics logged under the same prefix."""
    rows = []
    for key, identity in summary.items():
        if not (key == "record" or key.endswith("/record")) or not isinstance(identity, dict):
            continue
        prefix = key[: -len("record")]
        row = {k: identity.get(k) for k in IDENTITY}
        row.update(origin="wandb", run=run_name)
        for name, value in summary.items():
            if not name.startswith(prefix) or name == key:
                continue
            metric = name[len(prefix):]
            if "/" in metric or metric.startswith("_"):
                continue  # another set's entry, or W&B's own (_step, _runtime)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                row[metric] = float(value)
        rows.append(row)
    return rows


def runs_from_wandb(project: str = "fashionbench", entity: str | None = None, api: Any = None) -> pd.DataFrame:
    """One row per run record logged to the W&B project (``api``: a ``wandb.Api`` or an
    object with its ``runs(path)``; default a new ``wandb.Api()``)."""
    if api is None:
        import wandb

        api = wandb.Api(timeout=30)
    rows = []
    for run in api.runs(f"{entity}/{project}" if entity else project):
        summary = getattr(run.summary, "_json_dict", None)
        summary = dict(summary if isinstance(summary, dict) else run.summary)
        rows.extend(rows_from_summary(summary, f"{getattr(run, 'id', '')} {getattr(run, 'name', '')}".strip()))
    return pd.DataFrame(rows, columns=None if rows else IDENTITY + ["origin", "run"])


def load_runs(source: str = "auto", runs_dir: str | os.PathLike = "results/runs", project: str = "fashionbench",
              entity: str | None = None, api: Any = None) -> tuple[pd.DataFrame, str]:
    """``(runs, where they came from)`` for ``source`` ``auto`` | ``wandb`` | ``records``."""
    from fashionbench.wandb_log import is_online

    if source not in ("auto", "wandb", "records"):
        raise InputError(f"--source must be auto, wandb or records, got '{source}'")
    if source == "wandb" or (source == "auto" and (api is not None or is_online())):
        try:
            return runs_from_wandb(project, entity, api), f"W&B project {entity + '/' if entity else ''}{project}"
        except InputError:
            raise
        except Exception as err:  # noqa: BLE001 - network/auth failures of the W&B API
            if source == "wandb":
                raise InputError(f"cannot read the W&B project {project}: {type(err).__name__}: {err}") from None
            print(f"fashionbench compare: W&B unreachable ({type(err).__name__}); reading the run records instead")
    return runs_from_records(runs_dir), f"run records in {runs_dir}"


def apply_filters(frame: pd.DataFrame, filters: Iterable[str]) -> pd.DataFrame:
    """Rows whose ``KEY`` equals ``VALUE`` for every ``KEY=VALUE`` (compared as text)."""
    for item in filters or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--filter expects KEY=VALUE, got '{item}'")
        if key not in frame.columns:
            raise InputError(f"--filter: no field '{key}' (fields: {', '.join(map(str, frame.columns[:20]))})")
        frame = frame[frame[key].astype(str) == value]
    return frame


def _headline(row: pd.Series) -> str:
    return "mAP" if "mAP" in row and not pd.isna(row.get("mAP")) else "top1"


def comparison_table(runs: pd.DataFrame, metric: str | None = None, group_by: list[str] | None = None) -> pd.DataFrame:
    """One row per group (default: model, dataset, task, data source, recipe) with the
    metric's median, min, max, mean and standard deviation over its runs, best median first
    within each dataset and task."""
    group_by = list(group_by or DEFAULT_GROUP)
    columns = group_by + ["metric", "runs", "seeds", "median", "min", "max", "mean", "std"]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    missing = [k for k in group_by if k not in runs.columns]
    if missing:
        raise InputError(f"--group-by: no field {missing}")
    runs = runs.assign(_metric=[metric or _headline(r) for _, r in runs.iterrows()])
    out = []
    for keys, group in runs.groupby(group_by + ["_metric"], dropna=False, sort=False):
        name = keys[-1]
        values = [float(v) for v in (group[name] if name in group else []) if not pd.isna(v)]
        if not values:
            continue
        row = dict(zip(group_by, keys[:-1]))
        row.update(metric=name, runs=len(values),
                   seeds=" ".join(str(s) for s in sorted({s for s in group.get("seed", []) if not pd.isna(s)}, key=str)),
                   median=statistics.median(values), min=min(values), max=max(values), mean=statistics.fmean(values),
                   std=statistics.stdev(values) if len(values) > 1 else 0.0)
        out.append(row)
    table = pd.DataFrame(out, columns=columns)
    order = [k for k in ("dataset", "task") if k in group_by]
    return table.sort_values(order + ["median"], ascending=[True] * len(order) + [False]).reset_index(drop=True)


def comparison_figure(table: pd.DataFrame, path: str | os.PathLike, title: str = "") -> Path | None:
    """One panel per dataset (and task) of ``table``: a bar per group (median; whisker min
    to max over its runs; grey = synthetic data). None for an empty table."""
    if table.empty:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    panel_keys = [k for k in ("dataset", "task", "metric") if k in table.columns]
    panels = list(table.groupby(panel_keys, sort=True, dropna=False))
    ncols = min(3, len(panels))
    nrows = (len(panels) + ncols - 1) // ncols
    tallest = max(len(g) for _, g in panels)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.0 * ncols, (1.0 + 0.3 * tallest) * nrows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    label_keys = [k for k in table.columns if k not in panel_keys + ["runs", "seeds", "median", "min", "max", "mean", "std",
                                                                     "data_source", "config_sha"]]
    for ax, (keys, group) in zip(axes.flat, panels):
        names = []
        for _, r in group.iterrows():
            name = " · ".join(str(r[k]) for k in label_keys) or "runs"
            if "config_sha" in group and len(group) > 1 and sum(1 for _, o in group.iterrows()
                                                                if all(o[k] == r[k] for k in label_keys)) > 1:
                name += f" [{r['config_sha']}]"  # two recipes of one model: name the recipe
            names.append(name)
        colours = ["0.65" if r.get("data_source") == "synthetic" else "tab:blue" for _, r in group.iterrows()]
        ys = range(len(group))
        ax.barh(list(ys), 100 * group["median"], color=colours, height=0.6)
        ax.errorbar(100 * group["median"], list(ys), xerr=[100 * (group["median"] - group["min"]), 100 * (group["max"] - group["median"])],
                    fmt="none", ecolor="black", elinewidth=1, capsize=2)
        ax.set_yticks(list(ys), names, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        keys = keys if isinstance(keys, tuple) else (keys,)
        ax.set_title(" ".join(str(k) for k in keys if k not in (None, "multilabel")) + " (%)", fontsize=9)
    fig.suptitle(title or "fashionbench compare: median over runs (whisker: min-max; grey: synthetic data)", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)
    return path


def write_compare(source: str = "auto", runs_dir: str | os.PathLike = "results/runs", project: str = "fashionbench",
                  entity: str | None = None, filters: Iterable[str] = (), metric: str | None = None,
                  group_by: list[str] | None = None, out_dir: str | os.PathLike = "results",
                  api: Any = None) -> tuple[pd.DataFrame, Path, Path | None, str]:
    """Load, filter and compare the runs; write ``<out>/compare.csv`` and
    ``<out>/figures/compare.png``. Returns ``(table, csv path, figure path or None, origin)``."""
    runs, origin = load_runs(source, runs_dir, project, entity, api)
    runs = apply_filters(runs, filters)
    table = comparison_table(runs, metric, group_by)
    out = Path(out_dir)
    csv_path = atomic_write_text(out / "compare.csv", table.to_csv(index=False))
    figure = comparison_figure(table, out / "figures" / "compare.png", f"fashionbench compare ({origin}): median over runs"
                               " (whisker: min-max; grey: synthetic data)")
    return table, csv_path, figure, origin
