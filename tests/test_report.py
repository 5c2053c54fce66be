"""``fashionbench report``: figures, the Markdown renderer (hand-written cases), and the
static page results/index.html opened in headless Chromium (Debian ``chromium``, which
``make test`` installs when it is absent)."""
import html.parser
import os
import shutil
import subprocess
import textwrap

import numpy as np
import pytest
from PIL import Image

from fashionbench.records import write_record
from fashionbench.report import cell_number, markdown_tables, markdown_to_html, per_class_ap_figure, write_report
from fashionbench.tables import render_target
from helpers import make_record

PAPER = """
paper: p
title: "A paper"
tables:
  table1:
    title: "VOC 2007 test"
    dataset: voc2007
    percent: true
    columns: [AP:cat, AP:dog, mAP]
    reported:
      - {row: ResNet-101, source: "P, Table 1, row ResNet-101", values: {AP:cat: 90.0, AP:dog: lost, mAP: 89.9}}
    ours: [{row: ResNet-101}]
leaderboard:
  - model: Baseline
    rows: [ResNet-101]
    reported: [{table: table1, row: ResNet-101, column: mAP}]
"""


def _non_blank(path, min_colours=10):
    with Image.open(path) as image:
        grey = image.convert("L")
        values = np.asarray(grey)
    return len(np.unique(values)) >= min_colours and (values < 250).mean() > 0.005


def test_cell_number_reads_what_the_tables_print():
    assert cell_number("95.4† [3]") == 95.4
    assert cell_number("**45.3**") == 45.3
    assert cell_number("42.9 (40.1 ← → 43.0)") == 42.9
    assert cell_number("42.9 (+1.2)") == 42.9  # a difference to another row, after the value
    assert cell_number("-0.387 (0.483)") == 0.483  # a signed difference first: the absolute value in brackets
    assert cell_number("(lost)") is None and cell_number("—") is None and cell_number("7.54%") is None


def test_markdown_to_html_hand_case(tmp_path):
    text = textwrap.dedent("""\
        # Title
        Some **bold** and `code` <script>x</script>.

        | model | mAP |
        |---|---:|
        | a \\| b | **1.0**<br>paper: 2 |

        - one
        - two

        1. first

        ![fig](../figures/x.png)
        """)
    out = markdown_to_html(text, src_dir=tmp_path / "results" / "tables", out_dir=tmp_path / "results")
    assert "<h2>Title</h2>" in out
    assert "<strong>bold</strong>" in out and "<code>code</code>" in out and "&lt;script&gt;" in out and "<script>" not in out
    assert '<th style="text-align:left">model</th><th style="text-align:right">mAP</th>' in out
    assert '<td style="text-align:left">a | b</td><td style="text-align:right"><strong>1.0</strong><br>paper: 2</td>' in out
    assert "<ul><li>one</li><li>two</li></ul>" in out and "<ol><li>first</li></ol>" in out
    assert '<img src="figures/x.png" alt="fig" loading="lazy">' in out  # rebased from results/tables to results
    (table,) = markdown_tables(text)
    assert table.header == ["model", "mAP"] and table.rows == [["a | b", "**1.0**<br>paper: 2"]]


def test_per_class_ap_figure(tmp_path):
    record = make_record(0, 0.5)
    record["metrics"]["AP"] = [0.9, None]
    path = per_class_ap_figure(record, tmp_path / "ap.png")
    assert path.is_file() and _non_blank(path)
    assert per_class_ap_figure({**record, "metrics": {"mAP": 0.5}}, tmp_path / "none.png") is None


class _Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.tags = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs)["src"])


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    base = tmp_path_factory.mktemp("report")
    bench = base / "benchmarks"
    (bench / "p").mkdir(parents=True)
    (bench / "p" / "paper.yaml").write_text(textwrap.dedent(PAPER))
    runs, results = base / "results" / "runs", base / "results"
    for seed, value in enumerate([0.6, 0.7]):
        write_record(make_record(seed, value, paper="p"), runs)
    write_record(make_record(0, 0.3, paper="p", row="Other", dataset="coco2014"), runs)  # no predictions file
    render_target("p", "table1", runs_dir=runs, out_dir=results / "tables", benchmarks_dir=bench)
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 2, size=(40, 2))
    scores = np.clip(targets * 0.6 + rng.random((40, 2)) * 0.5, 0, 1)
    (results / "predictions").mkdir()
    np.savez(results / "predictions" / "ResNet-101-voc2007.npz", scores=scores, targets=targets,
             label_names=np.array(["cat", "dog"]))
    return write_report(runs, results, bench), results


def test_report_writes_figures_tables_and_page(report):
    rep, results = report
    page = rep.index.read_text(encoding="utf-8")
    parser = _Page()
    parser.feed(page)
    assert parser.tags.count("table") >= 3  # front page, per-run leaderboard, the paper table
    assert "Models × datasets" in page and "VOC 2007 test" in page and "P, Table 1, row ResNet-101" in page
    assert "paper: 89.9" in page  # the paper's number in the leaderboard cell
    assert parser.images and all((results / src).is_file() for src in parser.images)
    names = {os.path.basename(src) for src in parser.images}
    assert "leaderboard.png" in names and "ResNet-101-voc2007.png" in names  # leaderboard chart, PR curves
    assert "p_table1_1.png" in names  # the table's paper vs ours chart
    assert sum(n.endswith("_ap.png") for n in names) == 3  # per-class AP of each run
    assert any("Other-coco2014.npz" in name for name in rep.runs_without_predictions)
    assert not rep.failed
    assert all(_non_blank(results / src) for src in parser.images)
    assert not list(results.rglob(".*.tmp"))  # atomic writes leave no temp file


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed and could not be: `make test` runs "
                    "`apt-get install -y chromium` when chromium is not on PATH and apt-get exists")
def test_index_html_in_headless_chromium(report, tmp_path):
    rep, results = report
    shot = tmp_path / "index.png"
    env = {**os.environ, "HOME": str(tmp_path)}  # chromium's profile and crash dumps stay in the test's folder
    subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,1600",
                    rep.index.resolve().as_uri()], env=env, capture_output=True, timeout=180, check=False)
    assert shot.is_file(), "chromium wrote no screenshot"
    with Image.open(shot) as image:
        assert image.size == (1280, 1600)
    assert _non_blank(shot, min_colours=30)
