"""benchmarks/cmsg against the CMSG paper: every typed number in paper.yaml is cited, the
per-class VOC 2007 table is there cell by cell (checked against our copy of the paper when it
is at hand), the derived values follow the text's sentences, the configs of every target
exist and fill the rows they are listed for, the sensitivity configs are up to date, and the
rendered tables show the lost / derived / size columns. Also: ML-GCN's multi-scale crop
against a hand-enumerated case, and fashionbench.model_size against hand counts."""
from __future__ import annotations

import importlib.util
import inspect
import re
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image
from torch import nn

from datamodules.transforms import MultiScaleCrop, build_transform
from fashionbench.model_size import build_from_config, config_size, count_size, record_entry, record_size
from fashionbench.records import write_record
from fashionbench.tables import render_target
from helpers import make_record

REPO = Path(__file__).resolve().parents[1]
CMSG_DIR = REPO / "benchmarks" / "cmsg"
PAPER_TEXT = REPO.parent / "shared" / "papers" / "003_2175ac0584b699c0.txt"
SPEC = yaml.safe_load((CMSG_DIR / "paper.yaml").read_text())
VOC = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
       "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"]
COLUMNS = [f"AP:{c}" for c in VOC] + ["mAP"]
METHODS = ["CNN-RNN", "ResNet-101", "HCP", "ML-GCN", "SSGRL", "MCAR", "DAGAT", "SST", "CMSG", "CMSG*"]


def _reported(table: str) -> dict[str, dict]:
    return {row["row"]: row for row in SPEC["tables"][table]["reported"]}


def _number(cell):
    """The number of a cell (plain or {value: ...}); None for lost cells."""
    if isinstance(cell, dict):
        return cell.get("value")
    return None if cell == "lost" else cell


# ------------------------------------------------------------------- citations
def _numbers(node, path=()):
    if isinstance(node, bool):
        return
    if isinstance(node, (int, float)):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _numbers(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _numbers(value, path + (i,))


def test_every_number_in_paper_yaml_carries_a_citation():
    found = 0
    for path, value in _numbers(SPEC):
        # only the paper's cells may be numbers: tables.<t>.reported[i].values.<column>[.value|.delta]
        assert len(path) >= 6 and path[0] == "tables" and path[2] == "reported" and path[4] == "values", (path, value)
        row = SPEC["tables"][path[1]]["reported"][path[3]]
        source = row.get("source", "")
        assert "CMSG paper" in source and ("Table" in source or "Sec." in source) and "row" in source, (path, source)
        cell = row["values"][path[5]]
        if isinstance(cell, dict):
            assert path[6:] in (("value",), ("delta",)), path
            assert cell.get("derived") or cell.get("source"), f"{path}: a number from the text cites its sentence"
            if path[6:] == ("delta",):
                assert cell.get("lost") is True and cell.get("relative_to")
        found += 1
    assert found >= 165  # the per-class table alone has 165 surviving cells (210 less 45 lost)


def test_cells_are_numbers_lost_or_cited_mappings():
    for table_id, table in SPEC["tables"].items():
        keys = [c if isinstance(c, str) else c["key"] for c in table["columns"]]
        for row in table.get("reported", []):
            assert set(row["values"]) <= set(keys), (table_id, row["row"])
            for key, cell in row["values"].items():
                if isinstance(cell, dict):
                    assert cell.get("lost") is True or isinstance(cell.get("value"), (int, float)), (table_id, row["row"], key)
                else:
                    assert cell == "lost" or isinstance(cell, (int, float)), (table_id, row["row"], key, cell)


# -------------------------------------------------------------- per-class table
def test_paper_yaml_holds_the_per_class_rows():
    table = SPEC["tables"]["table1"]
    assert table["columns"] == COLUMNS
    rows = _reported("table1")
    assert list(rows) == METHODS
    for name, row in rows.items():
        assert set(row["values"]) == set(COLUMNS), f"{name}: every cell is typed or marked lost"
    for name in ("ResNet-101", "HCP"):
        assert all(isinstance(rows[name]["values"][c], float) for c in COLUMNS)
    for name in ("CNN-RNN", "ML-GCN", "SSGRL", "MCAR", "DAGAT", "SST"):
        assert sum(isinstance(v, float) for v in rows[name]["values"].values()) >= 16, name
    # the list of CMSG's surviving cells
    cmsg = rows["CMSG"]["values"]
    for label, value in {"aeroplane": 99.5, "bicycle": 98.7, "bird": 98.8, "bottle": 83.7, "car": 97.7, "chair": 82.9,
                         "pottedplant": 86.9, "sofa": 86.6, "train": 98.9}.items():
        assert cmsg[f"AP:{label}"] == value
    assert [c for c in COLUMNS[:-1] if cmsg[c] == "lost"] == [f"AP:{c}" for c in (
        "boat", "bus", "cat", "cow", "diningtable", "dog", "horse", "motorbike", "person", "sheep", "tvmonitor")]
    assert cmsg["mAP"]["value"] == 95.4 and "derived" in cmsg["mAP"]
    star = rows["CMSG*"]["values"]
    assert star["AP:tvmonitor"] == 96.6 and star["mAP"]["value"] == 96.9 and "96.9%" in star["mAP"]["source"]
    assert all(star[c] == "lost" for c in COLUMNS[:-2])
    assert _reported("voc2012")["CMSG*"]["values"]["mAP"]["value"] == 96.2


def _parse_paper_table(text: str) -> dict[str, list]:
    """The VOC 2007 per-class table of our copy: a row starts with '| NAME |'; a line
    holding only '|' is a lost cell; other lines continue the row."""
    start = text.index("| Methods |")
    lines = text[start:].splitlines()
    rows: dict[str, list] = {}
    name = None
    for line in lines[2:]:
        line = line.strip()
        if not line.startswith("|") and not re.match(r"^[\d.]+ \|", line):
            break
        if re.match(r"^\| [A-Za-z]", line):
            cells = [c.strip() for c in line.strip("|").split("|")]
            name = re.sub(r"\s*\[\d+\]$", "", cells[0])
            rows[name] = cells[1:]
        elif line == "|":
            rows[name].append("lost")
        else:
            rows[name] += [c.strip() for c in line.strip("|").split("|")]
    return {k: [v if v == "lost" else float(v) for v in cells if v != ""] for k, cells in rows.items()}


@pytest.mark.skipif(not PAPER_TEXT.is_file(), reason="the paper's text is not at ../shared/papers")
def test_per_class_cells_match_our_copy_of_the_paper():
    parsed = _parse_paper_table(PAPER_TEXT.read_text(encoding="utf-8"))
    names = {"ResNet101": "ResNet-101"}
    assert [names.get(k, k) for k in parsed] == METHODS
    rows = _reported("table1")
    for raw, cells in parsed.items():
        assert len(cells) == 21, raw
        values = rows[names.get(raw, raw)]["values"]
        for column, cell in zip(COLUMNS, cells):
            typed = values[column]
            if cell == "lost":
                assert typed == "lost" or (isinstance(typed, dict) and "value" in typed and column == "mAP"), (raw, column)
            else:
                assert typed == cell, (raw, column, typed, cell)


def test_cmsg_map_is_derived_from_the_texts_differences():
    rows = {name: row["values"]["mAP"] for name, row in _reported("table1").items()}
    # Sec. 4: CMSG is 2.0, 1.6 and 1.4 above SSGRL, DAGAT, ML-GCN, and 0.9 above SST
    for rival, gap in (("SSGRL", 2.0), ("DAGAT", 1.6), ("ML-GCN", 1.4), ("SST", 0.9)):
        assert round(rows[rival] + gap, 1) == rows["CMSG"]["value"] == 95.4
    derived = rows["CMSG"]["derived"]
    assert all(s in derived for s in ("2.0%", "1.6%", "1.4%", "0.9%"))


def test_ablation_values_follow_the_text():
    rows = {name: row["values"] for name, row in _reported("ablation").items()}
    assert list(rows) == ["ResNet-101", "CMSG w/o SAA", "CMSG w/o SGA", "CMSG w/o correlation", "CMSG"]
    base = rows["ResNet-101"]["MS-COCO 2014"]
    assert base["value"] == 77.1 and "our reading" in base["derived"]
    assert rows["ResNet-101"]["VOC 2007"]["lost"] is True
    # +SGA (= w/o SAA): +1.8 VOC, +1.4 COCO; +SAA (= w/o SGA): +2.7, +2.5; w/o correlation: -0.2, -0.3 vs CMSG
    assert rows["CMSG w/o SAA"]["VOC 2007"] == {**rows["CMSG w/o SAA"]["VOC 2007"], "lost": True, "delta": 1.8, "relative_to": "ResNet-101"}
    assert rows["CMSG w/o SAA"]["MS-COCO 2014"]["value"] == round(77.1 + 1.4, 1) == 78.5
    assert rows["CMSG w/o SGA"]["VOC 2007"]["delta"] == 2.7
    assert rows["CMSG w/o SGA"]["MS-COCO 2014"]["value"] == round(77.1 + 2.5, 1) == 79.6
    assert rows["CMSG w/o correlation"]["VOC 2007"]["value"] == round(95.4 - 0.2, 1) == 95.2
    assert rows["CMSG w/o correlation"]["MS-COCO 2014"] == {**rows["CMSG w/o correlation"]["MS-COCO 2014"], "lost": True, "delta": -0.3, "relative_to": "CMSG"}
    assert rows["CMSG"]["VOC 2007"]["value"] == 95.4 and rows["CMSG"]["MS-COCO 2014"]["lost"] is True
    for row in rows.values():  # every value computed from differences is marked derived
        for cell in row.values():
            if isinstance(cell, dict) and "value" in cell and cell["value"] != 95.4:
                assert cell.get("derived")


# ------------------------------------------------------------ targets and configs
def _load_sensitivity_module():
    spec = importlib.util.spec_from_file_location("make_sensitivity", CMSG_DIR / "make_sensitivity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sensitivity_configs_are_up_to_date():
    module = _load_sensitivity_module()
    expected = module.expected_configs()
    on_disk = {p.name: p.read_text() for p in (CMSG_DIR / "sensitivity").glob("*.yaml")}
    assert on_disk == expected, "run: python benchmarks/cmsg/make_sensitivity.py"
    base = yaml.safe_load((CMSG_DIR / "voc2007_cmsg.yaml").read_text())
    for name, text in expected.items():
        config = yaml.safe_load(text)
        init, ref = config["model"]["init_args"], base["model"]["init_args"]
        changed = {k for k in init if init[k] != ref[k]}
        assert changed in ({"sga_heads", "saa_heads"}, {"sga_layers", "saa_layers"}), (name, changed)
        assert init["sga_heads"] == init["saa_heads"] and init["sga_layers"] == init["saa_layers"]
        assert {k: v for k, v in config.items() if k not in ("model", "record")} == {k: v for k, v in base.items() if k not in ("model", "record")}


def _configs_of(target: str) -> list[dict]:
    return [yaml.safe_load((CMSG_DIR / run["config"]).read_text()) for run in SPEC["reproduce"][target]["runs"]]


@pytest.mark.parametrize("target", sorted(SPEC["reproduce"]))
def test_every_run_fills_a_row_of_its_target(target):
    spec = SPEC["reproduce"][target]
    for config in _configs_of(target):
        record = config["record"]
        dataset = config["data"]["class_path"].split(".")[1] + str(config["data"]["init_args"].get("year") or "")
        homes = []
        for table_id in spec["tables"]:
            table = SPEC["tables"][table_id]
            tables = table.get("record_tables") or [table_id]
            datasets = {c.get("dataset") if isinstance(c, dict) else table.get("dataset") for c in table["columns"]}
            if record["table"] in tables and dataset in datasets and record["row"] in [r["row"] for r in table["ours"]]:
                homes.append(table_id)
        assert homes, f"{target}: {record} fills no table of the target"


def test_targets_keep_table1_small_and_sweep_apart():
    assert len(SPEC["reproduce"]["table1"]["runs"]) <= 10
    sweep = {run["config"] for run in SPEC["reproduce"]["sensitivity"]["runs"]}
    assert not sweep & {run["config"] for run in SPEC["reproduce"]["table1"]["runs"]} - {"voc2007_cmsg.yaml"}
    heads = sorted(c["model"]["init_args"]["sga_heads"] for c in _configs_of("sensitivity") if c["model"]["init_args"]["sga_layers"] == 2)
    layers = sorted(c["model"]["init_args"]["sga_layers"] for c in _configs_of("sensitivity") if c["model"]["init_args"]["sga_heads"] == 4)
    assert heads == [1, 2, 4, 8] and layers == [1, 2, 3, 4]


def test_star_and_small_width_configs():
    star = yaml.safe_load((CMSG_DIR / "voc2007_cmsg_star.yaml").read_text())
    assert star["model"]["init_args"]["backbone"] == "resnext101_32x16d.fb_swsl_ig1b_ft_in1k"
    import timm

    assert timm.is_model(star["model"]["init_args"]["backbone"])
    assert "resnext101_32x16d.fb_swsl_ig1b_ft_in1k" in timm.list_pretrained("resnext101_32x16d*")
    assert yaml.safe_load((CMSG_DIR / "voc2012_cmsg_star.yaml").read_text())["model"]["init_args"]["backbone"] == star["model"]["init_args"]["backbone"]
    small = yaml.safe_load((CMSG_DIR / "voc2007_cmsg_w256.yaml").read_text())
    assert small["model"]["init_args"]["hidden_dim"] == 256


def test_configs_use_the_papers_crop_and_keep_asl_only_as_a_variant():
    for path in sorted(CMSG_DIR.glob("*.yaml")) + sorted((CMSG_DIR / "sensitivity").glob("*.yaml")):
        if path.name in ("paper.yaml", "smoke.yaml"):
            continue
        data = yaml.safe_load(path.read_text())["data"]["init_args"]
        if path.name == "voc2007_cmsg_asl_aug.yaml":
            assert data["train_transform"]["randaugment"] and data["train_transform"]["cutout"] > 0
            continue
        t = data["train_transform"]
        # ML-GCN's official code (engine.py, util.py): the multi-scale crop it trains with
        assert (t["resize"], tuple(t["crop_scales"]), t["max_distort"], t["crop_positions"], t["hflip"]) == (
            "multiscale_crop", (1.0, 0.875, 0.75, 0.66, 0.5), 2, 13, 0.5), path.name
        assert "randaugment" not in t and "cutout" not in t
        assert data["eval_transform"] == {"resize": "squash"}
        assert set(t) <= set(inspect.signature(build_transform).parameters)


# ------------------------------------------------------------- multi-scale crop
def test_multiscale_crop_boxes_match_a_hand_enumerated_case():
    crop = MultiScaleCrop(32, scales=(1.0, 0.5), max_distort=1, positions=5)
    # 100 x 80 image: sides int(80 * s) = 80, 40; (w, h) pairs with |i - j| <= 1: all four;
    # corners/centre at multiples of (W - w) // 4 and (H - h) // 4, worked by hand:
    expected = {
        (0, 0, 80, 80), (20, 0, 100, 80), (10, 0, 90, 80),                                   # 80 x 80
        (0, 0, 40, 80), (60, 0, 100, 80), (30, 0, 70, 80),                                   # 40 x 80
        (0, 0, 80, 40), (20, 0, 100, 40), (0, 40, 80, 80), (20, 40, 100, 80), (10, 20, 90, 60),  # 80 x 40
        (0, 0, 40, 40), (60, 0, 100, 40), (0, 40, 40, 80), (60, 40, 100, 80), (30, 20, 70, 60),  # 40 x 40
    }
    import random

    random.seed(0)
    seen = {crop.sample_box(100, 80) for _ in range(2000)}
    assert seen == expected
    out = crop(Image.new("RGB", (100, 80)))
    assert out.size == (32, 32)


def test_multiscale_crop_grid_and_snap():
    crop = MultiScaleCrop(32, scales=(1.0, 0.5), max_distort=0, positions=13)
    # 40 x 40 box in 100 x 80: steps 15, 10; the 13 positions (corners, centre, edge middles, quarter points)
    assert sorted(crop.offsets(100, 80, 40, 40)) == sorted([
        (0, 0), (60, 0), (0, 40), (60, 40), (30, 20), (0, 20), (60, 20), (30, 40), (30, 0),
        (15, 10), (45, 10), (15, 30), (45, 30)])
    assert crop.crop_sizes(100, 80) == [(80, 80), (40, 40)]  # max_distort 0: squares only
    # a side within 3 px of the input size snaps to it: int(450 * 1.0) = 450 -> 448
    assert sorted(MultiScaleCrop(448, scales=(1.0, 0.5)).crop_sizes(450, 600)) == [(225, 225), (225, 448), (448, 225), (448, 448)]
    image = Image.new("RGB", (90, 70), (10, 200, 30))
    train = build_transform(48, True, resize="multiscale_crop", hflip=0.0)
    assert train(image).shape == (3, 48, 48)
    torch.testing.assert_close(build_transform(48, False, resize="multiscale_crop")(image), build_transform(48, False)(image))


# ------------------------------------------------------------------ model size
def test_count_size_matches_a_hand_count():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 10))
    size = count_size(model, 8)
    # conv: 8x8 outputs x 8 channels x (3 x 3 x 3) multiply-adds; linear: 512 x 10; 2 FLOPs each
    assert size.flops == 2 * (8 * 8 * 8 * 27 + 512 * 10)
    assert size.macs == size.flops // 2
    assert size.params == (3 * 9 * 8 + 8) + (512 * 10 + 10)


def _tiny_cmsg_config(tmp_path, hidden=32, labels=("cat", "dog", "bird")):
    import numpy as np

    path = tmp_path / "vectors.npz"
    np.savez(path, names=np.asarray(labels), vectors=np.random.default_rng(0).normal(size=(len(labels), 12)).astype(np.float32))
    return {"model": {"class_path": "fashionbench.models.cmsg.CMSG", "init_args": {
        "backbone": "resnet10t", "pretrained": True, "weights_file": "/nonexistent/weights.safetensors", "embeddings": str(path),
        "tau": 0.0, "hidden_dim": hidden, "sga_layers": 1, "saa_layers": 2, "sga_heads": 2, "saa_heads": 4,
        "loss": {"class_path": "fashionbench.losses.AsymmetricLoss"}, "optim": {"lr": 1.0}}},
        "data": {"init_args": {"image_size": 64}}}


def test_cmsg_size_on_meta_equals_a_real_build_and_the_hand_formula(tmp_path):
    from fashionbench.models.cmsg import CMSG

    config = _tiny_cmsg_config(tmp_path)
    labels = ["cat", "dog", "bird"]
    meta = config_size(config, label_names=labels)
    args = {k: v for k, v in config["model"]["init_args"].items() if k not in ("loss", "optim")}
    real = CMSG(**{**args, "pretrained": False, "weights_file": None}, num_labels=3, label_names=labels).eval()
    assert next(real.parameters()).device.type == "cpu"
    assert meta == count_size(real, 64)  # the meta path counts what a real forward does
    d, f, backbone_c, e, c = 32, 128, 512, 12, 3
    layer = 4 * d * d + 4 * d + 2 * d * f + f + d + 4 * d  # in/out projections, FFN, two LayerNorms
    head = (backbone_c * d + d) + (e * d + d + d * d + d) + 3 * layer + (c * d + c)
    assert meta.params - sum(p.numel() for p in real.backbone.parameters()) == head


def test_record_size_reads_the_records_config(tmp_path):
    record = make_record(0, 0.5, label_names=["cat", "dog", "bird"], config=_tiny_cmsg_config(tmp_path, hidden=16))
    size = record_size(record)
    assert size.image_size == 64
    assert size == config_size(record["config"], label_names=["cat", "dog", "bird"])
    assert record_size({**record, "model_size": {"params": 5, "flops": 8, "image_size": 2}}).params == 5
    built = build_from_config(record["config"]["model"], label_names=["cat", "dog", "bird"])
    assert next(built.parameters()).device.type == "meta"
    # what a record writer may store; the tables read it back unchanged
    entry = record_entry(record["config"], ["cat", "dog", "bird"])
    assert entry["params"] == size.params and entry["flops"] == size.flops and entry["macs"] == size.flops // 2
    assert record_size({**record, "config": {}, "model_size": entry}) == size
    assert record_entry({"model": {"class_path": "no.such.Model"}, "data": {"init_args": {"image_size": 8}}}) is None


# ------------------------------------------------------------------ rendering
def _baseline_config(image_size=32):
    return {"model": {"class_path": "fashionbench.models.Baseline",
                      "init_args": {"backbone": "resnet10t", "pretrained": False, "loss": None}},
            "data": {"class_path": "datamodules.voc.VOCDataModule", "init_args": {"image_size": image_size}}}


def test_rendered_cmsg_tables_show_paper_rows_lost_derived_star_ablation_and_size(tmp_path):
    runs = tmp_path / "runs"
    labels = list(VOC)
    for row, table, dataset, value in (("CMSG", "table1", "voc2007", 0.6), ("ResNet-101", "table1", "voc2007", 0.5),
                                       ("CMSG w/o SGA", "coco2014", "coco2014", 0.4), ("ResNet-101", "coco2014", "coco2014", 0.3)):
        record = make_record(0, value, source="synthetic", row=row, table=table, dataset=dataset,
                             label_names=labels, config=_baseline_config())
        record["metrics"]["AP"] = [value] * 20
        write_record(record, runs)
    path = render_target("cmsg", "table1", runs_dir=runs, out_dir=tmp_path / "tables", benchmarks_dir=REPO / "benchmarks")
    text = path.read_text()
    table1, rest = text.split("### Ablation", 1)
    assert "| CNN-RNN | CMSG paper, Table 2 (VOC 2007 per-class AP), row CNN-RNN [29] | 96.7 | 83.1 |" in table1
    assert "| 75.3 | (lost) | 78.6 | 84.0 |" in table1                     # CNN-RNN's lost train cell
    assert re.search(r"\| 98\.9 \| \(lost\) \| 95\.4† \[\d+\] \|", table1)  # CMSG: tv lost, mAP derived
    assert re.search(r"\| CMSG\* \[\d+\] \|.*\| 96\.6 \| 96\.9 \[\d+\] \|", table1)
    assert "params (M) | GFLOPs (input)" in table1
    assert "| 42.5 | 62.4 (448²) |" in table1                              # the ResNet-101 row, sized from its config
    ours = [line for line in table1.splitlines() if line.startswith("| CMSG | this suite, synthetic")]
    assert len(ours) == 1 and "| 60.0 |" in ours[0] and "(32²)" in ours[0]
    assert "| CMSG (width 256) [" in table1 and "no run record yet" in table1
    ablation = rest.split("### MS-COCO", 1)[0]
    assert "77.1† [" in ablation and "(lost) = ResNet-101 +1.8" in ablation and "78.5†" in ablation
    assert "(lost) = CMSG −0.3" in ablation and "95.2†" in ablation
    # this suite's rows: VOC from table1 records, COCO from coco2014 records; differences to its ResNet-101
    wo_sga = [line for line in ablation.splitlines() if line.startswith("| CMSG w/o SGA") and "this suite" in line]
    assert len(wo_sga) == 1 and "| — | 40.0 (+10.0) |" in wo_sga[0]
    assert "our reading: MS-COCO 2014" in ablation


def test_small_width_sits_near_ml_gcns_parameter_count():
    import timm

    with torch.device("meta"):
        trunk = sum(p.numel() for p in timm.create_model("resnet101", num_classes=0).parameters())
    # ML-GCN's official models.py: ResNet-101 trunk + GCN 300 -> 1024 -> 2048 (no bias) + the C x C matrix A
    ml_gcn = trunk + 300 * 1024 + 1024 * 2048 + 20 * 20
    small = config_size(yaml.safe_load((CMSG_DIR / "voc2007_cmsg_w256.yaml").read_text()), label_names=VOC)
    full = config_size(yaml.safe_load((CMSG_DIR / "voc2007_cmsg.yaml").read_text()), label_names=VOC)
    assert abs(small.params - ml_gcn) / ml_gcn < 0.05
    assert full.params - trunk > 200e6  # the width-2048 head the issue measured (about 210 M)
    assert small.image_size == full.image_size == 448


def test_rendered_sensitivity_tables_and_figures(tmp_path):
    runs = tmp_path / "runs"
    for row, table, heads, value in (("CMSG, 1 head", "sensitivity", 1, 0.50), ("CMSG", "table1", 4, 0.60),
                                     ("CMSG, 8 heads", "sensitivity", 8, 0.55)):
        config = _tiny_cmsg_config(tmp_path)
        config["model"]["init_args"].update(sga_heads=heads, saa_heads=heads, sga_layers=2, saa_layers=2)
        write_record(make_record(0, value, source="synthetic", row=row, table=table, label_names=["cat", "dog", "bird"],
                                 config=config), runs)
    text = render_target("cmsg", "sensitivity", runs_dir=runs, out_dir=tmp_path / "tables",
                         benchmarks_dir=REPO / "benchmarks").read_text()
    heads = text.split("### VOC 2007 test: mAP (%) against the number of layers")[0]
    assert re.search(r"\| CMSG \(paper's sweep\) \[1\] \| .* \| \(lost\) \| — \| — \| — \|", heads)
    assert "| CMSG, 2 heads | this suite: no run record yet |" in heads
    assert "![" in heads and "(../figures/cmsg_sensitivity_heads.png)" in heads
    assert (tmp_path / "figures" / "cmsg_sensitivity_heads.png").read_bytes()[:4] == b"\x89PNG"
    assert "(figure `cmsg_sensitivity_layers.png`: no run record yet)" not in text  # the 2-layer CMSG run is a point of both
    assert (tmp_path / "figures" / "cmsg_sensitivity_layers.png").is_file()
