"""The front page of the leaderboard (models x datasets): cells worked out by hand from the
records below, the paper's numbers read through ``leaderboard:`` references, sizes against
timm's own parameter count."""
import statistics
import textwrap

import pytest

from fashionbench.errors import InputError
from fashionbench.leaderboard import (
    Column, SizeCache, build_front_page, front_page_frame, front_page_markdown, load_front_specs, split_model,
    write_leaderboard,
)
from fashionbench.records import load_records, write_record
from helpers import make_record

PAPER_YAML = """
paper: p
title: "A paper"
tables:
  t1:
    title: "VOC"
    dataset: voc2007
    percent: true
    columns: [mAP]
    reported:
      - {row: "M (paper)", source: "P, Table 1, row M", values: {mAP: 80.5}}
      - {row: B, source: "P, Table 1, row B", values: {mAP: {value: 70.0, derived: "from the text"}}}
      - {row: L, source: "P, Table 1, row L", values: {mAP: lost}}
    ours: [{row: M}]
  t2:
    title: "per label"
    dataset: deepfashion
    task: patterns
    percent: false
    columns: [a, b, c]
    reported:
      - {row: M, source: "P, Table 2, row M", values: {a: 0.5, b: 0.6, c: 0.7}}
leaderboard:
  - model: M
    rows: [M]
    note: "the paper's model"
    reported:
      - {table: t1, row: "M (paper)", column: mAP}
      - {table: t2, row: M, reduce: mean, metric: PR-AUC}
      - {dataset: deepfashion, task: category, metric: top3, value: 91.24, source: "P, Table 3, row M"}
  - model: B
    reported: [{table: t1, row: B, column: mAP}]
  - model: L
    reported: [{table: t1, row: L, column: mAP}]
"""


def _benchmarks(tmp_path, text=PAPER_YAML):
    (tmp_path / "bench" / "p").mkdir(parents=True)
    (tmp_path / "bench" / "p" / "paper.yaml").write_text(textwrap.dedent(text))
    return tmp_path / "bench"


def _records(runs):
    maps = [0.6, 0.7, 0.65]
    for seed, value in enumerate(maps):
        write_record(make_record(seed, value, paper="p", row="M", model="M [resnet10t]", config_sha="a"), runs)
    write_record(make_record(0, 0.5, paper="p", row="M", model="M [resnet10t]", config_sha="b"), runs)  # another recipe
    write_record(make_record(0, 0.99, paper="p", row="M", model="M [resnet10t]", source="synthetic"), runs)
    write_record(make_record(0, 0.95, paper="p", row="an ablation", model="M w/o x [resnet10t]"), runs)  # off the page
    write_record(make_record(4, 0.3, paper="baseline", row="R", model="Baseline [resnet10t]", source="synthetic"), runs)
    category = make_record(0, 0.0, paper="p", row="M", model="M [resnet10t]", dataset="deepfashion", task="category",
                           config_sha="c")
    category["metrics"] = {"top1": 0.4, "top3": 0.8, "top5": 0.9}
    write_record(category, runs)
    return maps


def test_front_page_cells_from_records_and_paper_references(tmp_path):
    bench = _benchmarks(tmp_path)
    maps = _records(tmp_path / "runs")
    front = build_front_page(load_records(tmp_path / "runs"), bench)

    voc = Column("voc2007", "multilabel", "mAP")
    m = front.cells[("M", voc)]
    # real before synthetic (0.99 is synthetic); recipe "a" (median 0.65) beats "b" (0.5)
    assert m.source == "real" and m.config_sha == "a" and m.recipes == 2 and m.runs == 3
    assert (m.best, m.min, m.max) == (max(maps), min(maps), max(maps))
    assert m.median == pytest.approx(statistics.median(maps))
    assert m.seeds == [0, 1, 2] and m.backbones == ["resnet10t"]
    assert [(v.value, v.text) for v in m.paper] == [(pytest.approx(0.805), "80.5")]
    assert "P, Table 1, row M" in m.paper[0].citation

    b = front.cells[("B", voc)]  # a paper number, no run
    assert b.best is None and b.paper[0].text == "70.0†" and "derived: from the text" in b.paper[0].citation
    assert front.cells[("L", voc)].paper[0].value is None and front.cells[("L", voc)].paper[0].text == "(lost)"

    base = front.cells[("Baseline", voc)]  # no leaderboard section for 'baseline': model name without the backbone
    assert base.source == "synthetic" and base.best == 0.3 and base.paper == []
    assert front.n_off_page == 1

    # the paper names top3 for deepfashion/category: that column only, no top1 column
    assert Column("deepfashion", "category", "top1") not in front.columns
    category = front.cells[("M", Column("deepfashion", "category", "top3"))]
    assert category.best == 0.8 and category.paper[0].text == "91.24"
    # reduce: mean of (0.5, 0.6, 0.7) = 0.6, derived
    mean = front.cells[("M", Column("deepfashion", "patterns", "PR-AUC"))]
    assert mean.paper[0].value == pytest.approx(0.6) and mean.paper[0].text == "60.0†"

    md = front_page_markdown(front)
    assert "| M [1] |" in md and "1. M: the paper's model" in md
    assert "**70.0** (60.0 ← 65.0 → 70.0)<br>real · resnet10t · 3 runs, seeds 0 1 2 · best of 2 recipes<br>paper: 80.5 [" in md
    assert "1 of 8 run record(s)" in md
    frame = front_page_frame(front)
    row = frame[(frame.model == "M") & (frame.dataset == "voc2007")].iloc[0]
    assert row["best"] == 0.7 and row["paper_text"] == "80.5" and row["data_source"] == "real"


def test_model_size_is_the_built_model_and_is_cached(tmp_path, monkeypatch):
    timm = pytest.importorskip("timm")
    record = make_record(0, 0.5, model="Baseline [resnet10t]")
    record["config"] = {"model": {"class_path": "fashionbench.models.Baseline",
                                  "init_args": {"backbone": "resnet10t", "pretrained": False}},
                        "data": {"init_args": {"image_size": 32}}}
    write_record(record, tmp_path / "runs")
    cache_file = tmp_path / "cache" / "model_size.json"
    front = build_front_page(load_records(tmp_path / "runs"), tmp_path / "no-benchmarks", size_cache=cache_file)
    expected = sum(p.numel() for p in timm.create_model("resnet10t", num_classes=2).parameters()) / 1e6
    (params, gflops, side), = front.sizes["Baseline"]
    assert params == pytest.approx(expected) and gflops > 0 and side == 32
    assert cache_file.is_file()

    import fashionbench.model_size as model_size

    def refuse(_record):
        raise AssertionError("the cached size should have been used")

    monkeypatch.setattr(model_size, "record_size", refuse)
    again = build_front_page(load_records(tmp_path / "runs"), tmp_path / "no-benchmarks", size_cache=SizeCache(cache_file))
    assert again.sizes == front.sizes
    assert f"| Baseline | {expected:.1f} | {gflops:.1f} (32²) |" in front_page_markdown(front)


def test_bad_leaderboard_reference_names_the_paper_yaml(tmp_path):
    bench = _benchmarks(tmp_path, PAPER_YAML.replace('row: "M (paper)", column: mAP', 'row: "nope", column: mAP'))
    with pytest.raises(InputError, match=r"p/paper\.yaml: leaderboard\[0\] \(M\), reported\[0\]: the table has no reported row 'nope'"):
        load_front_specs(bench)


def test_write_leaderboard_keeps_the_per_run_table_and_adds_the_front_page(tmp_path):
    bench = _benchmarks(tmp_path)
    _records(tmp_path / "runs")
    csv_path, md_path = write_leaderboard(tmp_path / "runs", tmp_path / "out", benchmarks_dir=bench)
    md = md_path.read_text()
    assert md.startswith("# Leaderboard\n") and md.index("## Models × datasets") < md.index("## Every run group")
    assert "| M [resnet10t] | voc2007 | multilabel | test | real | mAP | 70.0 |" in md  # the per-run table
    assert (tmp_path / "out" / "leaderboard_models.csv").read_text().startswith("model,dataset,task,metric")
    assert csv_path.read_text().splitlines()[0].startswith("model,dataset,task,split,data_source,config_sha")


def test_split_model():
    assert split_model("CMSG w/o SGA [resnet101]") == ("CMSG w/o SGA", "resnet101")
    assert split_model("Baseline+ASL") == ("Baseline+ASL", None)


def _init_params(class_path):
    import importlib
    import inspect

    module, _, name = class_path.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    names = set()
    for klass in inspect.getmro(cls):
        if "__init__" in vars(klass):
            names |= {p.name for p in inspect.signature(klass.__init__).parameters.values()
                      if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name != "self"}
    return cls, names


def test_matrix_configures_each_model_on_the_other_datasets():
    """benchmarks/matrix: every planned run's config names real classes and only arguments they
    take, its records land on a front-page row, and the pairs the matrix promises are there."""
    import yaml

    from fashionbench.reproduce import run_commands

    claims = {e["model"]: set(e["rows"]) for e in load_front_specs("benchmarks") if e["paper"] == "matrix"}
    pairs = set()
    for run in run_commands("matrix", "matrix", {}, None, "results/runs"):
        config = yaml.safe_load(run.config.read_text())
        for section in ("model", "data"):
            cls, accepted = _init_params(config[section]["class_path"])
            unknown = set(config[section].get("init_args") or {}) - accepted
            assert not unknown, f"{run.config}: {section} {cls.__name__} takes no {sorted(unknown)}"
        record = config["record"]
        if record["paper"] == "matrix":
            assert any(record["row"] in rows for rows in claims.values()), run.config
        model = config["model"]["class_path"].split(".")[-1]
        pairs.add((model, run.dataset))
    for dataset in ("voc", "coco", "nus-wide", "open-images", "deepfashion", "imaterialist"):
        assert ("Baseline", dataset) in pairs
    assert {("CMSG", "nus-wide"), ("CMSG", "open-images"), ("SDLZeroShot", "voc"), ("SDLZeroShot", "coco"),
            ("WideDeepRecurrent", "voc"), ("WideDeepRecurrent", "coco")} <= pairs
