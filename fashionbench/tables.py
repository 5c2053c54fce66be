"""Paper tables: ``benchmarks/<paper>/paper.yaml`` (the paper's reported numbers, each
cited) beside the suite's rows, read from run records, rendered to Markdown under
``results/tables/``. The only typed numbers are the papers'; every other cell comes from
a record.

A ``paper.yaml`` has ``tables`` (``title``, ``dataset``, ``split``, ``percent``,
``columns``, ``reported`` rows with ``source`` and ``values``, ``ours`` rows) and
``reproduce`` targets (``table1: {tables: [...], runs: [{config: ...}]}``) that
``fashionbench reproduce`` runs and renders into one file.
"""
from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any

import yaml

from fashionbench.errors import InputError
from fashionbench.io import atomic_write_text
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


def metric_value(record: dict, column: str) -> float | None:
    """A column of a record: a metric key, or ``AP:<label>`` for one label's AP."""
    metrics = record.get("metrics") or {}
    if column.startswith("AP:"):
        names = record.get("label_names") or []
        label = column[3:]
        if label not in names or not isinstance(metrics.get("AP"), list):
            return None
        return metrics["AP"][names.index(label)]
    value = metrics.get(column)
    return value if isinstance(value, (int, float)) else None


def _fmt(value: Any, percent: bool) -> str:
    if value is None:
        return "—"
    return f"{100 * value:.1f}" if percent else f"{value:.4f}"


def _ours_rows(table: dict, table_id: str, paper: str, records: list[dict]) -> list[tuple[str, str, list[dict]]]:
    """(row name, data source, records) for every ``ours`` row that has records."""
    out = []
    for row in table.get("ours", []):
        name = row["row"]
        matching = [
            r for r in records
            if r.get("paper") == paper and r.get("table") == table_id and r.get("row") == name
            and (table.get("dataset") is None or r.get("dataset") == table["dataset"])
            and (table.get("task") is None or r.get("task") == table["task"])
        ]
        for source in ("real", "synthetic"):
            group = [r for r in matching if r.get("data_source") == source]
            if group:
                out.append((name, source, group))
        if not matching:
            out.append((name, "", []))
    return out


def render_table(table_id: str, table: dict, paper: str, records: list[dict]) -> tuple[str, set[str]]:
    """One Markdown table; returns the text and the data sources of the rows it filled."""
    columns = list(table["columns"])
    percent = bool(table.get("percent", True))
    headline = "mAP" if "mAP" in columns else columns[-1]
    labels = [c[3:] if c.startswith("AP:") else c for c in columns]
    lines = [f"### {table.get('title', table_id)}", ""]
    lines.append("| method | source | " + " | ".join(labels) + " | seeds |")
    lines.append("|---|---|" + "---:|" * len(columns) + "---|")
    for row in table.get("reported", []):
        values = row.get("values", {})
        cells = [("—" if values.get(c) is None else f"{values[c]:.1f}" if percent else str(values[c])) for c in columns]
        lines.append(f"| {row['row']} | {row['source']} | " + " | ".join(cells) + " | — |")
    sources = set()
    for name, source, group in _ours_rows(table, table_id, paper, records):
        if not group:
            lines.append(f"| {name} | this suite: no run record yet | " + " | ".join("—" for _ in columns) + " | — |")
            continue
        sources.add(source)
        cells = []
        for column in columns:
            values = [v for v in (metric_value(r, column) for r in group) if v is not None]
            if not values:
                cells.append("—")
            elif column == headline and len(values) > 1:
                cells.append(f"{_fmt(statistics.median(values), percent)} ({_fmt(min(values), percent)} ← → {_fmt(max(values), percent)})")
            else:
                cells.append(_fmt(statistics.median(values), percent))
        seeds = " ".join(str(s) for s in sorted({r.get("seed") for r in group}, key=str))
        model = group[0].get("model", "")
        lines.append(f"| {name} | this suite, {source} data ({model}) | " + " | ".join(cells) + f" | {seeds} |")
    return "\n".join(lines) + "\n", sources


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
        text, used = render_table(table_id, spec["tables"][table_id], spec.get("paper", paper), records)
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
        " several). Values in %.",
        "",
    ]
    return atomic_write_text(Path(out_dir) / f"{paper}_{target}.md", "\n".join(head) + "\n" + "\n".join(sections))
