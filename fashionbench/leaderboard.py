"""The leaderboard: run records -> pandas -> ``results/leaderboard.{md,csv}`` and
``results/leaderboard_models.csv``.

**The front page** (:func:`build_front_page`, the first section of ``leaderboard.md``):
rows are models, columns are dataset (and task) x headline metric.

- A record's row is the ``model`` of the ``leaderboard:`` entry of its paper's
  ``paper.yaml`` that lists its ``row`` (schema below). A record of a paper with such a
  section whose row no entry lists (an ablation, a sweep point) stays off the front page:
  it is in its paper's tables and in the per-run table. A record of a paper without the
  section (e.g. ``baseline``) is its ``model`` name without the ``[backbone]`` suffix.
- A column's headline metric is the one the papers' entries name for that dataset and
  task (e.g. ``F1-micro`` on iMaterialist, ``top3`` on DeepFashion categories), else
  ``mAP`` for multi-label and ``top1`` for single-label records.
- A cell: the best value and min <- median -> max over the runs of one recipe
  (``config_sha``: the recipe with the best median when there are several), real data
  before synthetic (the data source is printed), the backbone that ran, and the paper's own
  number where a paper reported one (cited in a footnote; ``†`` = derived).
- Each model shows its parameter count and GFLOPs at its input size, computed by
  :mod:`fashionbench.model_size` from the resolved config of the records its cells show
  (cached in ``results/cache/model_size.json``, keyed by the model config, input size
  and labels).

``leaderboard:`` in ``benchmarks/<paper>/paper.yaml`` (a list)::

    leaderboard:
      - model: CMSG                 # the front-page row
        rows: [CMSG]                # this paper's record.row values that are this model (default: none)
        reported:                   # the paper's headline numbers, by reference to its tables
          - {table: table1, row: CMSG, column: mAP}            # dataset/task/metric from the table
          - {table: t, row: r, column: mAP, dataset: nus-wide}  # when the table names no dataset
          - {table: t, row: r, reduce: mean}                    # the mean of the row's columns (derived)
          - {dataset: d, task: k, metric: m, value: 0.5, percent: false, source: "paper, Table 4"}
        note: "shown as a footnote of the row"

A reference reads the cell as the table has it (a number, ``lost``, or ``{value, derived |
source}``), so the number is typed once, with its citation, in the table.

**The per-run table** (:func:`build_leaderboard`, ``leaderboard.csv`` and the second
section of ``leaderboard.md``): one row per model x dataset x task (and split, data source
and recipe: synthetic smoke runs never mix with real ones, and runs of different configs --
``config_sha``, which ignores seeds and paths -- never pass for seeds of one recipe). The
headline metric is ``mAP`` for multi-label tasks and ``top1`` for single-label ones; its
best value and its spread over seeds (min <- median -> max, as big_transfer and mmpretrain
report it) come from every record of the group; the other columns are those of the best run.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from fashionbench.errors import InputError
from fashionbench.io import atomic_write_text, file_lock
from fashionbench.records import DEFAULT_RUNS_DIR, load_records

GROUP_KEYS = ["model", "dataset", "task", "split", "data_source", "config_sha"]
MULTILABEL_EXTRA = ["CF1", "OF1", "CF1@3", "OF1@3"]
SINGLELABEL_EXTRA = ["top3", "top5"]


def headline_metric(metrics: dict) -> str:
    return "mAP" if "mAP" in metrics else "top1"


def records_frame(records: list[dict]) -> pd.DataFrame:
    """One row per run: the group keys, seed, headline metric and the extra metrics."""
    rows = []
    for r in records:
        metrics = r["metrics"] or {}
        head = headline_metric(metrics)
        row = {k: r.get(k) for k in GROUP_KEYS}
        row.update(seed=r.get("seed"), metric=head, value=metrics.get(head), record=os.path.basename(r.get("_path", "")))
        for key in MULTILABEL_EXTRA + SINGLELABEL_EXTRA:
            row[key] = metrics.get(key)
        rows.append(row)
    columns = GROUP_KEYS + ["seed", "metric", "value", "record"] + MULTILABEL_EXTRA + SINGLELABEL_EXTRA
    return pd.DataFrame(rows, columns=columns)


def build_leaderboard(records: list[dict]) -> pd.DataFrame:
    """The flat leaderboard table (one row per group), best first within each dataset."""
    runs = records_frame(records)
    if runs.empty:
        return pd.DataFrame(columns=GROUP_KEYS + ["metric", "runs", "seeds", "best", "min", "median", "max"])
    runs = runs.assign(value=pd.to_numeric(runs["value"], errors="coerce"))
    out = []
    for keys, group in runs.groupby(GROUP_KEYS + ["metric"], dropna=False, sort=False):
        scored = group.dropna(subset=["value"])
        best = scored.loc[scored["value"].idxmax()] if not scored.empty else group.iloc[0]
        row = dict(zip(GROUP_KEYS + ["metric"], keys))
        row.update(
            runs=len(group),
            seeds=" ".join(str(s) for s in sorted(group["seed"].dropna().unique())),
            best=scored["value"].max() if not scored.empty else None,
            min=scored["value"].min() if not scored.empty else None,
            median=scored["value"].median() if not scored.empty else None,
            max=scored["value"].max() if not scored.empty else None,
        )
        extras = MULTILABEL_EXTRA if row["metric"] == "mAP" else SINGLELABEL_EXTRA
        for key in extras:
            row[key] = best[key]
        row["best_record"] = best["record"]
        out.append(row)
    table = pd.DataFrame(out)
    return table.sort_values(["dataset", "task", "data_source", "best"], ascending=[True, True, True, False], na_position="last").reset_index(drop=True)


def _pct(value) -> str:
    return "—" if value is None or pd.isna(value) else f"{100 * float(value):.1f}"


def to_markdown(table: pd.DataFrame, n_records: int) -> str:
    lines = [
        "# Leaderboard",
        "",
        f"Generated by `fashionbench leaderboard` from {n_records} run record(s) in `results/runs/`."
        " Values in %; the spread over seeds is min ← median → max; the other columns are the best run's."
        " Rows with data source `synthetic` are smoke runs on generated data, not results.",
        "",
    ]
    if table.empty:
        return "\n".join(lines + ["No run records yet.", ""])
    header = "| model | dataset | task | split | data | metric | best | seeds: min ← median → max | runs | other (best run) | recipe |"
    lines += [header, "|---|---|---|---|---|---|---:|---|---:|---|---|"]
    for _, row in table.iterrows():
        extras = MULTILABEL_EXTRA if row["metric"] == "mAP" else SINGLELABEL_EXTRA
        other = ", ".join(f"{k} {_pct(row.get(k))}" for k in extras if k in row and not pd.isna(row.get(k)))
        spread = f"{_pct(row['min'])} ← {_pct(row['median'])} → {_pct(row['max'])}"
        lines.append(
            f"| {row['model']} | {row['dataset']} | {row['task']} | {row['split']} | {row['data_source']} | "
            f"{row['metric']} | {_pct(row['best'])} | {spread} | {row['runs']} | {other or '—'} | {row['config_sha']} |"
        )
    return "\n".join(lines) + "\n"


def write_leaderboard(runs_dir: str | os.PathLike = DEFAULT_RUNS_DIR, out_dir: str | os.PathLike = "results",
                      benchmarks_dir: str | os.PathLike = "benchmarks") -> tuple[Path, Path]:
    """``leaderboard.csv`` (per run group) and ``leaderboard.md`` (the front page, then the
    per-run table) under ``out_dir``, plus ``leaderboard_models.csv`` (the front page's cells).
    Returns the paths of the first two. Runs that rebuild it at once take turns (a lock
    file, ``.leaderboard.lock``): each reads the records and writes all its files before
    the next reads, so the last rebuild holds every record written before it started."""
    out_dir = Path(out_dir)
    with file_lock(out_dir / ".leaderboard.lock"):
        records = load_records(runs_dir) if Path(runs_dir).is_dir() else []
        table = build_leaderboard(records)
        front = build_front_page(records, benchmarks_dir, size_cache=out_dir / "cache" / "model_size.json")
        atomic_write_text(out_dir / "leaderboard_models.csv", front_page_frame(front).to_csv(index=False))
        csv_path = atomic_write_text(out_dir / "leaderboard.csv", table.to_csv(index=False))
        md = to_markdown(table, len(records))
        title, _, rest = md.partition("\n")
        md_path = atomic_write_text(out_dir / "leaderboard.md", "\n".join([title, "", front_page_markdown(front), "## Every run group", rest]))
    return csv_path, md_path


# ============================================================================ front page
DEFAULT_TASK = "multilabel"
_BACKBONE = re.compile(r"^(.*?)\s*\[([^\]]+)\]\s*$")


def split_model(name: str) -> tuple[str, str | None]:
    """``"CMSG [resnet101]"`` -> ``("CMSG", "resnet101")``; a name without brackets -> ``(name, None)``."""
    match = _BACKBONE.match(str(name))
    return (match.group(1), match.group(2)) if match else (str(name), None)


@dataclass(frozen=True)
class Column:
    """One front-page column: a dataset, a task (evaluation set) and a metric."""

    dataset: str
    task: str
    metric: str

    @property
    def label(self) -> str:
        return f"{self.dataset}{'' if self.task == DEFAULT_TASK else ' ' + self.task} {self.metric}"


@dataclass
class PaperValue:
    """A paper's own number for a cell: ``value`` as a fraction (None when our copy lost it)."""

    value: float | None
    text: str
    paper: str
    citation: str


@dataclass
class Cell:
    model: str
    column: Column
    source: str | None = None
    best: float | None = None
    min: float | None = None
    median: float | None = None
    max: float | None = None
    runs: int = 0
    seeds: list = field(default_factory=list)
    recipes: int = 0
    config_sha: str | None = None
    backbones: list = field(default_factory=list)
    best_record: dict | None = None
    paper: list = field(default_factory=list)


@dataclass
class FrontPage:
    models: list[str]
    columns: list[Column]
    cells: dict[tuple[str, Column], Cell]
    sizes: dict[str, list[tuple[float, float, int]]]
    size_errors: dict[str, str]
    model_notes: dict[str, str]
    n_records: int
    n_off_page: int


def _paper_cell_value(value: Any, percent: bool, where: str) -> tuple[float | None, str, str | None]:
    """A table cell (number | ``lost`` | ``{value | lost, derived | source}``) as
    ``(fraction or None, text in %, extra citation)``."""
    scale = 0.01 if percent else 1.0
    if value == "lost":
        return None, "(lost)", None
    extra = None
    derived = False
    if isinstance(value, dict):
        if value.get("derived"):
            extra, derived = f"derived: {value['derived']}", True
        elif value.get("source"):
            extra = str(value["source"])
        if value.get("lost"):
            return None, "(lost)", extra
        value = value.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{where}: expected a number, 'lost' or {{value: ...}}, got {value!r}")
    fraction = float(value) * scale
    if percent:  # the paper's own precision (tables.py): 91.24 stays 91.24
        from fashionbench.tables import _paper_number

        text = _paper_number(value, True, where)
    else:
        text = f"{100 * fraction:.1f}"
    return fraction, text + ("†" if derived else ""), extra


def _reported_row(table: dict, row: str, where: str) -> dict:
    for candidate in table.get("reported") or []:
        if candidate.get("row") == row:
            return candidate
    raise InputError(f"{where}: the table has no reported row '{row}'")


def _entry_values(entry: dict, spec: dict, paper: str, where: str) -> list[tuple[Column, PaperValue]]:
    """The (column, paper value) pairs an entry's ``reported`` list names."""
    from fashionbench.tables import _column_specs

    out = []
    for i, ref in enumerate(entry.get("reported") or []):
        here = f"{where}, reported[{i}]"
        if not isinstance(ref, dict):
            raise InputError(f"{here}: expected a mapping")
        if "table" in ref:
            table = (spec.get("tables") or {}).get(ref["table"])
            if not isinstance(table, dict):
                raise InputError(f"{here}: no table '{ref['table']}'")
            row = _reported_row(table, ref.get("row"), here)
            percent = bool(table.get("percent", True))
            citation = f"{paper}: {row.get('source', ref['table'] + ', row ' + str(ref.get('row')))}"
            if ref.get("reduce") == "mean":
                keys = ref.get("columns") or [c["key"] for c in _column_specs(table)]
                cells = [_paper_cell_value((row.get("values") or {}).get(k), percent, f"{here}, {k}") for k in keys]
                numbers = [c[0] for c in cells if c[0] is not None]
                if not ref.get("metric"):
                    raise InputError(f"{here}: reduce: mean needs the record metric it stands for ('metric')")
                if len(numbers) < len(cells):
                    value, text = None, "(lost)"
                else:
                    value = statistics.fmean(numbers)
                    text = f"{100 * value:.1f}†"
                extra = f"derived: the mean of the row's {len(keys)} values ({', '.join(map(str, keys))})"
                metric, dataset, task = ref["metric"], ref.get("dataset") or table.get("dataset"), ref.get("task") or table.get("task")
            else:
                columns = {c["key"]: c for c in _column_specs(table)}
                column = columns.get(ref.get("column"))
                if column is None:
                    raise InputError(f"{here}: table '{ref['table']}' has no column '{ref.get('column')}'")
                raw = (row.get("values") or {}).get(column["key"])
                if raw is None:
                    raise InputError(f"{here}: row '{ref.get('row')}' reports nothing in column '{column['key']}'")
                value, text, extra = _paper_cell_value(raw, percent, here)
                metric = ref.get("metric") or column["metric"]
                dataset, task = ref.get("dataset") or column["dataset"], ref.get("task") or column.get("task")
        else:
            if not ref.get("source"):
                raise InputError(f"{here}: a typed value needs its 'source' (paper, table, row)")
            value, text, extra = _paper_cell_value(ref.get("value"), bool(ref.get("percent", True)), here)
            metric, dataset, task = ref.get("metric"), ref.get("dataset"), ref.get("task")
            citation = f"{paper}: {ref['source']}"
        if not dataset or not metric:
            raise InputError(f"{here}: the cell needs a dataset and a metric (give 'dataset:' when the table names none)")
        if ref.get("note"):
            extra = f"{extra}; {ref['note']}" if extra else str(ref["note"])
        out.append((Column(str(dataset), str(task or DEFAULT_TASK), str(metric)),
                    PaperValue(value, text, paper, citation + (f"; {extra}" if extra else ""))))
    return out


def load_front_specs(benchmarks_dir: str | os.PathLike = "benchmarks") -> list[dict]:
    """The ``leaderboard:`` entries of every ``benchmarks/*/paper.yaml``, resolved:
    ``{paper, model, rows, note, values: [(Column, PaperValue)]}``."""
    from fashionbench.tables import load_paper

    out = []
    for path in sorted(Path(benchmarks_dir).glob("*/paper.yaml")):
        spec = load_paper(path.parent.name, benchmarks_dir)
        entries = spec.get("leaderboard")
        if entries is None:
            continue
        paper = str(spec.get("paper") or path.parent.name)
        if not isinstance(entries, list):
            raise InputError("leaderboard: expected a list of {model, rows, reported} entries", path=path)
        for i, entry in enumerate(entries):
            where = f"leaderboard[{i}]"
            if not isinstance(entry, dict) or not entry.get("model"):
                raise InputError(f"{where}: an entry needs 'model'", path=path)
            rows = entry.get("rows") or []
            if not isinstance(rows, list):
                raise InputError(f"{where}: 'rows' must be a list of record rows", path=path)
            try:
                values = _entry_values(entry, spec, paper, f"{where} ({entry['model']})")
            except InputError as err:
                raise InputError(err.message, path=path) from None
            out.append({"paper": paper, "model": str(entry["model"]), "rows": [str(r) for r in rows],
                        "note": entry.get("note"), "values": values})
    return out


class SizeCache:
    """Model sizes of run records (:func:`fashionbench.model_size.record_size`), kept in a
    JSON file keyed by the model config, input size and label names."""

    def __init__(self, path: str | os.PathLike | None) -> None:
        self.path = Path(path) if path is not None else None
        self.entries: dict[str, dict] = {}
        self.changed = False
        if self.path is not None and self.path.is_file():
            try:
                loaded = json.loads(self.path.read_text(encoding="utf-8"))
                self.entries = loaded if isinstance(loaded, dict) else {}
            except (OSError, json.JSONDecodeError):
                self.entries = {}  # a cache: rebuilt when unreadable

    @staticmethod
    def key(record: dict) -> str:
        config = record.get("config") or {}
        size = ((config.get("data") or {}).get("init_args") or {}).get("image_size")
        text = json.dumps([config.get("model"), size, record.get("label_names")], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def size(self, record: dict) -> tuple[tuple[float, float, int] | None, str | None]:
        """``((Mparams, GFLOPs, image side), None)`` or ``(None, why not)``."""
        key = self.key(record)
        hit = self.entries.get(key)
        if hit is None:
            from fashionbench.model_size import record_size

            try:
                size = record_size(record)
                hit = {"params": size.params, "flops": size.flops, "image_size": size.image_size}
            except Exception as err:  # noqa: BLE001 - a size is informative; say why it is missing
                return None, f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            self.entries[key] = hit
            self.changed = True
        return (hit["params"] / 1e6, hit["flops"] / 1e9, int(hit["image_size"])), None

    def save(self) -> None:
        if self.changed and self.path is not None:
            atomic_write_text(self.path, json.dumps(self.entries, indent=1, sort_keys=True) + "\n")
            self.changed = False


def _number(record: dict, metric: str) -> float | None:
    from fashionbench.tables import metric_value

    value = metric_value(record, metric)
    return None if value is None or value != value else float(value)  # NaN -> None


def build_front_page(records: list[dict], benchmarks_dir: str | os.PathLike = "benchmarks",
                     size_cache: str | os.PathLike | SizeCache | None = None) -> FrontPage:
    """The front page (module docstring) from run records and the papers' ``leaderboard:`` entries."""
    specs = load_front_specs(benchmarks_dir) if Path(benchmarks_dir).is_dir() else []
    claims: dict[str, dict[str, str]] = {}
    named: dict[tuple[str, str], list[str]] = {}
    paper_values: dict[tuple[str, Column], list[PaperValue]] = {}
    notes: dict[str, str] = {}
    for entry in specs:
        table = claims.setdefault(entry["paper"], {})
        for row in entry["rows"]:
            table.setdefault(row, entry["model"])
        if entry.get("note"):
            notes.setdefault(entry["model"], str(entry["note"]))
        for column, value in entry["values"]:
            metrics = named.setdefault((column.dataset, column.task), [])
            if column.metric not in metrics:
                metrics.append(column.metric)
            paper_values.setdefault((entry["model"], column), []).append(value)

    groups: dict[tuple[str, Column], list[tuple[dict, float]]] = {}
    off_page = 0
    for record in records:
        paper = record.get("paper")
        if paper in claims:
            label = claims[paper].get(record.get("row"))
        else:
            label = split_model(record.get("model") or "?")[0]
        if label is None:
            off_page += 1
            continue
        dataset, task = str(record.get("dataset")), str(record.get("task") or DEFAULT_TASK)
        metrics = named.get((dataset, task)) or [headline_metric(record.get("metrics") or {})]
        for metric in metrics:
            value = _number(record, metric)
            if value is not None:
                groups.setdefault((label, Column(dataset, task, metric)), []).append((record, value))

    cache = size_cache if isinstance(size_cache, SizeCache) else SizeCache(size_cache)
    cells: dict[tuple[str, Column], Cell] = {}
    sizes: dict[str, list[tuple[float, float, int]]] = {}
    size_errors: dict[str, str] = {}
    for key in set(groups) | set(paper_values):
        model, column = key
        cell = Cell(model, column, paper=paper_values.get(key, []))
        runs = groups.get(key, [])
        if runs:
            source = "real" if any(r.get("data_source") == "real" for r, _ in runs) else "synthetic"
            chosen = [(r, v) for r, v in runs if (r.get("data_source") or "synthetic") == source] or runs
            recipes: dict[str, list[tuple[dict, float]]] = {}
            for r, v in chosen:
                recipes.setdefault(str(r.get("config_sha")), []).append((r, v))
            sha, group = max(recipes.items(), key=lambda item: (statistics.median(v for _, v in item[1]), item[0]))
            values = [v for _, v in group]
            best_record = max(group, key=lambda rv: rv[1])[0]
            cell.source, cell.config_sha, cell.recipes = source, sha, len(recipes)
            cell.best, cell.min, cell.max, cell.median = max(values), min(values), max(values), statistics.median(values)
            cell.runs = len(group)
            cell.seeds = sorted({r.get("seed") for r, _ in group if r.get("seed") is not None}, key=str)
            cell.backbones = sorted({b for b in (split_model(r.get("model") or "")[1] for r, _ in group) if b})
            cell.best_record = best_record
            size, error = cache.size(best_record)
            if size is not None:
                found = sizes.setdefault(model, [])
                if not any(abs(s[0] - size[0]) < 0.05 and abs(s[1] - size[1]) < 0.05 and s[2] == size[2] for s in found):
                    found.append(size)
            elif error:
                size_errors.setdefault(model, error)
        cells[key] = cell
    cache.save()
    columns = sorted({c for _, c in cells}, key=lambda c: (c.dataset, c.task != DEFAULT_TASK, c.task, c.metric))
    models = sorted({m for m, _ in cells}, key=lambda m: (not any(cells[k].source == "real" for k in cells if k[0] == m), m.lower()))
    return FrontPage(models, columns, cells, sizes, size_errors, notes, len(records), off_page)


def _escape_cell(text: Any) -> str:
    return str(text).replace("|", "\\|")


def _size_text(front: FrontPage, model: str) -> tuple[str, str]:
    sizes = sorted(front.sizes.get(model, []), key=lambda s: (s[2], s[0]))
    if not sizes:
        return "—", "—"
    params = "; ".join(dict.fromkeys(f"{s[0]:.1f}" for s in sizes))
    flops = "; ".join(f"{s[1]:.1f} ({s[2]}²)" for s in sizes)
    return params, flops


def _cell_text(cell: Cell | None, footnotes: list[str]) -> str:
    if cell is None:
        return "—"
    parts = []
    if cell.best is not None:
        spread = "one run" if cell.runs == 1 else f"{_pct(cell.min)} ← {_pct(cell.median)} → {_pct(cell.max)}"
        seeds = f"seed{'s' if len(cell.seeds) != 1 else ''} {' '.join(map(str, cell.seeds))}" if cell.seeds else "no seed"
        detail = [cell.source or "", ", ".join(cell.backbones), f"{cell.runs} run{'s' if cell.runs != 1 else ''}, {seeds}"]
        if cell.recipes > 1:
            detail.append(f"best of {cell.recipes} recipes")
        parts.append(f"**{_pct(cell.best)}** ({spread})<br>{' · '.join(d for d in detail if d)}")
    else:
        parts.append("—")
    for value in cell.paper:
        if value.citation not in footnotes:
            footnotes.append(value.citation)
        parts.append(f"paper: {value.text} [{footnotes.index(value.citation) + 1}]")
    return _escape_cell("<br>".join(parts))


def front_page_markdown(front: FrontPage) -> str:
    """The front page as a Markdown section (``<br>`` separates the lines of a cell)."""
    lines = [
        "## Models × datasets",
        "",
        "Rows: every paper's model and the baselines; columns: dataset (and task) × headline metric, in %."
        " A cell: **best** (min ← median → max over the runs of one recipe), data source, backbone, runs and seeds;"
        " `paper:` the number the paper reported (footnote: where; † derived, (lost): the paper has it, our copy lost it)."
        " Real data is shown before synthetic; `synthetic` cells are smoke runs on generated data, not results."
        " Params and GFLOPs: the model as it ran (fashionbench/model_size.py; a multiply-add = 2 FLOPs) at its input side.",
        "",
    ]
    if not front.cells:
        return "\n".join(lines + ["No run records and no paper `leaderboard:` entries yet.", ""])
    footnotes: list[str] = []
    header = "| model | params (M) | GFLOPs (input) | " + " | ".join(_escape_cell(c.label) for c in front.columns) + " |"
    lines += [header, "|---|---:|---|" + "---|" * len(front.columns)]
    for model in front.models:
        label = _escape_cell(model)
        if model in front.model_notes:
            text = f"{model}: {front.model_notes[model]}"
            if text not in footnotes:
                footnotes.append(text)
            label += f" [{footnotes.index(text) + 1}]"
        params, flops = _size_text(front, model)
        if params == "—" and model in front.size_errors:
            text = f"{model}: size not computed ({front.size_errors[model]})"
            if text not in footnotes:
                footnotes.append(text)
            params += f" [{footnotes.index(text) + 1}]"
        cells = [_cell_text(front.cells.get((model, c)), footnotes) for c in front.columns]
        lines.append(f"| {label} | {params} | {flops} | " + " | ".join(cells) + " |")
    lines.append("")
    if front.n_off_page:
        lines += [f"{front.n_off_page} of {front.n_records} run record(s) are ablations, sweep points or variants that no paper's"
                  " `leaderboard:` entry lists: they are in the paper tables (results/tables/) and in the table below.", ""]
    lines += [f"{i}. {text}" for i, text in enumerate(footnotes, 1)]
    return "\n".join(lines) + "\n"


def front_page_frame(front: FrontPage) -> pd.DataFrame:
    """One row per front-page cell (``results/leaderboard_models.csv``)."""
    rows = []
    for model in front.models:
        params, flops = _size_text(front, model)
        for column in front.columns:
            cell = front.cells.get((model, column))
            if cell is None:
                continue
            rows.append({
                "model": model, "dataset": column.dataset, "task": column.task, "metric": column.metric,
                "data_source": cell.source, "best": cell.best, "min": cell.min, "median": cell.median, "max": cell.max,
                "runs": cell.runs, "seeds": " ".join(map(str, cell.seeds)), "recipes": cell.recipes,
                "config_sha": cell.config_sha, "backbone": " ".join(cell.backbones), "params_M": params, "gflops": flops,
                "paper_value": ";".join("" if v.value is None else repr(v.value) for v in cell.paper),
                "paper_text": ";".join(v.text for v in cell.paper),
                "paper_source": " | ".join(v.citation for v in cell.paper),
                "best_record": os.path.basename(str((cell.best_record or {}).get("_path", ""))),
            })
    columns = ["model", "dataset", "task", "metric", "data_source", "best", "min", "median", "max", "runs", "seeds",
               "recipes", "config_sha", "backbone", "params_M", "gflops", "paper_value", "paper_text", "paper_source", "best_record"]
    return pd.DataFrame(rows, columns=columns)
