"""Paper tables: ``benchmarks/<paper>/paper.yaml`` (the paper's reported numbers, each
cited) beside the suite's rows, read from run records, rendered to Markdown under
``results/tables/``. The only typed numbers are the papers'; every other cell comes from
a record.

A ``paper.yaml`` has ``tables`` (``title``, ``dataset``, ``split``, ``percent``,
``columns``, ``reported`` rows with ``source`` and ``values``, ``ours`` rows) and
``reproduce`` targets (``table1: {tables: [...], runs: [{config: ...}]}``) that
``fashionbench reproduce`` runs and renders into one file. A table that needs another
layout names its own ``renderer: module:function`` (called as :func:`render_table` is).

Schema details (all optional; ``benchmarks/cmsg/paper.yaml`` uses each):

- ``columns``: metric names (``mAP``, ``AP:<label>``) of the table's ``dataset``, or mappings
  ``{key, metric, dataset, label}`` for tables that set two datasets side by side.
- Reported cells: a number; ``lost`` (the paper has the cell, our copy lost it: rendered
  "(lost)", never "—", which means "not reported"); ``{value: x, derived: "how"}`` (a value
  computed from the text: "x†" with a footnote); ``{value: x, source: "sentence"}`` (read
  from the text); ``{lost: true, delta: d, relative_to: ROW, source: ...}`` (a lost cell whose
  difference to another row is known: "(lost) = ROW +d").
- Rows: ``note`` (a numbered footnote on the row name); reported rows' ``config`` (this
  suite's config of the row, for the size columns).
- Tables: ``record_tables`` (the ``record.table`` values whose records fill the ``ours`` rows;
  default the table's id), ``delta_to`` (an ``ours`` row the others are differenced to),
  ``size: true`` (params and GFLOPs columns, :mod:`fashionbench.model_size`), ``figure``
  (``{file, x, xlabel}``: a PNG of the headline metric against ``x``, a dotted path into each
  record's config, written to ``results/figures/``).
"""
from __future__ import annotations

import importlib
import os
import statistics
from pathlib import Path
from typing import Any

import yaml

from fashionbench.errors import InputError
from fashionbench.io import atomic_open, atomic_write_text
from fashionbench.records import DEFAULT_RUNS_DIR, load_records

BENCHMARKS_DIR = Path("benchmarks")


def paper_dir(paper: str, benchmarks_dir: str | os.PathLike = BENCHMARKS_DIR) -> Path:
    return Path(benchmarks_dir) / paper


def load_paper(paper: str, benchmarks_dir: str | os.PathLike = BENCHMARKS_DIR) -> dict:
    path = paper_dir(paper, benchmarks_dir) / "paper.yaml"
    if not path.is_file():
        known = sorted(p.parent.name for p in Path(benchmarks_dir).glob("*/paper.yaml"))
        raise InputError(f"no paper '{paper}' (known: {', '.join(known) or 'none'})", path=path)
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        line = getattr(getattr(err, "problem_mark", None), "line", None)
        raise InputError(f"bad YAML: {getattr(err, 'problem', err)}", path=path, line=None if line is None else line + 1) from None
    if not isinstance(spec, dict) or not isinstance(spec.get("tables"), dict):
        raise InputError("paper.yaml needs a 'tables' mapping", path=path)
    spec["_path"] = str(path)
    return spec


#: ``<prefix>:<label>`` columns: one label's entry of a per-class metrics list.
PER_LABEL_COLUMNS = {"AP:": "AP", "PR-AUC:": "PR-AUC_per_class"}


def metric_value(record: dict, column: str) -> float | None:
    """A column of a record: a metric key, ``AP:<label>`` for one label's AP, or
    ``PR-AUC:<label>`` for one label's PR-AUC (``metrics.PR-AUC_per_class``)."""
    metrics = record.get("metrics") or {}
    for prefix, key in PER_LABEL_COLUMNS.items():
        if column.startswith(prefix):
            names = record.get("label_names") or []
            label = column[len(prefix):]
            if label not in names or not isinstance(metrics.get(key), list):
                return None
            return metrics[key][names.index(label)]
    value = metrics.get(column)
    return value if isinstance(value, (int, float)) else None


LOST = "lost"  # a cell the paper has but our copy of it lost (rendered "(lost)", never "—")


class _Footnotes:
    """Numbered footnotes of one table (identical texts share a number)."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def add(self, text: str) -> str:
        if text not in self.texts:
            self.texts.append(text)
        return f"[{self.texts.index(text) + 1}]"

    def lines(self) -> list[str]:
        return [f"{i}. {text}" for i, text in enumerate(self.texts, 1)]


def _fmt(value: Any, percent: bool) -> str:
    if value is None:
        return "—"
    return f"{100 * value:.1f}" if percent else f"{value:.4f}"


def _column_specs(table: dict) -> list[dict]:
    """Columns as ``{key, metric, dataset, label}``: a plain string is a metric of the
    table's dataset; a mapping names its own ``metric`` and ``dataset`` (tables that set
    runs on two datasets side by side, e.g. an ablation on VOC and COCO)."""
    specs = []
    for column in table["columns"]:
        if isinstance(column, str):
            specs.append({"key": column, "metric": column, "dataset": table.get("dataset"),
                          "label": column[3:] if column.startswith("AP:") else column, "task": table.get("task")})
        elif isinstance(column, dict) and column.get("key"):
            specs.append({"key": column["key"], "metric": column.get("metric", column["key"]),
                          "dataset": column.get("dataset", table.get("dataset")), "label": column.get("label", column["key"]),
                          "task": column.get("task", table.get("task"))})  # a column may name its evaluation set
        else:
            raise InputError(f"bad column {column!r}: a metric name or a mapping with 'key'")
    return specs


def _paper_number(value: Any, percent: bool, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{where}: expected a number, got {value!r}")
    if percent:  # the paper's own precision, at least one decimal (91.24 stays 91.24, 84 is 84.0)
        typed = repr(float(value)).partition(".")[2]
        return f"{value:.{max(1, len(typed)) if 'e' not in typed else 1}f}"
    return str(value)


def _paper_cell(value: Any, percent: bool, notes: _Footnotes, where: str) -> str:
    """A reported cell: a number, ``lost``, or a mapping ``{value | lost: true, derived: how
    | source: where, delta: d, relative_to: row}`` (derived values carry a dagger)."""
    if value is None:
        return "—"
    if value == LOST:
        return "(lost)"
    if not isinstance(value, dict):
        return _paper_number(value, percent, where)
    text = "(lost)" if value.get("lost") else _paper_number(value.get("value"), percent, where)
    if "delta" in value:
        delta = value["delta"]
        if isinstance(delta, bool) or not isinstance(delta, (int, float)):
            raise InputError(f"{where}: delta must be a number, got {delta!r}")
        text += f" = {value.get('relative_to', '?')} {'+' if delta >= 0 else '−'}{abs(delta):.1f}"
    if value.get("derived"):
        text += "† " + notes.add(f"† {where}: derived: {value['derived']}")
    elif value.get("source"):
        text += " " + notes.add(f"{where}: {value['source']}")
    return text


def _record_datasets(table: dict, columns: list[dict]) -> set | None:
    datasets = {c["dataset"] for c in columns}
    return None if None in datasets else datasets


def _ours_rows(table: dict, table_id: str, paper: str, records: list[dict]) -> list[tuple[str, str, list[dict]]]:
    """(row name, data source, records) for every ``ours`` row that has records. A record
    belongs to the row when its ``paper``/``row`` match, its ``table`` is one of the
    table's ``record_tables`` (default: the table's id), and its ``dataset`` (and ``task``)
    is one the table's columns ask for."""
    tables = set(table.get("record_tables") or [table_id])
    datasets = _record_datasets(table, _column_specs(table))
    tasks = {c["task"] for c in _column_specs(table)}
    out = []
    for row in table.get("ours", []):
        name = row["row"]
        matching = [
            r for r in records
            if r.get("paper") == paper and r.get("table") in tables and r.get("row") == name
            and (datasets is None or r.get("dataset") in datasets)
            and (None in tasks or r.get("task") in tasks)
        ]
        for source in ("real", "synthetic"):
            group = [r for r in matching if r.get("data_source") == source]
            if group:
                out.append((name, source, group))
        if not matching:
            out.append((name, "", []))
    return out


def _column_values(group: list[dict], column: dict) -> list[float]:
    rows = [r for r in group if (column["dataset"] is None or r.get("dataset") == column["dataset"])
            and (column.get("task") is None or r.get("task") == column["task"])]
    return [v for v in (metric_value(r, column["metric"]) for r in rows) if v is not None]


# ------------------------------------------------------------------------ model size
_SIZE_ERRORS = (InputError, OSError, ValueError, TypeError, RuntimeError, KeyError, ImportError, AttributeError, NotImplementedError)


def _label_names_for_config(config: dict, columns: list[dict]) -> list[str] | None:
    """Label names a config's model is built with, for its size: the table's ``AP:<label>``
    columns, else the reader's class list (``datamodules.readers.<ds>.<DS>_CLASSES``), else
    the names in the model's ``embeddings`` .npz file."""
    names = [c["metric"][3:] for c in columns if c["metric"].startswith("AP:")]
    if names:
        return names
    parts = str((config.get("data") or {}).get("class_path", "")).split(".")
    if len(parts) >= 3 and parts[0] == "datamodules":
        try:
            constant = getattr(importlib.import_module(f"datamodules.readers.{parts[1]}"), f"{parts[1].upper()}_CLASSES", None)
        except ImportError:
            constant = None
        if constant:
            return list(constant)
    embeddings = ((config.get("model") or {}).get("init_args") or {}).get("embeddings")
    if isinstance(embeddings, str) and embeddings.endswith(".npz") and Path(embeddings).is_file():
        import numpy as np

        with np.load(embeddings) as data:
            if "names" in data:
                return [str(n) for n in data["names"]]
    return None


def _size_cells(size, notes: _Footnotes, where: str, error: Exception | None = None) -> list[str]:
    if size is None:
        if error is not None:
            notes_mark = notes.add(f"{where}: size not computed ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})")
            return [f"— {notes_mark}", "—"]
        return ["—", "—"]
    return [f"{size.mparams:.1f}", f"{size.gflops:.1f} ({size.image_size}²)"]


def _paper_row_size(row: dict, columns: list[dict], paper_dir: Path | None):
    """Size of this suite's build of a reported row (its ``config``), or (None, error)."""
    from fashionbench.model_size import config_size

    if not row.get("config") or paper_dir is None:
        return None, None
    path = paper_dir / row["config"]
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return config_size(config, label_names=_label_names_for_config(config, columns)), None
    except _SIZE_ERRORS as err:
        return None, err


def _record_row_size(group: list[dict], columns: list[dict]):
    """Size of the model of a row's first record (of the first column's dataset, if any)."""
    from fashionbench.model_size import record_size

    first = [r for r in group if columns[0]["dataset"] is not None and r.get("dataset") == columns[0]["dataset"]] or group
    try:
        return record_size(first[0]), None
    except _SIZE_ERRORS as err:
        return None, err


# --------------------------------------------------------------------------- figures
def _config_path_value(config: dict, dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _render_figure(table_id: str, table: dict, rows: list[tuple[str, str, list[dict]]], headline: str,
                   percent: bool, path: Path) -> Path | None:
    """A PNG of the headline metric (median over seeds) against ``figure.x``, a dotted path
    into each record's resolved config (e.g. ``model.init_args.sga_heads``), one line per
    data source. None when no row has a record."""
    spec = table["figure"]
    series: dict[str, list[tuple[float, float]]] = {}
    for _, source, group in rows:
        if not group:
            continue
        x = _config_path_value(group[0].get("config") or {}, spec["x"])
        values = [v for v in (metric_value(r, headline) for r in group) if v is not None]
        if isinstance(x, (int, float)) and values:
            series.setdefault(source, []).append((float(x), (100 if percent else 1) * statistics.median(values)))
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=120)
    for source, points in sorted(series.items()):
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=f"this suite, {source} data")
    ax.set_xlabel(spec.get("xlabel", spec["x"]))
    ax.set_ylabel(f"{headline}{' (%)' if percent else ''}")
    ax.set_title(spec.get("title", table.get("title", table_id)), fontsize=9)
    if spec.get("log2_x"):
        ax.set_xscale("log", base=2)
    ax.set_xticks(sorted({p[0] for pts in series.values() for p in pts}))
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    if spec.get("caption"):
        ax.text(0.01, 0.01, spec["caption"], transform=ax.transAxes, fontsize=7, alpha=0.7, va="bottom")
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png")
    plt.close(fig)
    return path


def render_table(table_id: str, table: dict, paper: str, records: list[dict], *,
                 paper_dir: str | os.PathLike | None = None, figures_dir: str | os.PathLike | None = None,
                 out_dir: str | os.PathLike | None = None) -> tuple[str, set[str]]:
    """One Markdown table; returns the text and the data sources of the rows it filled.

    ``paper_dir`` (the paper's benchmark folder) lets reported rows with a ``config`` get
    their size columns; ``figures_dir`` is where a table's ``figure`` goes (linked relative
    to ``out_dir``, the folder of the Markdown file)."""
    columns = _column_specs(table)
    percent = bool(table.get("percent", True))
    keys = [c["key"] for c in columns]
    metrics = [c["metric"] for c in columns]
    headline_metric = "mAP" if "mAP" in metrics else metrics[-1]  # the spread shows on every column of it
    sized = bool(table.get("size"))
    notes = _Footnotes()
    paper_dir = Path(paper_dir) if paper_dir is not None else None
    lines = [f"### {table.get('title', table_id)}", ""]
    size_head = " params (M) | GFLOPs (input) |" if sized else ""
    lines.append("| method | source | " + " | ".join(c["label"] for c in columns) + " |" + size_head + " seeds |")
    lines.append("|---|---|" + "---:|" * (len(columns) + (2 if sized else 0)) + "---|")
    for row in table.get("reported", []):
        values = row.get("values") or {}
        unknown = sorted(set(values) - set(keys))
        if unknown:
            raise InputError(f"table {table_id}, row {row['row']}: values for unknown columns {unknown}")
        name = row["row"] + (" " + notes.add(f"{row['row']}: {row['note']}") if row.get("note") else "")
        cells = [_paper_cell(values.get(c["key"]), percent, notes, f"{row['row']}, {c['label']}") for c in columns]
        if sized:
            size, error = _paper_row_size(row, columns, paper_dir)
            cells += _size_cells(size, notes, f"{row['row']} size", error)
        lines.append(f"| {name} | {row['source']} | " + " | ".join(cells) + " | — |")
    sources = set()
    row_notes = {r["row"]: r.get("note") for r in table.get("ours", [])}
    ours = _ours_rows(table, table_id, paper, records)
    reference = {source: group for name, source, group in ours if name == table.get("delta_to") and group}
    for name, source, group in ours:
        label = name + (" " + notes.add(f"{name}: {row_notes[name]}") if row_notes.get(name) else "")
        if not group:
            lines.append(f"| {label} | this suite: no run record yet | " + " | ".join("—" for _ in columns)
                         + (" | — | —" if sized else "") + " | — |")
            continue
        sources.add(source)
        cells = []
        for column in columns:
            values = _column_values(group, column)
            if not values:
                cells.append("—")
                continue
            cell = _fmt(statistics.median(values), percent)
            if column["metric"] == headline_metric and len(values) > 1:
                cell += f" ({_fmt(min(values), percent)} ← → {_fmt(max(values), percent)})"
            base = _column_values(reference.get(source, []), column) if name != table.get("delta_to") else []
            if base:
                delta = statistics.median(values) - statistics.median(base)
                cell += f" ({'+' if delta >= 0 else '−'}{_fmt(abs(delta), percent)})"
            cells.append(cell)
        if sized:
            size, error = _record_row_size(group, columns)
            cells += _size_cells(size, notes, f"{name} size", error)
        seeds = " ".join(str(s) for s in sorted({r.get("seed") for r in group}, key=str))
        model = group[0].get("model", "")
        lines.append(f"| {label} | this suite, {source} data ({model}) | " + " | ".join(cells) + f" | {seeds} |")
    if table.get("delta_to") and reference:
        lines += ["", f"Parenthesised signed numbers in this suite's rows: difference to this suite's {table['delta_to']} row (same data source)."]
    if sized:
        lines += ["", "Size: parameters (M) and GFLOPs of one image at the input side shown, computed from the built model"
                  " (`fashionbench/model_size.py`, `torch.utils.flop_counter`: a multiply-add = 2 FLOPs; the \"FLOPs\" of most"
                  " papers are multiply-adds, half of these). This suite's rows: the model of the run record's config (as it"
                  " ran); paper rows: this suite's config of the row (paper.yaml `config:`); — where the suite builds none."]
    if table.get("figure") and figures_dir is not None:
        figure_path = Path(figures_dir) / table["figure"]["file"]
        written = _render_figure(table_id, table, ours, headline_metric, percent, figure_path)
        if written is not None:
            link = os.path.relpath(written, out_dir) if out_dir is not None else str(written)
            lines += ["", f"![{table.get('title', table_id)}]({link})"]
        else:
            lines += ["", f"(figure `{table['figure']['file']}`: no run record yet)"]
    if notes.texts:
        lines += [""] + notes.lines()
    return "\n".join(lines) + "\n", sources


def _renderer(table: dict, path: str):
    """``render_table``, or the paper's own ``renderer: module:function`` (same signature)."""
    name = table.get("renderer")
    if not name:
        return render_table
    module, _, function = str(name).partition(":")
    try:
        return getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError, ValueError):
        raise InputError(f"unknown table renderer '{name}' (expected module:function)", path=path) from None


def render_target(paper: str, target: str, runs_dir: str | os.PathLike = DEFAULT_RUNS_DIR,
                  out_dir: str | os.PathLike = "results/tables", benchmarks_dir: str | os.PathLike = BENCHMARKS_DIR) -> Path:
    """Render reproduce target ``target`` (e.g. ``table1``) of ``paper`` to ``<out>/<paper>_<target>.md``."""
    spec = load_paper(paper, benchmarks_dir)
    target_spec = (spec.get("reproduce") or {}).get(target, {"tables": [target]})
    table_ids = target_spec.get("tables", [target])
    unknown = [t for t in table_ids if t not in spec["tables"]]
    if unknown:
        raise InputError(f"unknown table(s) {unknown} in reproduce target '{target}'", path=spec["_path"])
    records = load_records(runs_dir) if Path(runs_dir).is_dir() else []
    sections, sources = [], set()
    for table_id in table_ids:
        renderer = _renderer(spec["tables"][table_id], spec["_path"])
        extra = {} if renderer is not render_table else {
            "paper_dir": paper_dir(paper, benchmarks_dir), "out_dir": out_dir,
            "figures_dir": Path(out_dir).parent / "figures"}  # results/tables -> results/figures
        try:
            text, used = renderer(table_id, spec["tables"][table_id], spec.get("paper", paper), records, **extra)
        except InputError as err:
            if err.path is not None:
                raise
            raise InputError(f"table {table_id}: {err.message}", path=spec["_path"]) from None
        sections.append(text)
        sources |= used
        for note in spec["tables"][table_id].get("notes", []):
            sections.append(f"- {note}\n")
    head = [f"# {spec.get('title', paper)} — {target}", ""]
    if spec.get("citation"):
        head += [f"Paper: {spec['citation']}.", ""]
    if "synthetic" in sources:
        head += [
            "**The suite's rows below were run on SYNTHETIC data** (`fashionbench synth`, smoke settings:"
            " tiny backbone, few steps). They show the pipeline works end to end; they are not comparable"
            " with the paper's numbers. Give the data roots to reproduce the paper (see README).",
            "",
        ]
    head += [
        f"Paper rows quote the paper (source column: paper, table, row); rows marked *this suite* come from the run"
        f" records in `{runs_dir}` (median over seeds; the headline column shows min ← → max when there are"
        " several)." + (" Values in %." if all(spec["tables"][t].get("percent", True) for t in table_ids) else ""),
        "",
    ]
    return atomic_write_text(Path(out_dir) / f"{paper}_{target}.md", "\n".join(head) + "\n" + "\n".join(sections))
