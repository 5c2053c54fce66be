"""Synthetic writers: real on-disk format, round trip through the readers, determinism,
atomic output, and label-dependent pixels."""
from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datamodules.registry import get_reader
from datamodules.summary import summarize
from datamodules.synth import MARKER_FILE, write_synthetic
from datamodules.synth.images import glyph_style
from datamodules.readers.voc import VOC_CLASSES
from fashionbench.errors import InputError


@pytest.fixture(scope="module")
def voc_synth(tmp_path_factory):
    return write_synthetic("voc", tmp_path_factory.mktemp("s") / "voc", images=60, seed=3)


@pytest.fixture(scope="module")
def coco_synth(tmp_path_factory):
    return write_synthetic("coco", tmp_path_factory.mktemp("s") / "coco", images=90, seed=4)


def test_voc_layout_and_syntax(voc_synth):
    base = voc_synth / "VOCdevkit" / "VOC2007"
    marker = json.loads((voc_synth / MARKER_FILE).read_text())
    assert marker["generator"] == "fashionbench.synth.voc" and marker["seed"] == 3 and "version" in marker
    assert len(list((base / "JPEGImages").glob("*.jpg"))) == 60 == len(list((base / "Annotations").glob("*.xml")))
    main = base / "ImageSets" / "Main"
    trainval = (main / "trainval.txt").read_text().split()
    assert sorted((main / "train.txt").read_text().split() + (main / "val.txt").read_text().split()) == trainval
    assert len(trainval) + len((main / "test.txt").read_text().split()) == 60
    lines = (main / "dog_trainval.txt").read_text().splitlines()
    assert len(lines) == len(trainval)
    for line in lines:  # devkit "%s %2d": id, space, value right-aligned in 2 columns
        assert line[:6] in trainval and line[6:] in (" -1", "  0", "  1")
    root = ET.parse(base / "Annotations" / f"{trainval[0]}.xml").getroot()
    assert [c.tag for c in root] == ["folder", "filename", "source", "size", "segmented"] + ["object"] * (len(root) - 5)
    obj = root.find("object")
    assert [c.tag for c in obj] == ["name", "pose", "truncated", "difficult", "bndbox"]
    assert [c.tag for c in obj.find("bndbox")] == ["xmin", "ymin", "xmax", "ymax"]
    with Image.open(base / "JPEGImages" / f"{trainval[0]}.jpg") as im:
        assert im.format == "JPEG" and im.size == (96, 96)


def voc_counts_from_files(root: Path, split: str) -> dict[str, dict]:
    """Per-class counts of a split worked out from the written files with plain Python, twice:
    from the XML (a positive has a non-difficult object of the class; ignored: only difficult
    ones) and from the devkit class files (``1`` positive, ``0`` ignored, ``-1`` absent)."""
    main = root / "VOCdevkit" / "VOC2007" / "ImageSets" / "Main"
    ids = (main / f"{split}.txt").read_text().split()
    from_xml = {"images": len(ids), "positives": [0] * len(VOC_CLASSES), "ignored": [0] * len(VOC_CLASSES)}
    for image_id in ids:
        easy, hard = set(), set()
        for obj in ET.parse(root / "VOCdevkit" / "VOC2007" / "Annotations" / f"{image_id}.xml").getroot().iter("object"):
            (hard if obj.findtext("difficult").strip() == "1" else easy).add(obj.findtext("name").strip())
        for c, name in enumerate(VOC_CLASSES):
            from_xml["positives"][c] += name in easy
            from_xml["ignored"][c] += name in hard and name not in easy
    from_class_files = {"images": len(ids), "positives": [], "ignored": []}
    for name in VOC_CLASSES:
        values = dict(line.split() for line in (main / f"{name}_{split}.txt").read_text().splitlines())
        assert sorted(values) == sorted(ids), name
        from_class_files["positives"].append(sum(v == "1" for v in values.values()))
        from_class_files["ignored"].append(sum(v == "0" for v in values.values()))
    return {"xml": from_xml, "class_files": from_class_files}


def test_voc_round_trip_counts_match_the_files(voc_synth):
    ignored_somewhere = 0
    for split in ("train", "val", "trainval", "test"):
        counts = voc_counts_from_files(voc_synth, split)
        assert counts["xml"] == counts["class_files"], split
        expected = counts["xml"]
        ignored_somewhere += sum(expected["ignored"])
        s = summarize("voc", voc_synth, split=split)
        assert (s["images"], s["positives"], s["ignored"]) == (
            expected["images"], expected["positives"], expected["ignored"]), split
        assert s["missing_images"] == []
    assert ignored_somewhere > 0  # some difficult-only entries, so "ignored" is tested


def test_voc_xml_and_class_files_agree(voc_synth, tmp_path):
    # the same root read through its XML only (class files removed) gives the same index
    copy = tmp_path / "voc"
    shutil.copytree(voc_synth, copy)
    for path in (copy / "VOCdevkit/VOC2007/ImageSets/Main").glob("*_*.txt"):
        path.unlink()
    reader = get_reader("voc")
    for split in ("trainval", "test"):
        a = reader.read(voc_synth, split, 2007, "multilabel")
        b = reader.read(copy, split, 2007, "multilabel")
        assert a.meta["source"] != b.meta["source"] and a.image_ids == b.image_ids
        np.testing.assert_array_equal(a.dense_targets(), b.dense_targets())
        np.testing.assert_array_equal(a.dense_mask(), b.dense_mask())


def test_coco_layout_and_round_trip(coco_synth):
    n_images = {}
    for split in ("train", "val"):
        doc = json.loads((coco_synth / "annotations" / f"instances_{split}2014.json").read_text())
        assert list(doc) == ["info", "images", "licenses", "annotations", "categories"]
        assert len(doc["categories"]) == 80 and {12, 26, 29, 30, 45, 66, 68, 69, 71, 83} & {c["id"] for c in doc["categories"]} == set()
        assert all(im["file_name"] == f"COCO_{split}2014_{im['id']:012d}.jpg" for im in doc["images"])
        assert all((coco_synth / f"{split}2014" / im["file_name"]).is_file() for im in doc["images"])
        ann = doc["annotations"][0]
        assert set(ann) == {"segmentation", "area", "iscrowd", "image_id", "bbox", "category_id", "id"}
        crowd = [a for a in doc["annotations"] if a["iscrowd"]]
        assert crowd and all(set(a["segmentation"]) == {"counts", "size"} for a in crowd)
        # RLE counts cover the whole 96x96 mask and the ones add up to the area
        assert all(sum(a["segmentation"]["counts"]) == 96 * 96 for a in crowd)
        assert all(sum(a["segmentation"]["counts"][1::2]) == a["area"] for a in crowd)
        annotated = {a["image_id"] for a in doc["annotations"]}
        assert len(annotated) < len(doc["images"])  # a few images without annotations
        s = summarize("coco", coco_synth, split=split)
        # independent count from the JSON with plain Python
        cat_ids = sorted(c["id"] for c in doc["categories"])
        per_cat = [len({a["image_id"] for a in doc["annotations"] if a["category_id"] == cid}) for cid in cat_ids]
        assert s["images"] == len(annotated)
        assert s["positives"] == per_cat and sum(per_cat) > 0
        assert s["missing_images"] == []
        n_images[split] = len(doc["images"])
    index = get_reader("coco", include_empty=True).read(coco_synth, "val", 2014, "multilabel")
    assert len(index) == n_images["val"]  # every image of the JSON, annotated or not


def test_deterministic_given_seed(tmp_path):
    a = write_synthetic("coco", tmp_path / "a", images=12, seed=7)
    b = write_synthetic("coco", tmp_path / "b", images=12, seed=7)
    c = write_synthetic("coco", tmp_path / "c", images=12, seed=8)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    ann = Path("annotations/instances_train2014.json")
    assert (a / ann).read_bytes() != (c / ann).read_bytes()


def test_refuses_non_empty_out_and_unknown_dataset(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    with pytest.raises(InputError, match="not an empty folder"):
        write_synthetic("voc", tmp_path / "full", images=4)
    assert (tmp_path / "full" / "x").read_text() == "keep me"
    with pytest.raises(InputError, match=r"no synthetic writer for 'nope'; known: coco, (.+, )?voc"):
        write_synthetic("nope", tmp_path / "n")
    (tmp_path / "empty").mkdir()
    assert len(summarize("voc", write_synthetic("voc", tmp_path / "empty", images=4), split="test")["label_names"]) == 20


def test_crash_leaves_no_half_dataset(tmp_path, monkeypatch):
    import datamodules.synth.voc as synth_voc

    calls = {"n": 0}
    real_render = synth_voc.render

    def failing_render(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("disk full")
        return real_render(*args, **kwargs)

    monkeypatch.setattr(synth_voc, "render", failing_render)
    with pytest.raises(RuntimeError):
        write_synthetic("voc", tmp_path / "out", images=10)
    assert list(tmp_path.iterdir()) == []


def test_pixels_depend_on_labels(voc_synth):
    """A non-difficult object's glyph colour fills part of its box (when no other box
    overlaps it), and no colour appears outside the boxes of labels drawn in it."""
    base = voc_synth / "VOCdevkit" / "VOC2007"
    checked = 0
    for xml in sorted((base / "Annotations").glob("*.xml")):
        objects = [(o.find("name").text, [int(o.find("bndbox").find(k).text) for k in ("xmin", "ymin", "xmax", "ymax")],
                    o.find("difficult").text == "1") for o in ET.parse(xml).getroot().findall("object")]
        pixels = np.asarray(Image.open(base / "JPEGImages" / f"{xml.stem}.jpg").convert("RGB"), dtype=np.int64)
        boxes = np.zeros((len(objects),) + pixels.shape[:2], bool)
        for k, (_, (x0, y0, x1, y1), _) in enumerate(objects):
            boxes[k, y0 - 1:y1, x0 - 1:x1] = True
        for k, (name, _, difficult) in enumerate(objects):
            _, colour = glyph_style(VOC_CLASSES.index(name))
            close = np.abs(pixels - np.array(colour)).sum(axis=2) < 60
            same_colour = [j for j, (other, _, _) in enumerate(objects) if glyph_style(VOC_CLASSES.index(other))[1] == colour]
            assert close[~boxes[same_colour].any(axis=0)].mean() < 0.02, (xml.name, name)
            alone = boxes[k] & ~boxes[np.arange(len(objects)) != k].any(axis=0)
            if alone.sum() == boxes[k].sum() and not difficult:  # difficult ones are drawn small and faint
                assert close[boxes[k]].mean() > 0.15, (xml.name, name)
                checked += 1
    assert checked >= 20


def test_glyphs_are_unique_for_80_labels():
    assert len({glyph_style(c) for c in range(80)}) == 80
