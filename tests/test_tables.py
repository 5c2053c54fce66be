"""Paper tables: the paper's typed numbers beside the suite's numbers from records."""
import yaml

from fashionbench.records import write_record
from fashionbench.tables import render_target
from helpers import make_record


def test_table_quotes_paper_and_fills_ours_from_records(tmp_path):
    bench = tmp_path / "benchmarks" / "demo"
    bench.mkdir(parents=True)
    (bench / "paper.yaml").write_text(yaml.safe_dump({
        "paper": "cmsg", "title": "Demo paper",
        "tables": {"table1": {
            "title": "VOC", "dataset": "voc2007", "percent": True, "columns": ["AP:cat", "AP:dog", "mAP"],
            "reported": [{"row": "Paper method", "source": "Demo, Table 2, row X", "values": {"mAP": 95.4}}],
            "ours": [{"row": "ResNet-101"}, {"row": "Never run"}],
        }},
        "reproduce": {"table1": {"tables": ["table1"], "runs": []}},
    }))
    runs = tmp_path / "runs"
    for seed, value in enumerate([0.5, 0.7, 0.6]):
        write_record(make_record(seed, value, source="synthetic"), runs)
    path = render_target("demo", "table1", runs_dir=runs, out_dir=tmp_path / "tables", benchmarks_dir=tmp_path / "benchmarks")
    text = path.read_text()
    assert path.name == "demo_table1.md"
    assert "| Paper method | Demo, Table 2, row X | — | — | 95.4 | — |" in text
    # median over seeds of AP:cat (= mAP in make_record) is 60.0; dog has no AP; mAP with spread
    assert "| 60.0 | — | 60.0 (50.0 ← → 70.0) | 0 1 2 |" in text
    assert "SYNTHETIC" in text
    assert "| Never run | this suite: no run record yet |" in text


def _demo_paper(tmp_path, tables, reproduce=None):
    bench = tmp_path / "benchmarks" / "demo"
    bench.mkdir(parents=True, exist_ok=True)
    (bench / "paper.yaml").write_text(yaml.safe_dump({
        "paper": "cmsg", "title": "Demo paper", "tables": tables,
        "reproduce": reproduce or {"t": {"tables": list(tables), "runs": []}},
    }, sort_keys=False, allow_unicode=True))
    return bench


def _tiny_config(image_size=32):
    return {"model": {"class_path": "fashionbench.models.Baseline", "init_args": {"backbone": "resnet10t", "pretrained": False}},
            "data": {"class_path": "datamodules.voc.VOCDataModule", "init_args": {"image_size": image_size}}}


def test_lost_derived_cited_cells_and_row_notes(tmp_path):
    _demo_paper(tmp_path, {"t": {
        "title": "Demo", "dataset": "voc2007", "percent": True, "columns": ["AP:cat", "AP:dog", "mAP"],
        "reported": [
            {"row": "A", "source": "Demo, Table 2, row A", "note": "a row note",
             "values": {"AP:cat": "lost", "AP:dog": 90.0, "mAP": {"value": 95.4, "derived": "93.4 + 2.0 (Sec. 4)"}}},
            {"row": "B", "source": "Demo, Table 4, row B",
             "values": {"AP:cat": {"lost": True, "delta": 1.8, "relative_to": "A", "source": "text: 1.8 higher"},
                        "mAP": {"value": 96.9, "source": "Sec. 4, last sentence"}}},
        ],
        "ours": [{"row": "Ours", "note": "an ours note"}],
    }})
    path = render_target("demo", "t", runs_dir=tmp_path / "none", out_dir=tmp_path / "tables", benchmarks_dir=tmp_path / "benchmarks")
    text = path.read_text()
    assert "| A [1] | Demo, Table 2, row A | (lost) | 90.0 | 95.4† [2] | — |" in text
    assert "| B | Demo, Table 4, row B | (lost) = A +1.8 [3] | — | 96.9 [4] | — |" in text   # absent cell: not reported
    assert "1. A: a row note" in text
    assert "2. † A, mAP: derived: 93.4 + 2.0 (Sec. 4)" in text
    assert "3. B, cat: text: 1.8 higher" in text and "4. B, mAP: Sec. 4, last sentence" in text
    assert "| Ours [5] | this suite: no run record yet |" in text and "5. Ours: an ours note" in text


def test_bad_cell_is_an_input_error(tmp_path):
    import pytest

    from fashionbench.errors import InputError

    _demo_paper(tmp_path, {"t": {"columns": ["mAP"], "reported": [{"row": "A", "source": "s", "values": {"mAP": "n/a"}}], "ours": []}})
    with pytest.raises(InputError, match=r"paper.yaml: table t: A, mAP: expected a number"):
        render_target("demo", "t", runs_dir=tmp_path / "none", out_dir=tmp_path / "tables", benchmarks_dir=tmp_path / "benchmarks")


def test_two_dataset_columns_record_tables_deltas_and_sizes(tmp_path):
    _demo_paper(tmp_path, {"t": {
        "title": "Ablation", "percent": True, "size": True, "record_tables": ["table1", "coco2014"], "delta_to": "ResNet-101",
        "columns": [{"key": "VOC", "metric": "mAP", "dataset": "voc2007"}, {"key": "COCO", "metric": "mAP", "dataset": "coco2014"}],
        "reported": [{"row": "Paper", "source": "Demo, Table 4, row Paper", "config": "tiny.yaml", "values": {"COCO": 77.1}}],
        "ours": [{"row": "ResNet-101"}, {"row": "Head"}],
    }})
    (tmp_path / "benchmarks" / "demo" / "tiny.yaml").write_text(yaml.safe_dump(_tiny_config(64)))
    runs = tmp_path / "runs"
    for row, table, dataset, value in (("ResNet-101", "table1", "voc2007", 0.5), ("ResNet-101", "coco2014", "coco2014", 0.3),
                                       ("Head", "table1", "voc2007", 0.55), ("Head", "coco2014", "coco2014", 0.45),
                                       ("Head", "elsewhere", "voc2007", 0.99)):  # not one of the record_tables
        write_record(make_record(0, value, row=row, table=table, dataset=dataset, config=_tiny_config()), runs)
    text = render_target("demo", "t", runs_dir=runs, out_dir=tmp_path / "tables", benchmarks_dir=tmp_path / "benchmarks").read_text()
    from fashionbench.model_size import count_size
    from fashionbench.models import Baseline

    real = count_size(Baseline(backbone="resnet10t", pretrained=False, num_labels=2), 32)  # make_record has 2 labels
    paper = count_size(Baseline(backbone="resnet10t", pretrained=False, num_labels=20), 64)  # VOC's 20 classes
    assert f"| Paper | Demo, Table 4, row Paper | — | 77.1 | {paper.params / 1e6:.1f} | {paper.flops / 1e9:.1f} (64²) | — |" in text
    assert f"| ResNet-101 | this suite, real data (Baseline [resnet101]) | 50.0 | 30.0 | {real.params / 1e6:.1f} | {real.flops / 1e9:.1f} (32²) | 0 |" in text
    assert "| Head | this suite, real data (Baseline [resnet101]) | 55.0 (+5.0) | 45.0 (+15.0) |" in text


def test_figure_of_the_headline_against_a_config_value(tmp_path):
    _demo_paper(tmp_path, {"t": {
        "title": "Sweep", "dataset": "voc2007", "columns": ["mAP"], "reported": [],
        "ours": [{"row": "h1"}, {"row": "h2"}, {"row": "h4"}],
        "figure": {"file": "sweep.png", "x": "model.init_args.heads", "xlabel": "heads"},
    }})
    runs = tmp_path / "runs"
    for heads, value in ((1, 0.5), (2, 0.6), (4, 0.55)):
        write_record(make_record(0, value, row=f"h{heads}", table="t", config={"model": {"init_args": {"heads": heads}}}), runs)
    text = render_target("demo", "t", runs_dir=runs, out_dir=tmp_path / "tables", benchmarks_dir=tmp_path / "benchmarks").read_text()
    figure = tmp_path / "figures" / "sweep.png"
    assert "![Sweep](../figures/sweep.png)" in text
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    assert Image.open(figure).size[0] > 100
