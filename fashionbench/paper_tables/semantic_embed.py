"""The tables of the semantic-embedding paper (Shen, Zhao and Luo; Tables I-III), rendered
beside this suite's rows. Called by :func:`fashionbench.tables.render_target` for tables
whose ``paper.yaml`` entry says ``renderer: fashionbench.paper_tables.semantic_embed:render_table``.

Every cell is a per-label PR-AUC (the paper's "AUC": the area under the precision-recall
curve, ``PR-AUC`` of ``specs/metrics.md``, read from a run record's
``metrics.PR-AUC_per_class``) or computed from such cells here; the only typed numbers are
the paper's, in ``paper.yaml``. Three layouts (``layout:`` of the table):

- ``relative`` (Table I): the baseline's and the method's per-label PR-AUC and the relative
  improvement ``(method - baseline) / baseline`` of each label, for the paper (as printed,
  and recomputed from its printed 3-decimal values) and for this suite.
- ``groups`` (Table II): the mean of the per-label relative improvements over the majority
  labels (on more than ``majority_threshold`` of the images) and over the minority labels.
- ``differences`` (Table III): the first row absolute, the others as their difference from
  it, as the paper prints them, followed by their absolute value in brackets.

A table's ``labels`` maps the paper's column names to this suite's label names (the
DeepFashion ``patterns`` task); ``ours`` rows name run-record rows (``record.row`` of the
configs); records are matched by paper, row, and the table's ``dataset``/``task``.
"""
from __future__ import annotations

import statistics
from typing import Any

from fashionbench.tables import metric_value

__all__ = ["render_table", "relative_improvement", "group_means"]


# ----------------------------------------------------------------------------- maths
def relative_improvement(baseline: float | None, method: float | None) -> float | None:
    """``(method - baseline) / baseline`` (a fraction), None when either is missing or the baseline is 0."""
    if baseline is None or method is None or baseline == 0:
        return None
    return (method - baseline) / baseline


def group_means(improvements: dict[str, float | None], majority: set[str]) -> tuple[float | None, float | None]:
    """Mean relative improvement over the majority labels and over the others (None if a group is empty)."""
    major = [v for k, v in improvements.items() if k in majority and v is not None]
    minor = [v for k, v in improvements.items() if k not in majority and v is not None]
    return (statistics.fmean(major) if major else None, statistics.fmean(minor) if minor else None)


# --------------------------------------------------------------------------- records
def _records_for(table: dict, paper: str, row: str, records: list[dict]) -> list[tuple[str, list[dict]]]:
    """``(data source, records)`` of one ``ours`` row, real data first."""
    matching = [
        r for r in records
        if r.get("paper") == paper and r.get("row") == row
        and (table.get("dataset") is None or r.get("dataset") == table["dataset"])
        and (table.get("task") is None or r.get("task") == table["task"])
    ]
    return [(s, [r for r in matching if r.get("data_source") == s]) for s in ("real", "synthetic")
            if any(r.get("data_source") == s for r in matching)]


def _label(table: dict, column: str) -> str:
    return (table.get("labels") or {}).get(column, column)


def _values(table: dict, group: list[dict]) -> dict[str, float | None]:
    """Median over the records (seeds) of each column's PR-AUC."""
    out = {}
    for column in table["columns"]:
        values = [v for v in (metric_value(r, f"PR-AUC:{_label(table, column)}") for r in group) if v is not None]
        out[column] = statistics.median(values) if values else None
    return out


def _seeds(group: list[dict]) -> str:
    return " ".join(str(s) for s in sorted({r.get("seed") for r in group}, key=str)) or "—"


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{round(100 * value, 2) + 0.0:+.2f}%"  # + 0.0: no "-0.00%"


def _signed(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{round(value, digits) + 0.0:+.{digits}f}"


def _printed(value: float) -> str:
    """A paper's signed difference with its printed decimals (at least 3: YAML drops trailing zeros)."""
    text = repr(float(value))
    decimals = len(text.split(".")[1]) if "." in text and "e" not in text else 3
    return f"{value:+.{max(3, decimals)}f}"


def _mean_relative(values: dict[str, float | None], reference: dict[str, float | None], columns: list[str]) -> float | None:
    """Mean over the columns of ``(value - reference) / reference`` (the paper's "average relative decrease")."""
    changes = [relative_improvement(reference.get(c), values.get(c)) for c in columns]
    changes = [c for c in changes if c is not None]
    return statistics.fmean(changes) if changes else None


def _header(table: dict, table_id: str, extra: str | None = None) -> list[str]:
    columns = list(table["columns"])
    return [
        f"### {table.get('title', table_id)}",
        "",
        "| method | source | " + " | ".join(columns) + (f" | {extra}" if extra else "") + " | seeds |",
        "|---|---|" + "---:|" * (len(columns) + bool(extra)) + "---|",
    ]


def _line(name: str, source: str, cells: list[str], seeds: str = "—") -> str:
    return f"| {name} | {source} | " + " | ".join(cells) + f" | {seeds} |"


def _suite_source(source: str, group: list[dict]) -> str:
    return f"this suite, {source} data ({group[0].get('model', '')})"


def _no_record(name: str, columns: list[str]) -> str:
    return _line(name, "this suite: no run record yet", ["—"] * len(columns))


# --------------------------------------------------------------------------- layouts
def _render_relative(table_id: str, table: dict, paper: str, records: list[dict]) -> tuple[list[str], set[str]]:
    columns = list(table["columns"])
    lines = _header(table, table_id)
    reported = table.get("reported", [])
    for row in reported:
        lines.append(_line(row["row"], row["source"], [_fmt(row["values"].get(c)) for c in columns]))
    rel = table.get("reported_relative")
    if rel:
        lines.append(_line(rel.get("row", "Relative improvement"), rel["source"],
                           ["—" if rel["values"].get(c) is None else f"{rel['values'][c]:.2f}%" for c in columns]))
    if len(reported) >= 2:  # the paper's relative improvement recomputed from its printed values
        base, method = reported[0]["values"], reported[1]["values"]
        lines.append(_line("Relative improvement, recomputed", "from the paper's printed values above",
                           [_pct(relative_improvement(base.get(c), method.get(c))) for c in columns]))
    sources: set[str] = set()
    by_row: dict[str, dict[str, tuple[dict[str, float | None], list[dict]]]] = {}
    for spec in table.get("ours", []):
        name = spec["row"]
        groups = _records_for(table, paper, name, records)
        if not groups:
            lines.append(_no_record(spec.get("label", name), columns))
        for source, group in groups:
            sources.add(source)
            values = _values(table, group)
            by_row.setdefault(name, {})[source] = (values, group)
            lines.append(_line(spec.get("label", name), _suite_source(source, group), [_fmt(values[c]) for c in columns],
                               _seeds(group)))
    pair = table.get("relative") or {}
    for source in ("real", "synthetic"):
        base = by_row.get(pair.get("baseline"), {}).get(source)
        method = by_row.get(pair.get("method"), {}).get(source)
        if base and method:
            lines.append(_line("Relative improvement", f"this suite, {source} data (rows above)",
                               [_pct(relative_improvement(base[0][c], method[0][c])) for c in columns]))
    return lines, sources


def suite_relative_improvements(table: dict, paper: str, records: list[dict]) -> dict[str, dict[str, Any]]:
    """Per data source: ``{"improvements": {column: fraction | None}, "frequencies": {column: rate} | None}``
    of a ``relative`` table's baseline/method pair (frequencies from the method's records)."""
    pair = table.get("relative") or {}
    out = {}
    base_groups = dict(_records_for(table, paper, pair.get("baseline", ""), records))
    for source, group in _records_for(table, paper, pair.get("method", ""), records):
        if source not in base_groups:
            continue
        base, method = _values(table, base_groups[source]), _values(table, group)
        out[source] = {
            "improvements": {c: relative_improvement(base[c], method[c]) for c in table["columns"]},
            "frequencies": _frequencies(table, group),
        }
    return out


def _train_frequencies(record: dict) -> list[float] | None:
    """The training positive rate of each of the record's labels, read from the training
    split of the data its config names (annotations only, through the index cache); None
    when that data is not at hand."""
    try:
        from datamodules.index import load_index

        data = (record.get("config") or {}).get("data") or {}
        args = data.get("init_args") or {}
        dataset = str(data.get("class_path", "")).split(".")[1]
        index = load_index(dataset, args["root"], args.get("train_split", "train"), args.get("year"), args.get("task"),
                           args.get("cache_dir"))
        by_name = dict(zip(index.label_names, index.label_frequencies()))
        return [float(by_name[n]) for n in record.get("label_names") or []]
    except Exception:  # noqa: BLE001 - no data here: the caller falls back to the paper's grouping
        return None


def _frequencies(table: dict, group: list[dict]) -> dict[str, float] | None:
    """Training positive rate per column: a record's ``label_frequencies`` (aligned with its
    ``label_names``), else computed from the training split its config names; None when
    neither is available."""
    for record in group:
        freqs, names = record.get("label_frequencies"), record.get("label_names") or []
        if not (isinstance(freqs, list) and len(freqs) == len(names)):
            freqs = _train_frequencies(record)
        if isinstance(freqs, list) and len(freqs) == len(names):
            out = {}
            for column in table["columns"]:
                label = _label(table, column)
                if label in names and freqs[names.index(label)] is not None:
                    out[column] = float(freqs[names.index(label)])
            return out
    return None


def _render_groups(table_id: str, table: dict, paper: str, records: list[dict], tables: dict) -> tuple[list[str], set[str]]:
    source_table = tables[table["from_table"]]
    columns = list(source_table["columns"])
    threshold = float(table.get("majority_threshold", 0.05))
    paper_majority = set(table.get("paper_majority", []))
    lines = [f"### {table.get('title', table_id)}", "",
             "| | source | majority labels | minority labels | majority: labels | seeds |",
             "|---|---|---:|---:|---|---|"]
    reported = {r["group"]: r for r in table.get("reported", [])}
    if reported:
        major, minor = reported.get("majority"), reported.get("minority")
        cited = "; ".join(dict.fromkeys(r["source"] for r in (major, minor) if r))
        printed = ["—" if not r else f"{r['value']:.2f}%" for r in (major, minor)]
        lines.append(f"| Avg. relative improvement | {cited} | {printed[0]} | {printed[1]} |"
                     f" {', '.join(c for c in columns if c in paper_majority) or '—'} (paper) | — |")
    rel = source_table.get("reported_relative")
    if rel:
        printed = {c: (None if rel["values"].get(c) is None else rel["values"][c] / 100) for c in columns}
        a, b = group_means(printed, paper_majority)
        lines.append(f"| Avg. relative improvement, recomputed | mean of the paper's Table I relative improvements |"
                     f" {_pct(a).lstrip('+')} | {_pct(b).lstrip('+')} | {', '.join(c for c in columns if c in paper_majority)} (paper) | — |")
    sources = set()
    method_row = (source_table.get("relative") or {}).get("method", "")
    for source, entry in suite_relative_improvements(source_table, paper, records).items():
        sources.add(source)
        freqs = entry["frequencies"]
        if freqs:
            majority = {c for c, f in freqs.items() if f > threshold}
            how = f"training positive rate > {100 * threshold:g}%"
        else:
            majority = paper_majority
            how = "the paper's majority labels (no training label frequencies at hand)"
        a, b = group_means(entry["improvements"], majority)
        group = dict(_records_for(source_table, paper, method_row, records)).get(source, [])
        lines.append(f"| Avg. relative improvement | this suite, {source} data (Table I rows) | {_pct(a)} | {_pct(b)} |"
                     f" {', '.join(c for c in columns if c in majority) or 'none'} ({how}) | {_seeds(group)} |")
    if not sources:
        lines.append("| Avg. relative improvement | this suite: no run records yet | — | — | — | — |")
    return lines, sources


def _render_differences(table_id: str, table: dict, paper: str, records: list[dict]) -> tuple[list[str], set[str]]:
    columns = list(table["columns"])
    lines = _header(table, table_id, extra="mean relative change vs row 1")
    reference: dict[str, float | None] = {}
    for i, row in enumerate(table.get("reported", [])):
        values = row["values"]
        if i == 0:
            reference = values
            lines.append(_line(row["row"], row["source"], [_fmt(values.get(c)) for c in columns] + ["—"]))
            continue
        absolute = {c: None if values.get(c) is None or reference.get(c) is None else reference[c] + values[c] for c in columns}
        cells = ["—" if values.get(c) is None else f"{_printed(values[c])} ({_fmt(absolute[c])})" for c in columns]
        lines.append(_line(row["row"], row["source"], cells + [_pct(_mean_relative(absolute, reference, columns))]))
    sources: set[str] = set()
    refs: dict[str, dict[str, float | None]] = {}
    for i, spec in enumerate(table.get("ours", [])):
        name = spec.get("label", spec["row"])
        groups = _records_for(table, paper, spec["row"], records)
        if not groups:
            lines.append(_no_record(name, columns + ["—"]))
        for source, group in groups:
            sources.add(source)
            values = _values(table, group)
            if i == 0:
                refs[source] = values
                cells = [_fmt(values[c]) for c in columns] + ["—"]
            else:
                ref = refs.get(source, {})
                cells = []
                for c in columns:
                    if values[c] is None:
                        cells.append("—")
                    elif ref.get(c) is None:
                        cells.append(_fmt(values[c]))
                    else:
                        cells.append(f"{_signed(values[c] - ref[c])} ({_fmt(values[c])})")
                cells.append(_pct(_mean_relative(values, ref, columns)) if ref else "—")
            lines.append(_line(name, _suite_source(source, group), cells, _seeds(group)))
    return lines, sources


def render_table(table_id: str, table: dict, paper: str, records: list[dict], tables: dict | None = None) -> tuple[str, set[str]]:
    """One of the paper's tables as Markdown (module docstring); returns the text and the
    data sources of the suite rows it filled. ``tables`` (all of the paper's tables) is
    needed by the ``groups`` layout; by default it is read from ``benchmarks/<paper>/paper.yaml``."""
    layout = table.get("layout", "relative")
    if layout == "relative":
        lines, sources = _render_relative(table_id, table, paper, records)
    elif layout == "differences":
        lines, sources = _render_differences(table_id, table, paper, records)
    elif layout == "groups":
        if tables is None:
            from fashionbench.tables import load_paper

            tables = load_paper(paper)["tables"]
        lines, sources = _render_groups(table_id, table, paper, records, tables)
    else:
        raise ValueError(f"unknown layout {layout!r} of table {table_id} (relative, groups, differences)")
    return "\n".join(lines) + "\n", sources
