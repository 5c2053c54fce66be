"""iMaterialist (Fashion) FGVC5 reader on the real samples (tests/fixtures/imaterialist: the
first 300 images of the real ``validation.json``, string ids, and the first 100 of the real
``test.json``, integer ids and no annotations), the hold-out split, missing images, bad
input and the synthetic writer.

Expected counts are computed here with plain ``json``/``csv`` straight from the files.
"""
from __future__ import annotations

import csv
import json
import random
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from datamodules.index import load_index
from datamodules.readers.imaterialist import LABEL_MAP_FILE, holdout_mask
from datamodules.registry import get_reader
from datamodules.summary import summarize
from fashionbench.cli import main
from fashionbench.errors import InputError

FIXTURES = Path(__file__).parent / "fixtures" / "imaterialist"
VAL = FIXTURES / "validation.json"
TEST = FIXTURES / "test.json"


def label_map():
    with open(LABEL_MAP_FILE, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def expected_positives(doc, n_labels=228):
    """Per label (index = int(labelId) - 1): images that list it (once per image)."""
    counts = [0] * n_labels
    for ann in doc["annotations"]:
        for label in {int(x) for x in ann["labelId"]}:
            counts[label - 1] += 1
    return counts


@pytest.fixture()
def root(tmp_path):
    out = tmp_path / "imat"
    out.mkdir()
    shutil.copy(VAL, out / "validation.json")
    shutil.copy(TEST, out / "test.json")
    return out


def read(root, split, **options):
    return get_reader("imaterialist", **options).read(Path(root), split, None, "multilabel")


# --------------------------------------------------------------------------- label map
def test_label_map_is_the_official_228():
    rows = label_map()
    assert [int(r["labelId"]) for r in rows] == list(range(1, 229))
    groups = Counter(r["taskName"] for r in rows)
    assert len(groups) == 8 and sum(groups.values()) == 228
    assert groups["category"] == 105 and groups["color"] == 21 and groups["gender"] == 3
    # the poster: "images from label 131, which is very likely to be Pink Color"
    assert rows[130]["labelName"] == "Pink" and rows[130]["taskName"] == "color"


# --------------------------------------------------------------------------- real samples
def test_reads_real_validation_sample(root):
    doc = json.loads(VAL.read_text())
    rows = label_map()
    index = read(root, "validation")
    assert len(index) == len(doc["images"]) == 300 and index.num_labels == 228
    assert index.label_names == [r["labelName"] for r in rows]
    assert index.meta["label_parents"] == [r["taskName"] for r in rows]
    assert index.image_ids == [im["imageId"] for im in doc["images"]]  # file order, ids as strings
    assert index.image_paths[0] == "images/validation/1.jpg"
    np.testing.assert_array_equal(index.positive_counts(), expected_positives(doc))
    assert index.dense_mask().all() and index.ignored_counts().sum() == 0
    # by hand: image "1" has labelIds 62, 17, 66, 214, 105, 137, 85 -> indices labelId - 1
    first = doc["annotations"][0]
    assert first["imageId"] == "1" and first["labelId"] == ["62", "17", "66", "214", "105", "137", "85"]
    assert set(np.flatnonzero(index.dense_targets(0)[0])) == {61, 16, 65, 213, 104, 136, 84}
    # "100" is label index 99 (numeric), not the lexicographic position of "100" among the id strings
    with_100 = [i for i, a in enumerate(doc["annotations"]) if "100" in a["labelId"]]
    assert with_100 and all(index.dense_targets(i)[0, 99] == 1 for i in with_100)


def test_summary_of_validation_sample(root):
    doc = json.loads(VAL.read_text())
    s = summarize("imaterialist", root, split="validation")
    assert s["dataset"] == "imaterialist" and s["split"] == "validation"
    assert s["images"] == 300 and s["labels"] == 228 and len(s["label_names"]) == 228
    assert s["positives"] == expected_positives(doc) and s["ignored"] == [0] * 228
    # no image file is in the fixture: every listed image is missing
    assert sorted(s["missing_images"]) == sorted(f"images/validation/{im['imageId']}.jpg" for im in doc["images"])


def test_test_split_has_images_and_no_labels(root, capsys):
    doc = json.loads(TEST.read_text())
    assert "annotations" not in doc and all(isinstance(im["imageId"], int) for im in doc["images"])
    index = read(root, "test")
    assert index.image_ids == [str(im["imageId"]) for im in doc["images"]]
    assert not index.dense_mask().any() and index.positive_counts().sum() == 0  # every entry unknown
    assert main(["data", "summary", "imaterialist", "--root", str(root), "--split", "test"]) in (0, None)
    s = json.loads(capsys.readouterr().out)
    assert s["images"] == 100 and s["labels"] == 228
    assert s["positives"] == [0] * 228 and s["ignored"] == [100] * 228


def test_int_and_string_ids_read_alike(root, tmp_path):
    doc = json.loads(VAL.read_text())
    mixed = {"images": [{"url": im["url"], "imageId": int(im["imageId"])} for im in doc["images"]],
             "annotations": [{"labelId": [int(x) for x in a["labelId"]], "imageId": a["imageId"]}
                             for a in reversed(doc["annotations"])]}  # other order, other types
    other = tmp_path / "mixed"
    other.mkdir()
    (other / "validation.json").write_text(json.dumps(mixed))
    a, b = read(root, "validation"), read(other, "validation")
    assert a.image_ids == b.image_ids
    np.testing.assert_array_equal(a.dense_targets(), b.dense_targets())


# --------------------------------------------------------------------------- hold-out
@pytest.fixture()
def train_root(tmp_path):
    """The real validation sample laid out as a train.json."""
    out = tmp_path / "train_root"
    out.mkdir()
    shutil.copy(VAL, out / "train.json")
    return out


def test_holdout_partitions_train(train_root):
    full = read(train_root, "train")
    held = read(train_root, "holdout", holdout_fraction=0.25)
    rest = read(train_root, "train_minus_holdout", holdout_fraction=0.25)
    assert set(held.image_ids).isdisjoint(rest.image_ids)
    assert sorted(held.image_ids + rest.image_ids, key=int) == sorted(full.image_ids, key=int)
    # images keep their labels and their folder (they are train images)
    np.testing.assert_array_equal(held.positive_counts() + rest.positive_counts(), full.positive_counts())
    assert all(p.startswith("images/train/") for p in held.image_paths)
    # a binomial(300, 0.25) count: 75 +- 7.5 (one sd); 5 sd either side
    assert 75 - 38 < len(held) < 75 + 38
    assert held.meta["holdout"]["fraction"] == 0.25 and held.split == "holdout"


def test_holdout_is_deterministic_and_order_free(train_root, tmp_path):
    ids = read(train_root, "holdout", holdout_fraction=0.3).image_ids
    assert read(train_root, "holdout", holdout_fraction=0.3).image_ids == ids
    assert read(train_root, "holdout", holdout_fraction=0.3, holdout_seed=1).image_ids != ids
    doc = json.loads(VAL.read_text())
    random.Random(0).shuffle(doc["images"])
    shuffled = tmp_path / "shuffled"
    shuffled.mkdir()
    (shuffled / "train.json").write_text(json.dumps(doc))
    assert set(read(shuffled, "holdout", holdout_fraction=0.3).image_ids) == set(ids)
    # the mask depends on each id alone
    mask = holdout_mask(["5", "7", "11"], 0.5, 0)
    assert list(mask) == [bool(holdout_mask([i], 0.5, 0)[0]) for i in ("5", "7", "11")]


# --------------------------------------------------------------------------- missing images
def test_drop_missing_images_and_cache(root, tmp_path):
    folder = root / "images" / "validation"
    folder.mkdir(parents=True)
    for image_id in ("3", "10", "250"):
        (folder / f"{image_id}.jpg").write_bytes(b"x")
    index = read(root, "validation", drop_missing_images=True)
    assert index.image_ids == ["3", "10", "250"]
    assert index.meta["missing_images"] == 297 and index.meta["listed_images"] == 300
    # the summary reads all listed images and names the 297 missing ones
    assert len(summarize("imaterialist", root, split="validation")["missing_images"]) == 297
    # the cached index follows the image folder: a new image is picked up
    reader = get_reader("imaterialist", drop_missing_images=True)
    cache = tmp_path / "cache"
    assert len(load_index(reader, root, "validation", cache_dir=cache)) == 3
    (folder / "4.jpg").write_bytes(b"x")
    assert load_index(reader, root, "validation", cache_dir=cache).image_ids == ["3", "4", "10", "250"]


def test_drop_missing_with_no_image_on_disk_says_how_to_fetch(root):
    with pytest.raises(InputError, match="fashionbench download imaterialist"):
        read(root, "validation", drop_missing_images=True)


# --------------------------------------------------------------------------- bad input
def _bad(root, doc_text, capsys):
    (root / "validation.json").write_text(doc_text)
    code = main(["data", "summary", "imaterialist", "--root", str(root), "--split", "validation"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "Traceback" not in err
    return err


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["annotations"][4]["labelId"].append("229"), "annotations[4]: labelId 229 outside 1..228"),
    (lambda d: d["annotations"][2]["labelId"].append("0"), "annotations[2]: labelId 0 outside 1..228"),
    (lambda d: d["annotations"][7]["labelId"].append("red"), 'annotations[7]: labelId must be an integer 1..228, got "red"'),
    (lambda d: d["annotations"][1].__setitem__("imageId", "99999"), "annotations[1]: unknown imageId 99999"),
    (lambda d: d["images"][5].__setitem__("imageId", "1"), "images[5]: duplicate imageId 1"),
    (lambda d: d["images"][3].__setitem__("imageId", None), "images[3]: imageId must be a string or an integer, got null"),
    (lambda d: d["images"][3].__setitem__("imageId", "../x"), "images[3]: imageId must be a string or an integer"),
])
def test_bad_annotations_name_file_line_and_entry(root, capsys, mutate, message):
    doc = json.loads(VAL.read_text())
    mutate(doc)
    # one entry a line, so the line number says which entry (the real files are one line)
    text = '{"images": [\n' + ",\n".join(json.dumps(i) for i in doc["images"]) + '\n], "annotations": [\n' \
        + ",\n".join(json.dumps(a) for a in doc["annotations"]) + "\n]}"
    err = _bad(root, text, capsys)
    assert message in err
    assert err.startswith(str(root / "validation.json") + ":")
    section, k = message.split("[")[0], int(message.split("[")[1].split("]")[0])
    expected_line = 2 + k if section == "images" else 2 + len(doc["images"]) + 1 + k
    assert err.split(":")[1] == str(expected_line)


def test_unparseable_json_gives_its_line(root, capsys):
    err = _bad(root, '{"images": [\n{"url": "u", "imageId": "1"},\n{"url": "u" "imageId": "2"}\n]}', capsys)
    assert err.startswith(f"{root / 'validation.json'}:3: bad JSON")


# --------------------------------------------------------------------------- datamodule
def test_datamodule_refuses_unlabelled_or_leaking_splits(root):
    from datamodules.imaterialist import IMaterialistDataModule

    with pytest.raises(InputError, match="test.json has no labels"):
        IMaterialistDataModule(root=str(root), test_split="test")
    with pytest.raises(InputError, match="test.json has no labels"):
        IMaterialistDataModule(root=str(root), test_sets={"kaggle": {"split": "test"}})
    with pytest.raises(InputError, match="contains the 'holdout' images"):
        IMaterialistDataModule(root=str(root), train_split="train")


# --------------------------------------------------------------------------- synthetic
def test_synthetic_root_reads_like_the_real_one(tmp_path):
    from datamodules.synth import MARKER_FILE, write_synthetic

    out = write_synthetic("imaterialist", tmp_path / "synth", images=60, seed=3)
    marker = json.loads((out / MARKER_FILE).read_text())["expected"]["splits"]
    train_doc = json.loads((out / "train.json").read_text())
    test_doc = json.loads((out / "test.json").read_text())
    assert isinstance(train_doc["images"][0]["imageId"], str) and isinstance(train_doc["annotations"][0]["labelId"][0], str)
    assert "annotations" not in test_doc and isinstance(test_doc["images"][0]["imageId"], int)
    for split in ("train", "validation", "test"):
        s = summarize("imaterialist", out, split=split)
        assert s["images"] == marker[split]["images"] and s["labels"] == 228
        assert s["positives"] == marker[split]["positives"]
        assert len(s["missing_images"]) == marker[split]["missing_images"] >= 1
    assert summarize("imaterialist", out, split="train")["positives"] == expected_positives(train_doc)
    dropped = read(out, "train", drop_missing_images=True)
    assert len(dropped) == marker["train"]["images"] - marker["train"]["missing_images"]
