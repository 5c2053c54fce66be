"""``fashionbench report``: the suite's figures and its static front page.

Everything is computed from the run records (``results/runs/``), the rendered paper tables
(``results/tables/*.md``, written by ``fashionbench reproduce`` / ``table``), the papers'
``paper.yaml`` (the leaderboard's paper numbers) and the prediction files of
``fashionbench predict`` (``results/predictions/*.npz``). Written atomically:

- ``results/figures/runs/<record>_ap.png``: the per-class AP bars of each run record
  (:func:`per_class_ap_figure`; at most the 30 best and 30 worst labels of a wide label set).
  A record never changes, so a chart already there is kept.
- ``results/figures/pr/<predictions>.png``: precision-recall curves per label from each
  predictions file, drawn by :func:`fashionbench.figures.pr_curves_figure` (at most the 20
  labels with the most known positives of a wide file). A run without a predictions file
  has no PR curves: the page lists those runs (``fashionbench predict --ckpt_path <the
  record's checkpoint>`` writes one).
- ``results/figures/leaderboard.png``: the front page of the leaderboard as a chart
  (:func:`leaderboard_figure`: per column, each model's best run with its min-max whisker,
  and the paper's number as a diamond).
- ``results/figures/tables/<paper>_<target>_<i>.png``: each rendered paper table's "paper vs
  this suite" (:func:`table_chart`), read from the rendered Markdown so that every renderer's
  table is charted as it is shown.
- ``results/index.html``: the leaderboard (``results/leaderboard.md``, rebuilt first), every
  rendered table and all the figures, with relative links (open it from disk or serve
  ``results/``). Markdown is rendered by :func:`markdown_to_html` (headings, pipe tables,
  lists, paragraphs, images, links, code and bold: what the suite's Markdown uses).
"""
from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fashionbench.io import atomic_open, atomic_write_text

MAX_AP_LABELS = 60
MAX_PR_LABELS = 20


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path, dpi: int = 110) -> Path:
    path = Path(path)
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=dpi)
    _plt().close(fig)
    return path


def _slug(text: Any) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_")[:120] or "x"


def record_stem(record: dict) -> str:
    """The file stem of a record's figures: its record file's stem (unique), else its identity."""
    if record.get("_path"):
        return Path(str(record["_path"])).stem
    return _slug("-".join(str(record.get(k)) for k in ("paper", "row", "model", "dataset", "task", "seed")))


def _title(record: dict) -> str:
    task = record.get("task")
    parts = [str(record.get("model")), f"{record.get('dataset')}{'' if task in (None, 'multilabel') else ' ' + str(task)}",
             f"seed {record.get('seed')}", str(record.get("data_source"))]
    return " · ".join(parts)


# --------------------------------------------------------------------- per-class AP
def per_class_ap_figure(record: dict, path: str | os.PathLike, max_labels: int = MAX_AP_LABELS) -> Path | None:
    """Horizontal bars of a record's per-class AP (``metrics.AP``, in %), sorted, with its
    mAP as a dashed line; labels without a known positive (AP null) are counted in the
    title. With more than ``max_labels`` labels, the best and worst ``max_labels // 2``.
    None when the record has no per-class AP."""
    metrics = record.get("metrics") or {}
    ap = metrics.get("AP")
    if not isinstance(ap, list) or not ap:
        return None
    names = list(record.get("label_names") or [])
    names += [f"label {i}" for i in range(len(names), len(ap))]
    known = [(names[i], float(v)) for i, v in enumerate(ap) if isinstance(v, (int, float))]
    missing = len(ap) - len(known)
    known.sort(key=lambda item: item[1])
    shown, cut = known, ""
    if len(known) > max_labels:
        half = max_labels // 2
        shown = known[:half] + known[-half:]
        cut = f"; the {half} worst and {half} best of {len(known)}"
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 1.2 + 0.2 * max(len(shown), 1)))
    ax.barh(range(len(shown)), [100 * v for _, v in shown], color="tab:blue")
    ax.set_yticks(range(len(shown)), [n for n, _ in shown], fontsize=7)
    ax.set_xlim(0, 100)
    ax.set_xlabel("AP (%)")
    if isinstance(metrics.get("mAP"), (int, float)):
        ax.axvline(100 * metrics["mAP"], color="black", linestyle="--", linewidth=1, label=f"mAP {100 * metrics['mAP']:.1f}")
        ax.legend(loc="lower right", fontsize=7)
    note = f"{missing} label(s) without a known positive left out" if missing else ""
    ax.set_title(f"Per-class AP: {_title(record)}\n{note}{cut}".strip(), fontsize=8)
    fig.tight_layout()
    return _save(fig, Path(path))


# ------------------------------------------------------------------------ PR curves
def predictions_name(record: dict) -> str:
    """The file name ``fashionbench predict`` gives a run's predictions (runner.py)."""
    row = record.get("row") or str(((record.get("config") or {}).get("model") or {}).get("class_path", "model")).split(".")[-1]
    return f"{row}-{record.get('dataset')}.npz".replace(" ", "_").replace("/", "_")


def pr_curves_for(npz_path: str | os.PathLike, path: str | os.PathLike, max_labels: int = MAX_PR_LABELS) -> Path:
    """PR curves per label of a predictions file (:func:`fashionbench.figures.pr_curves_figure`),
    limited to the ``max_labels`` labels with the most known positives."""
    from fashionbench.errors import InputError
    from fashionbench.figures import pr_curves_figure, pr_curves_from_npz
    from fashionbench.scoring import load_predictions

    name = Path(npz_path).name
    data = load_predictions(npz_path)
    if data["single_label"]:
        raise InputError("PR curves need multi-label targets [N, C]", path=npz_path)
    scores, targets, mask = (np.asarray(data[k]) if data[k] is not None else None for k in ("scores", "targets", "mask"))
    if scores.shape[1] <= max_labels:
        return pr_curves_from_npz(npz_path, path, title=f"PR curves per label: {name}")
    known = np.ones_like(targets, dtype=bool) if mask is None else mask.astype(bool)
    positives = ((targets != 0) & known).sum(axis=0)
    keep = np.sort(np.argsort(-positives, kind="stable")[:max_labels])
    names = data["label_names"]
    names = [str(names[j]) for j in keep] if names is not None else [f"label {j}" for j in keep]
    return pr_curves_figure(scores[:, keep], targets[:, keep], None if mask is None else mask[:, keep], names, path,
                            title=f"PR curves: {name} ({max_labels} of {scores.shape[1]} labels, most positives)")


# ---------------------------------------------------------------------- leaderboard
def leaderboard_figure(front, path: str | os.PathLike, max_columns: int = 12) -> Path | None:
    """The front page (:func:`fashionbench.leaderboard.build_front_page`) as a chart: one
    panel per column (the ``max_columns`` with the most cells), one bar per model (its best
    run, whisker min to max over the recipe's runs; grey = synthetic data) and the paper's
    number as a black diamond. None when the front page is empty."""
    columns = sorted(front.columns, key=lambda c: -sum(1 for (m, col) in front.cells if col == c))[:max_columns]
    columns = [c for c in front.columns if c in columns]
    if not columns:
        return None
    plt = _plt()
    ncols = min(3, len(columns))
    nrows = (len(columns) + ncols - 1) // ncols
    height = max(2.2, 0.32 * max(sum(1 for (m, col) in front.cells if col == c) for c in columns) + 1.2)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, height * nrows), squeeze=False)
    for ax in axes.flat[len(columns):]:
        ax.set_visible(False)
    for ax, column in zip(axes.flat, columns):
        models = [m for m in front.models if (m, column) in front.cells]
        for y, model in enumerate(models):
            cell = front.cells[(model, column)]
            if cell.best is not None:
                colour = "tab:blue" if cell.source == "real" else "0.65"
                ax.barh(y, 100 * cell.best, color=colour, height=0.6)
                if cell.runs > 1:
                    ax.plot([100 * cell.min, 100 * cell.max], [y, y], color="black", linewidth=1)
            for value in cell.paper:
                if value.value is not None:
                    ax.plot(100 * value.value, y, marker="D", color="black", markersize=5, linestyle="none")
        ax.set_yticks(range(len(models)), models, fontsize=7)
        ax.set_xlim(0, 100)
        ax.set_title(column.label, fontsize=9)
        ax.set_xlabel("%", fontsize=8)
        ax.invert_yaxis()
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    fig.legend(handles=[Patch(color="tab:blue", label="this suite, real data (best run; whisker: min-max)"),
                        Patch(color="0.65", label="this suite, synthetic data (smoke run)"),
                        Line2D([], [], marker="D", color="black", linestyle="none", label="the paper's number")],
               loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return _save(fig, Path(path))


# --------------------------------------------------------------- Markdown tables
@dataclass
class MdTable:
    """One pipe table of a Markdown file, with the ``###`` heading above it."""

    title: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)


def split_row(line: str) -> list[str]:
    """The cells of a pipe-table line (``\\|`` is a literal bar)."""
    body = line.strip()
    if body.startswith("|"):
        body = body[1:]
    if body.endswith("|") and not body.endswith("\\|"):
        body = body[:-1]
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", body)]


def markdown_tables(text: str) -> list[MdTable]:
    """Every pipe table of ``text`` with the nearest heading above it."""
    tables: list[MdTable] = []
    title, lines, i = "", text.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            title = line.lstrip("#").strip()
        if line.startswith("|") and i + 1 < len(lines) and re.match(r"^\|\s*:?-{3,}", lines[i + 1]):
            table = MdTable(title, split_row(line))
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                table.rows.append(split_row(lines[i]))
                i += 1
            tables.append(table)
            continue
        i += 1
    return tables


_NUMBER = re.compile(r"^[+\-−]?\d+(?:\.\d+)?")
_NOT_VALUES = {"method", "source", "seeds", "params (m)", "gflops (input)", "", "majority: labels"}


def cell_number(text: str) -> float | None:
    """The number a rendered cell shows: its leading number (``95.4†``, ``42.9 (40.1 ← →
    43.0)``), or the bracketed absolute value of a signed difference (``-0.387 (0.483)``);
    None for ``—``, ``(lost)``, percentages (relative changes) and text."""
    text = text.replace("**", "").strip()
    if not text or text.startswith(("—", "(lost)")) or "%" in text.split(" ")[0]:
        return None
    match = _NUMBER.match(text)
    if match is None:
        return None
    signed = match.group(0)[0] in "+-−"
    bracket = re.match(r"^\s*\(([+\-]?\d+(?:\.\d+)?)\)", text[match.end():])
    if signed and bracket:
        return float(bracket.group(1))
    return float(match.group(0).replace("−", "-"))


def _series(table: MdTable) -> tuple[list[str], list[tuple[str, str, list[float | None]]]]:
    """Value columns and ``(row name, kind, values)`` rows: kind ``paper``, ``real`` or ``synthetic``."""
    header = [h.strip() for h in table.header]
    source_at = next((i for i, h in enumerate(header) if h.lower() == "source"), 1)
    columns = [i for i, h in enumerate(header) if h.lower() not in _NOT_VALUES and i > source_at]
    rows = []
    for cells in table.rows:
        if len(cells) != len(header):
            continue
        source = cells[source_at].lower()
        if "no run record" in source:
            continue
        kind = ("synthetic" if "synthetic" in source else "real") if source.startswith("this suite") else "paper"
        values = [cell_number(cells[i]) for i in columns]
        if any(v is not None for v in values):
            name = re.sub(r"\s*\[\d+\]$", "", cells[0]) or "(row)"
            rows.append((name, kind, values))
    return [header[i] for i in columns], rows


_COLOURS = {"paper": "black", "real": "tab:blue", "synthetic": "0.65"}


def table_chart(table: MdTable, path: str | os.PathLike, max_rows: int = 10) -> Path | None:
    """A rendered paper table as a "paper vs this suite" chart: the ``mAP`` column when the
    table has one, else each value column (a panel each, up to 4; grouped bars over the
    columns beyond that). Bars: black = the paper's rows, blue = this suite on real data,
    grey = this suite on synthetic data. None when no row has a number."""
    columns, rows = _series(table)
    if not rows or not columns:
        return None
    if "mAP" in columns:
        keep = [columns.index("mAP")]
    else:
        keep = list(range(len(columns)))
    plt = _plt()
    label = f"{table.title}"[:110]
    if len(keep) <= 4:
        fig, axes = plt.subplots(1, len(keep), figsize=(4.6 * len(keep), 0.9 + 0.32 * len(rows)), squeeze=False)
        for ax, j in zip(axes.flat, keep):
            shown = [(n, k, v[j]) for n, k, v in rows if v[j] is not None]
            ax.barh(range(len(shown)), [v for _, _, v in shown], color=[_COLOURS[k] for _, k, _ in shown], height=0.6)
            ax.set_yticks(range(len(shown)), [f"{n} ({'paper' if k == 'paper' else 'ours'})" for n, k, _ in shown], fontsize=7)
            ax.invert_yaxis()
            ax.set_title(columns[j], fontsize=8)
        fig.suptitle(label, fontsize=9)
    else:
        rows = rows[:max_rows]
        fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(keep) * max(1, len(rows)) / 2), 3.8))
        width = 0.8 / len(rows)
        cmap = plt.get_cmap("tab10")
        for r, (name, kind, values) in enumerate(rows):
            xs = [j + r * width for j in keep if values[j] is not None]
            ys = [values[j] for j in keep if values[j] is not None]
            ax.bar(xs, ys, width=width, color=cmap(r % 10), hatch=None if kind == "paper" else "//",
                   edgecolor="white", label=f"{name} ({'paper' if kind == 'paper' else 'ours, ' + kind})")
        ax.set_xticks([j + 0.4 - width / 2 for j in keep], [columns[j] for j in keep], rotation=45, ha="right", fontsize=7)
        ax.legend(fontsize=6, ncol=2)
        ax.set_title(label, fontsize=9)
    fig.tight_layout()
    return _save(fig, Path(path))


# ------------------------------------------------------------------------- HTML
def _inline(text: str, src_dir: Path | None, out_dir: Path | None) -> str:
    """Inline Markdown of one line as HTML: escaped, then ``<br>``, images, links, code, bold."""
    out = html.escape(text, quote=False).replace("&lt;br&gt;", "<br>")

    def image(match: re.Match) -> str:
        return f'<img src="{html.escape(_relink(match.group(2), src_dir, out_dir))}" alt="{match.group(1)}" loading="lazy">'

    def link(match: re.Match) -> str:
        return f'<a href="{html.escape(_relink(match.group(2), src_dir, out_dir))}">{match.group(1)}</a>'

    out = re.sub(r"!\[([^\]]*)\]\(([^)\s]+)\)", image, out)
    out = re.sub(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)", link, out)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def _relink(target: str, src_dir: Path | None, out_dir: Path | None) -> str:
    """A relative link of a Markdown file in ``src_dir``, made relative to ``out_dir``."""
    if src_dir is None or out_dir is None or re.match(r"^[a-z]+:", target) or target.startswith(("#", "/")):
        return target
    return Path(os.path.relpath(Path(src_dir) / target, out_dir)).as_posix()


def markdown_to_html(text: str, src_dir: str | os.PathLike | None = None, out_dir: str | os.PathLike | None = None,
                     shift: int = 1) -> str:
    """The suite's Markdown as HTML: ``#`` headings (moved down ``shift`` levels), pipe
    tables (``---:`` right-aligned), ``-`` and ``1.`` lists, paragraphs, and inline images,
    links, code and bold. Relative links are rebased from ``src_dir`` to ``out_dir``."""
    src = Path(src_dir) if src_dir is not None else None
    out = Path(out_dir) if out_dir is not None else None
    lines, parts, i = text.splitlines(), [], 0
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            parts.append("<p>" + " ".join(_inline(p, src, out) for p in paragraph) + "</p>")
            paragraph.clear()

    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        heading = re.match(r"^(#{1,6})\s+(.*)$", stripped)
        if not stripped:
            flush()
        elif heading:
            flush()
            level = min(6, len(heading.group(1)) + shift)
            parts.append(f"<h{level}>{_inline(heading.group(2), src, out)}</h{level}>")
        elif stripped.startswith("|") and i + 1 < len(lines) and re.match(r"^\|\s*:?-{3,}", lines[i + 1].strip()):
            flush()
            header = split_row(stripped)
            align = ["right" if c.strip().endswith(":") else "left" for c in split_row(lines[i + 1].strip())]
            rows = []
            i += 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append(split_row(lines[i].strip()))
                i += 1
            cell = lambda tag, j, value: f'<{tag} style="text-align:{align[j] if j < len(align) else "left"}">{_inline(value, src, out)}</{tag}>'  # noqa: E731
            body = ["<tr>" + "".join(cell("td", j, v) for j, v in enumerate(row)) + "</tr>" for row in rows]
            parts.append('<div class="table"><table><thead><tr>' + "".join(cell("th", j, h) for j, h in enumerate(header))
                         + "</tr></thead><tbody>" + "".join(body) + "</tbody></table></div>")
            continue
        elif re.match(r"^(- |\d+\. )", stripped):
            flush()
            ordered = not stripped.startswith("- ")
            items = []
            while i < len(lines) and re.match(r"^(- |\d+\. )", lines[i].strip()) and (not lines[i].strip().startswith("- ")) == ordered:
                items.append(re.sub(r"^(- |\d+\. )", "", lines[i].strip()))
                i += 1
            tag = "ol" if ordered else "ul"
            parts.append(f"<{tag}>" + "".join(f"<li>{_inline(t, src, out)}</li>" for t in items) + f"</{tag}>")
            continue
        else:
            paragraph.append(stripped)
        i += 1
    flush()
    return "\n".join(parts)


_CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 0 auto; max-width: 1500px; padding: 0 1.2em 3em; color: #1a1a1a; }
header { border-bottom: 2px solid #1f77b4; margin-bottom: 1em; }
nav a { margin-right: 1.2em; }
.table { overflow-x: auto; margin: 0.6em 0 1em; }
table { border-collapse: collapse; font-size: 12px; }
th, td { border: 1px solid #ccc; padding: 3px 6px; vertical-align: top; }
th { background: #eef3f8; position: sticky; top: 0; }
tr:nth-child(even) td { background: #fafafa; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.4em 0; }
.figures { display: flex; flex-wrap: wrap; gap: 12px; }
.figures figure { margin: 0; max-width: 480px; }
figcaption { font-size: 11px; color: #555; }
details { margin: 0.5em 0; }
.note { color: #555; font-size: 13px; }
"""


def _figure_html(path: Path, out_dir: Path, caption: str) -> str:
    src = Path(os.path.relpath(path, out_dir)).as_posix()
    return (f'<figure><a href="{html.escape(src)}"><img src="{html.escape(src)}" alt="{html.escape(caption)}" loading="lazy"></a>'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


@dataclass
class Report:
    """What :func:`write_report` wrote."""

    index: Path
    figures: list[Path] = field(default_factory=list)
    runs_without_predictions: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def write_report(runs_dir: str | os.PathLike = "results/runs", results_dir: str | os.PathLike = "results",
                 benchmarks_dir: str | os.PathLike = "benchmarks", predictions_dir: str | os.PathLike | None = None) -> Report:
    """Rebuild the leaderboard, draw every figure and write ``<results>/index.html`` (module docstring)."""
    from fashionbench.leaderboard import build_front_page, write_leaderboard
    from fashionbench.records import load_records

    results = Path(results_dir)
    figures = results / "figures"
    predictions = Path(predictions_dir) if predictions_dir is not None else results / "predictions"
    records = load_records(runs_dir) if Path(runs_dir).is_dir() else []
    _, md_path = write_leaderboard(runs_dir, results, benchmarks_dir=benchmarks_dir)
    front = build_front_page(records, benchmarks_dir, size_cache=results / "cache" / "model_size.json")
    report = Report(index=results / "index.html")

    chart = leaderboard_figure(front, figures / "leaderboard.png")
    run_figures: list[tuple[dict, Path]] = []
    for record in records:
        path = figures / "runs" / f"{record_stem(record)}_ap.png"
        try:
            made = path if path.is_file() else per_class_ap_figure(record, path)
        except Exception as err:  # noqa: BLE001 - one bad record must not cost the page
            report.failed.append(f"{path.name}: {type(err).__name__}: {err}")
            continue
        if made is not None:
            run_figures.append((record, made))

    pr_figures: list[tuple[str, Path]] = []
    npz_files = sorted(predictions.glob("*.npz")) if predictions.is_dir() else []
    for npz in npz_files:
        try:
            pr_figures.append((npz.name, pr_curves_for(npz, figures / "pr" / f"{npz.stem}.png")))
        except Exception as err:  # noqa: BLE001 - a bad or single-label file is reported, not fatal
            report.failed.append(f"{npz.name}: {type(err).__name__}: {err}")
    have = {npz.name for npz in npz_files}
    report.runs_without_predictions = sorted({f"{record_stem(r)} ({predictions_name(r)})" for r in records
                                              if predictions_name(r) not in have})

    table_sections = []
    tables_dir = results / "tables"
    for md_file in sorted(tables_dir.glob("*.md")) if tables_dir.is_dir() else []:
        text = md_file.read_text(encoding="utf-8")
        charts = []
        for i, table in enumerate(markdown_tables(text), 1):
            try:
                made = table_chart(table, figures / "tables" / f"{md_file.stem}_{i}.png")
            except Exception as err:  # noqa: BLE001
                report.failed.append(f"{md_file.name} table {i}: {type(err).__name__}: {err}")
                continue
            if made is not None:
                charts.append((table.title, made))
        table_sections.append((md_file, text, charts))

    body = [f"<header><h1>fashionbench</h1><nav><a href='#leaderboard'>Leaderboard</a><a href='#tables'>Paper tables</a>"
            f"<a href='#pr'>PR curves</a><a href='#runs'>Per-class AP</a></nav>"
            f"<p class='note'>{len(records)} run record(s) in <code>{html.escape(str(runs_dir))}</code>; "
            f"{len(table_sections)} rendered table file(s); generated by <code>fashionbench report</code>.</p></header>",
            "<section id='leaderboard'>"]
    front_md, marker, runs_md = md_path.read_text(encoding="utf-8").partition("## Every run group")
    body.append(markdown_to_html(front_md, md_path.parent, results))
    if chart is not None:
        body.append(_figure_html(chart, results, "The leaderboard's front page as a chart"))
    if marker:
        body.append("<details><summary>Every run group (the per-run leaderboard)</summary>"
                    + markdown_to_html(marker + runs_md, md_path.parent, results) + "</details>")
    body.append("</section><section id='tables'><h2>Paper tables</h2>")
    if not table_sections:
        body.append("<p class='note'>No rendered table yet: run <code>make reproduce-table1</code> or <code>fashionbench table PAPER</code>.</p>")
    for md_file, text, charts in table_sections:
        body.append(f"<article id='{html.escape(md_file.stem)}'>")
        body.append(markdown_to_html(text, md_file.parent, results, shift=1))
        if charts:
            body.append("<h4>Paper vs this suite</h4><div class='figures'>"
                        + "".join(_figure_html(p, results, t) for t, p in charts) + "</div>")
        body.append("</article>")
    body.append("</section><section id='pr'><h2>Precision-recall curves per label</h2><div class='figures'>")
    body += [_figure_html(p, results, f"PR curves of {name}") for name, p in pr_figures]
    body.append("</div>")
    if report.runs_without_predictions:
        body.append(f"<details><summary>{len(report.runs_without_predictions)} run(s) without a predictions file: no PR curves"
                    " (<code>fashionbench predict --config CONFIG --ckpt_path CHECKPOINT</code> writes one to"
                    f" <code>{html.escape(str(predictions))}</code>)</summary><ul>"
                    + "".join(f"<li>{html.escape(name)}</li>" for name in report.runs_without_predictions) + "</ul></details>")
    body.append("</section><section id='runs'><h2>Per-class AP of each run</h2>")
    by_paper: dict[str, list[tuple[dict, Path]]] = {}
    for record, path in run_figures:
        by_paper.setdefault(str(record.get("paper")), []).append((record, path))
    for paper, items in sorted(by_paper.items()):
        body.append(f"<details><summary>{html.escape(paper)}: {len(items)} run(s)</summary><div class='figures'>"
                    + "".join(_figure_html(p, results, _title(r)) for r, p in items) + "</div></details>")
    if report.failed:
        body.append("<h3>Not drawn</h3><ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in report.failed) + "</ul>")
    body.append("</section>")
    page = ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>fashionbench</title>"
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
    atomic_write_text(report.index, page)
    report.figures = ([chart] if chart is not None else []) + [p for _, p in run_figures] + [p for _, p in pr_figures] \
        + [p for _, _, charts in table_sections for _, p in charts]
    return report
