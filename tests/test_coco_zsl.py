"""COCO 48/17 zero-shot tasks on the real COCO-2017 subset (tests/fixtures/coco).

The 48/17 lists of the reader are checked against Bansal et al.'s JSON lists (fixtures/
zero_shot_splits), and every expected count is computed here from the instances JSON with
plain Python (sets of image ids per category).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from datamodules.readers.coco import COCO_ZSL_SEEN, COCO_ZSL_UNSEEN
from datamodules.registry import get_reader
from datamodules.summary import summarize
from fashionbench.errors import InputError

FIXTURES = Path(__file__).parent / "fixtures"
SPLITS = FIXTURES / "zero_shot_splits" / "coco_48_17"
ANN = FIXTURES / "coco" / "annotations" / "instances_val2017.json"


def doc():
    return json.loads(ANN.read_text())


def by_id(d):
    return {c["id"]: c["name"] for c in d["categories"]}


def test_lists_are_bansal_48_17_in_category_id_order():
    seen_json = [c for c in json.loads((SPLITS / "mscoco_seen_classes.json").read_text()) if c != "background"]
    unseen_json = json.loads((SPLITS / "mscoco_unseen_classes.json").read_text())
    assert sorted(COCO_ZSL_SEEN) == sorted(seen_json) and len(COCO_ZSL_SEEN) == 48
    assert sorted(COCO_ZSL_UNSEEN) == sorted(unseen_json) and len(COCO_ZSL_UNSEEN) == 17
    assert list(COCO_ZSL_SEEN) == (SPLITS / "coco_zsl_seen48.txt").read_text().split("\n")[:48]
    assert list(COCO_ZSL_UNSEEN) == (SPLITS / "coco_zsl_unseen17.txt").read_text().split("\n")[:17]
    ids = {name: cid for cid, name in by_id(doc()).items()}
    for names in (COCO_ZSL_SEEN, COCO_ZSL_UNSEEN):
        assert [ids[n] for n in names] == sorted(ids[n] for n in names)


def expected(d, names, rule):
    """Images (file order) kept by ``rule(category names of the image)``, and per label of
    ``names`` the kept images having it."""
    names_of = {im["id"]: set() for im in d["images"]}
    cats = by_id(d)
    for a in d["annotations"]:
        names_of[a["image_id"]].add(cats[a["category_id"]])
    kept = [im["id"] for im in d["images"] if rule(names_of[im["id"]])]
    return kept, [sum(name in names_of[i] for i in kept) for name in names]


def in_id_order(d, wanted):
    return [name for _, name in sorted(by_id(d).items()) if name in wanted]


def test_zsl_val_is_images_with_an_unseen_class():
    d = doc()
    names = in_id_order(d, set(COCO_ZSL_UNSEEN))
    kept, positives = expected(d, names, lambda s: bool(s & set(COCO_ZSL_UNSEEN)))
    s = summarize("coco", FIXTURES / "coco", split="val", task="zsl")
    assert s["label_names"] == names == list(COCO_ZSL_UNSEEN) and s["labels"] == 17
    assert s["images"] == len(kept) > 0 and s["positives"] == positives and s["ignored"] == [0] * 17
    index = get_reader("coco").read(FIXTURES / "coco", "val", 2017, "zsl")
    assert index.image_ids == [str(i) for i in kept] and index.meta["label_seen"] == [False] * 17
    ids = {name: cid for cid, name in by_id(d).items()}
    assert index.meta["category_ids"] == [ids[n] for n in names]


def test_gzsl_val_same_images_65_labels():
    d = doc()
    names = in_id_order(d, set(COCO_ZSL_SEEN) | set(COCO_ZSL_UNSEEN))
    kept, positives = expected(d, names, lambda s: bool(s & set(COCO_ZSL_UNSEEN)))
    s = summarize("coco", FIXTURES / "coco", split="val", task="gzsl")
    assert s["label_names"] == names and s["labels"] == 65 and s["images"] == len(kept)
    assert s["positives"] == positives and sum(positives) > sum(expected(d, list(COCO_ZSL_UNSEEN), lambda x: bool(x & set(COCO_ZSL_UNSEEN)))[1])
    index = get_reader("coco").read(FIXTURES / "coco", "val", 2017, "gzsl")
    assert index.meta["label_seen"] == [n in set(COCO_ZSL_SEEN) for n in names]
    assert index.image_ids == get_reader("coco").read(FIXTURES / "coco", "val", 2017, "zsl").image_ids


@pytest.fixture()
def train_root(tmp_path):
    """The same real file laid out as the train split."""
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    shutil.copy(ANN, root / "annotations" / "instances_train2017.json")
    return root


def test_zsl_train_is_seen_only_images(train_root):
    d = doc()
    names = list(COCO_ZSL_SEEN)
    rule = lambda s: bool(s & set(COCO_ZSL_SEEN)) and not s & set(COCO_ZSL_UNSEEN)  # noqa: E731
    kept, positives = expected(d, names, rule)
    for task in ("zsl", "gzsl"):
        s = summarize("coco", train_root, split="train", task=task)
        assert s["label_names"] == names and s["images"] == len(kept) and s["positives"] == positives
    index = get_reader("coco").read(train_root, "train", 2017, "zsl")
    assert index.image_ids == [str(i) for i in kept] and index.meta["label_seen"] == [True] * 48
    # no kept image has an unseen class; every one has a seen positive
    assert (index.dense_targets().sum(axis=1) > 0).all()


def test_multilabel_unchanged_and_missing_category(train_root):
    a = get_reader("coco").read(FIXTURES / "coco", "val", 2017, "multilabel")
    assert a.num_labels == 80 and "label_seen" not in a.meta and len(a) == 5
    path = train_root / "annotations" / "instances_train2017.json"
    d = doc()
    cat = next(c["id"] for c in d["categories"] if c["name"] == "cat")
    d["categories"] = [c for c in d["categories"] if c["id"] != cat]
    d["annotations"] = [x for x in d["annotations"] if x["category_id"] != cat]
    path.write_text(json.dumps(d))
    with pytest.raises(InputError) as err:
        get_reader("coco").read(train_root, "train", 2017, "zsl")
    assert str(err.value) == f"{path}: the COCO 48/17 split needs category 'cat', which the file lacks"
    assert get_reader("coco").read(train_root, "train", 2017, "multilabel").num_labels == 79


def test_coco_synth_root_zsl_round_trip(tmp_path):
    from datamodules.synth import write_synthetic

    root = write_synthetic("coco", tmp_path / "coco", images=30, seed=1)
    d = json.loads((root / "annotations" / "instances_val2014.json").read_text())
    kept, positives = expected(d, list(COCO_ZSL_UNSEEN), lambda s: bool(s & set(COCO_ZSL_UNSEEN)))
    s = summarize("coco", root, split="val", task="zsl")
    assert s["images"] == len(kept) and s["positives"] == positives
    index = get_reader("coco").read(root, "val", 2014, "gzsl")
    assert np.array_equal(index.dense_targets()[:, [index.label_names.index(n) for n in COCO_ZSL_UNSEEN]].sum(axis=0),
                          positives)
