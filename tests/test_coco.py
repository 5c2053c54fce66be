"""COCO reader on the real sample (tests/fixtures/coco, the shared COCO-2017 sample laid out
as ``annotations/instances_val2017.json``) and on bad input.

The sample has 6 images and 36 annotations over 80 categories; image 89 has no annotation
and is left out unless ``include_empty``. Expected per-class counts are computed here with
plain Python straight from the JSON.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from datamodules.registry import get_reader
from datamodules.summary import summarize
from fashionbench.errors import InputError

FIXTURES = Path(__file__).parent / "fixtures"
ANN = FIXTURES / "coco" / "annotations" / "instances_val2017.json"


def raw():
    return json.loads(ANN.read_text())


def expected_counts(doc):
    """Per category (in id order): images with at least one annotation of it, crowd included."""
    cat_ids = sorted(c["id"] for c in doc["categories"])
    images_of = {cid: set() for cid in cat_ids}
    for a in doc["annotations"]:
        images_of[a["category_id"]].add(a["image_id"])
    return [len(images_of[cid]) for cid in cat_ids]


@pytest.fixture()
def coco_root(tmp_path):
    root = tmp_path / "coco"
    shutil.copytree(FIXTURES / "coco", root)
    return root


def test_reads_real_sample():
    doc = raw()
    index = get_reader("coco").read(FIXTURES / "coco", "val", 2017, "multilabel")
    assert len(index) == 5 and "89" not in index.image_ids
    assert index.image_ids == ["128372", "404249", "343934", "194216", "464689"]  # file order
    assert index.image_paths[0] == "val2017/000000128372.jpg"
    by_id = {c["id"]: c["name"] for c in doc["categories"]}
    assert index.label_names == [by_id[i] for i in sorted(by_id)] and index.num_labels == 80
    assert index.label_names[:3] == ["person", "bicycle", "car"] and index.label_names[-1] == "toothbrush"
    np.testing.assert_array_equal(index.positive_counts(), expected_counts(doc))
    assert index.dense_mask().all()
    # by hand: 128372 has person(1), car(3), bus(6), handbag(31); 404249 person(1), skateboard(41)
    row = index.image_ids.index("128372")
    assert {index.label_names[c] for c in np.flatnonzero(index.dense_targets(row)[0])} == {"person", "car", "bus", "handbag"}
    row = index.image_ids.index("404249")
    assert {index.label_names[c] for c in np.flatnonzero(index.dense_targets(row)[0])} == {"person", "skateboard"}


def test_include_empty_keeps_image_89():
    index = get_reader("coco", include_empty=True).read(FIXTURES / "coco", "val", 2017, "multilabel")
    assert len(index) == 6 and index.image_ids[-1] == "89"
    assert index.dense_targets(-1).sum() == 0


def test_summary_of_sample():
    s = summarize("coco", FIXTURES / "coco")  # only val2017 on disk -> picked
    assert s["dataset"] == "coco" and s["split"] == "val" and s["images"] == 5 and s["labels"] == 80
    assert s["positives"] == expected_counts(raw()) and s["ignored"] == [0] * 80
    # the fixture holds no JPEGs: the 5 listed images are missing
    assert sorted(s["missing_images"]) == sorted(f"val2017/{n:012d}.jpg" for n in (128372, 404249, 343934, 194216, 464689))


def test_crowd_annotations_count(coco_root):
    doc = raw()
    # image 89 gets only a crowd annotation of "zebra" (24): it becomes a positive
    doc["annotations"].append({"segmentation": {"counts": [0, 4], "size": [2, 2]}, "area": 4.0, "iscrowd": 1,
                               "image_id": 89, "bbox": [0, 0, 2, 2], "category_id": 24, "id": 1})
    (coco_root / "annotations/instances_val2017.json").write_text(json.dumps(doc))
    index = get_reader("coco").read(coco_root, "val", 2017, "multilabel")
    assert len(index) == 6
    row = index.image_ids.index("89")
    assert [index.label_names[c] for c in np.flatnonzero(index.dense_targets(row)[0])] == ["zebra"]


# --------------------------------------------------------------------------- bad input
def read_error(root, split="val", year=2017) -> str:
    with pytest.raises(InputError) as err:
        get_reader("coco").read(root, split, year, "multilabel")
    return str(err.value)


def test_bad_json_gives_json_line(coco_root):
    path = coco_root / "annotations/instances_val2017.json"
    lines = path.read_text().split("\n")
    assert lines[9] == '  "licenses": ['
    lines[9] = '  "licenses": [,'  # line 10: a value is expected after the bracket
    path.write_text("\n".join(lines))
    assert read_error(coco_root).startswith(f"{path}:10: bad JSON")


def annotation_start_line(lines, marker_line):
    """Walk up from a line inside an annotation to the line holding its opening brace."""
    for number in range(marker_line, 0, -1):
        if lines[number - 1].strip() == "{":
            return number
    raise AssertionError("no opening brace")


def test_unknown_category_id_names_the_annotation_line(coco_root):
    path = coco_root / "annotations/instances_val2017.json"
    text = path.read_text()
    target = '"id": 1175651'  # a handbag annotation of image 128372, well inside the file
    assert text.count(target) == 1
    lines = text.split("\n")
    marker = next(i for i, line in enumerate(lines, 1) if target in line)
    cat_line = max(i for i in range(1, marker) if '"category_id": 31' in lines[i - 1])
    lines[cat_line - 1] = lines[cat_line - 1].replace('"category_id": 31', '"category_id": 999')
    path.write_text("\n".join(lines))
    start = annotation_start_line(lines, cat_line)
    assert start > 100  # multi-line file: not line 1
    assert read_error(coco_root).startswith(f"{path}:{start}: annotations[")
    assert "unknown category_id 999" in read_error(coco_root)


def test_unknown_category_in_one_line_json_is_line_1(coco_root):
    path = coco_root / "annotations/instances_val2017.json"
    doc = raw()
    doc["annotations"][7]["category_id"] = 12  # 12 is one of COCO's id gaps
    path.write_text(json.dumps(doc))
    assert read_error(coco_root) == f"{path}:1: annotations[7]: unknown category_id 12"


def test_unknown_image_id(coco_root):
    path = coco_root / "annotations/instances_val2017.json"
    doc = raw()
    doc["annotations"][3]["image_id"] = 5
    path.write_text(json.dumps(doc, indent=1))
    lines = path.read_text().split("\n")
    # independent count: the 4th annotation's "{" line, found by walking the pretty-printed text
    ann_start = next(i for i, line in enumerate(lines, 1) if line.startswith(' "annotations"'))
    starts = [i for i, line in enumerate(lines, 1) if i > ann_start and line == "  {"]
    assert read_error(coco_root).startswith(f"{path}:{starts[3]}: annotations[3]: unknown image_id 5")


def test_duplicate_image_id(coco_root):
    path = coco_root / "annotations/instances_val2017.json"
    doc = raw()
    doc["images"][4]["id"] = doc["images"][1]["id"]
    path.write_text(json.dumps(doc))
    assert read_error(coco_root) == f"{path}:1: images[4]: duplicate image id {doc['images'][1]['id']}"


def test_missing_field_and_missing_file(coco_root):
    path = coco_root / "annotations/instances_val2017.json"
    doc = raw()
    del doc["annotations"][0]["category_id"]
    path.write_text(json.dumps(doc))
    assert read_error(coco_root) == f"{path}:1: annotations[0]: \"category_id\" must be an integer, got null"
    missing = coco_root / "annotations/instances_train2017.json"
    assert read_error(coco_root, split="train") == f"{missing}: missing annotation file"
    with pytest.raises(InputError, match="unknown coco split 'test'"):
        summarize("coco", coco_root, split="test")
