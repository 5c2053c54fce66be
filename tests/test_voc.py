"""VOC reader on the real fixture files (XML), on hand-written class files, and on bad input.

Expected labels were read by hand off the fixture XML (tests/fixtures/voc, from
shared/fixtures/voc; objects' <name>, ignoring <owner><name> and VOC2012 <part><name>):
  VOC2007  000001 dog, person | 000002 train | 000003 sofa, chair | 000004 car (7 objects)
           000005 chair (5 objects, 2 of them difficult: still a non-difficult chair)
  VOC2012  2007_000027 person (+ parts head/hand/foot) | 2007_000032 aeroplane x2, person x2
           2007_000033 aeroplane x3 | 2007_000039 tvmonitor | 2007_000042 train x2
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from datamodules.registry import get_reader
from datamodules.summary import summarize
from datamodules.readers.voc import VOC_CLASSES
from fashionbench.errors import InputError

FIXTURES = Path(__file__).parent / "fixtures"
READER = get_reader("voc")


def labels_of(index, image_id):
    row = index.image_ids.index(image_id)
    return {index.label_names[c] for c in np.flatnonzero(index.dense_targets(row)[0])}


@pytest.fixture()
def voc_root(tmp_path):
    root = tmp_path / "voc"
    shutil.copytree(FIXTURES / "voc", root)
    return root


def main_dir(root, year=2007):
    return root / "VOCdevkit" / f"VOC{year}" / "ImageSets" / "Main"


def test_official_class_order():
    assert len(VOC_CLASSES) == 20 and VOC_CLASSES[0] == "aeroplane" and VOC_CLASSES[-1] == "tvmonitor"
    assert VOC_CLASSES.index("person") == 14 and VOC_CLASSES.index("diningtable") == 10


def test_voc2007_xml_labels_by_hand():
    index = READER.read(FIXTURES / "voc", "trainval", 2007, "multilabel")
    assert index.image_ids == ["000001", "000002", "000003", "000004", "000005"]
    assert index.image_paths[0] == "VOCdevkit/VOC2007/JPEGImages/000001.jpg"
    assert index.label_names == list(VOC_CLASSES)
    assert labels_of(index, "000001") == {"dog", "person"}
    assert labels_of(index, "000002") == {"train"}
    assert labels_of(index, "000003") == {"sofa", "chair"}
    assert labels_of(index, "000004") == {"car"}
    assert labels_of(index, "000005") == {"chair"}
    assert index.dense_mask().all()  # no class has only difficult objects here


def test_voc2012_parts_are_not_objects():
    index = READER.read(FIXTURES / "voc", "trainval", 2012, "multilabel")
    assert labels_of(index, "2007_000027") == {"person"}
    assert labels_of(index, "2007_000032") == {"aeroplane", "person"}
    assert labels_of(index, "2007_000033") == {"aeroplane"}
    assert labels_of(index, "2007_000039") == {"tvmonitor"}
    assert labels_of(index, "2007_000042") == {"train"}


def test_class_with_only_difficult_objects_is_masked(voc_root):
    xml = voc_root / "VOCdevkit/VOC2007/Annotations/000005.xml"
    xml.write_text(xml.read_text().replace("<difficult>0</difficult>", "<difficult>1</difficult>"))
    index = READER.read(voc_root, "trainval", 2007, "multilabel")
    row, chair = index.image_ids.index("000005"), VOC_CLASSES.index("chair")
    assert index.dense_targets(row)[0, chair] == 0 and not index.dense_mask(row)[0, chair]
    assert index.dense_mask(row)[0].sum() == 19
    # 000003's chair is not difficult: it still counts
    assert index.positive_counts()[chair] == 1 and index.ignored_counts()[chair] == 1


def write_class_files(main, split, table):
    """table: {class: {id: value}}; classes not given are all -1. Devkit format "%s %2d"."""
    ids = (main / f"{split}.txt").read_text().split() if (main / f"{split}.txt").exists() else ["000001", "000002", "000003"]
    for name in VOC_CLASSES:
        values = table.get(name, {})
        (main / f"{name}_{split}.txt").write_text("".join("%s %2d\n" % (i, values.get(i, -1)) for i in ids))


def test_class_files_are_the_labels(voc_root):
    main = main_dir(voc_root)
    # deliberately different from the XML, so we know which source was read
    write_class_files(main, "trainval", {"cat": {"000001": 1, "000004": 0}, "bus": {"000002": 1, "000003": 1},
                                         "person": {"000005": 0}})
    # any whitespace between id and value
    (main / "dog_trainval.txt").write_text("000001\t1\n000002   -1\n  000003 -1  \n000004 -1\r\n000005 -1\n\n")
    index = READER.read(voc_root, "trainval", 2007, "multilabel")
    assert index.meta["source"] == "ImageSets/Main class files"
    assert labels_of(index, "000001") == {"cat", "dog"}
    assert labels_of(index, "000002") == {"bus"} and labels_of(index, "000003") == {"bus"}
    mask = index.dense_mask()
    assert not mask[3, VOC_CLASSES.index("cat")] and not mask[4, VOC_CLASSES.index("person")]
    assert mask.sum() == 5 * 20 - 2
    s = summarize("voc", voc_root, split="trainval", year=2007)
    assert s["positives"][VOC_CLASSES.index("bus")] == 2 and s["ignored"][VOC_CLASSES.index("cat")] == 1
    assert s["ignored"][VOC_CLASSES.index("person")] == 1 and sum(s["ignored"]) == 2


def test_class_files_without_split_list_use_their_ids(voc_root):
    main = main_dir(voc_root)
    (main / "test.txt").unlink()
    write_class_files(main, "test", {"horse": {"000002": 1}})
    index = READER.read(voc_root, "test", 2007, "multilabel")
    assert index.image_ids == ["000001", "000002", "000003"] and labels_of(index, "000002") == {"horse"}


def summary_keys_and_defaults():
    s = summarize("voc", FIXTURES / "voc")  # both years on disk -> 2007; trainval+test -> trainval
    assert list(s) == ["dataset", "split", "images", "labels", "label_names", "positives", "ignored", "missing_images"]
    return s


def test_summary_of_fixture():
    s = summary_keys_and_defaults()
    assert s["dataset"] == "voc" and s["split"] == "trainval" and s["images"] == 5 and s["labels"] == 20
    expected = {"dog": 1, "person": 1, "train": 1, "sofa": 1, "chair": 2, "car": 1}
    assert s["positives"] == [expected.get(c, 0) for c in VOC_CLASSES]
    assert s["ignored"] == [0] * 20 and s["missing_images"] == []
    # VOC2012 fixture has no JPEGs under tests/fixtures: every listed image is missing
    s12 = summarize("voc", FIXTURES / "voc", year="2012")
    assert s12["missing_images"] == [f"VOCdevkit/VOC2012/JPEGImages/{i}.jpg" for i in
                                     ("2007_000027", "2007_000032", "2007_000033", "2007_000039", "2007_000042")]


def test_summary_picks_the_only_year_and_split_on_disk(voc_root):
    shutil.rmtree(voc_root / "VOCdevkit/VOC2007")
    (main_dir(voc_root, 2012) / "trainval.txt").unlink()
    s = summarize("voc", voc_root)
    assert s["split"] == "test" and s["images"] == 5 and s["positives"][VOC_CLASSES.index("aeroplane")] == 2


# --------------------------------------------------------------------------- bad input
def read_error(root, split="trainval", year=2007) -> str:
    with pytest.raises(InputError) as err:
        READER.read(root, split, year, "multilabel")
    return str(err.value)


def test_bad_class_file_line(voc_root):
    main = main_dir(voc_root)
    write_class_files(main, "trainval", {})
    path = main / "bird_trainval.txt"
    path.write_text("000001 -1\n000002 -1\n000003 -1 extra\n000004 -1\n000005 -1\n")
    assert read_error(voc_root).startswith(f"{path}:3: expected 2 whitespace-separated fields")
    path.write_text("000001 -1\n\n000002 2\n000003 -1\n000004 -1\n000005 -1\n")
    assert read_error(voc_root).startswith(f"{path}:3: label must be 1, -1 or 0, got '2'")


def test_class_file_id_not_in_split_list(voc_root):
    main = main_dir(voc_root)
    write_class_files(main, "trainval", {})
    path = main / "cow_trainval.txt"
    path.write_text("000001 -1\n000002 -1\n000003 -1\n000009 -1\n000005 -1\n")
    assert read_error(voc_root).startswith(f"{path}:4: image id '000009' is not in trainval.txt")


def test_class_file_missing_an_id(voc_root):
    main = main_dir(voc_root)
    write_class_files(main, "trainval", {})
    (main / "cow_trainval.txt").write_text("000001 -1\n000002 -1\n000004 -1\n000005 -1\n")
    assert read_error(voc_root).startswith(f"{main / 'trainval.txt'}:3: image id '000003' has no line in cow_trainval.txt")


def test_duplicate_id_in_class_file_and_split_list(voc_root):
    main = main_dir(voc_root)
    write_class_files(main, "trainval", {})
    path = main / "cat_trainval.txt"
    path.write_text("000001 -1\n000002 -1\n000003 -1\n000002  1\n000004 -1\n000005 -1\n")
    assert read_error(voc_root).startswith(f"{path}:4: duplicate image id '000002'")
    (main / "test.txt").write_text("000001\n000002\n000001\n")
    assert read_error(voc_root, "test").startswith(f"{main / 'test.txt'}:3: duplicate image id '000001'")


def test_unknown_class_in_xml_names_its_line(voc_root):
    xml = voc_root / "VOCdevkit/VOC2007/Annotations/000003.xml"
    text = xml.read_text().replace("<name>chair</name>", "<name>armchair</name>")
    xml.write_text(text)
    line = 1 + text[: text.index("armchair")].count("\n")  # the <name> line of the 2nd object
    assert line == 33
    assert read_error(voc_root).startswith(f"{xml}:33: unknown class 'armchair'")


def test_bad_xml_names_expat_line(voc_root):
    xml = voc_root / "VOCdevkit/VOC2007/Annotations/000002.xml"
    lines = xml.read_text().split("\n")
    assert lines[23] == "\t\t<difficult>0</difficult>"
    lines[23] = "\t\t<difficult>0</diff>"  # line 24: mismatched tag
    xml.write_text("\n".join(lines))
    assert read_error(voc_root).startswith(f"{xml}:24: bad XML: mismatched tag")


def test_bad_difficult_value(voc_root):
    xml = voc_root / "VOCdevkit/VOC2007/Annotations/000002.xml"
    xml.write_text(xml.read_text().replace("<difficult>0</difficult>", "<difficult>maybe</difficult>"))
    assert read_error(voc_root).startswith(f"{xml}:24: <difficult> must be 0 or 1, got 'maybe'")


def test_missing_files(voc_root):
    (voc_root / "VOCdevkit/VOC2007/Annotations/000004.xml").unlink()
    assert read_error(voc_root).startswith(
        f"{voc_root / 'VOCdevkit/VOC2007/Annotations/000004.xml'}: missing annotation file (image listed at trainval.txt:4)")
    assert read_error(voc_root, "train").startswith(f"{main_dir(voc_root) / 'train.txt'}: missing split list")
    main = main_dir(voc_root)
    write_class_files(main, "test", {})
    (main / "sheep_test.txt").unlink()
    assert read_error(voc_root, "test").startswith(f"{main / 'sheep_test.txt'}: missing class file (19 of 20")
    shutil.rmtree(voc_root / "VOCdevkit/VOC2012")
    assert read_error(voc_root, year=2012).startswith(f"{voc_root / 'VOCdevkit/VOC2012'}: missing VOC directory")


def test_unknown_split_and_year():
    with pytest.raises(InputError, match="unknown voc split 'minival'; known: train, val, trainval, test"):
        summarize("voc", FIXTURES / "voc", split="minival")
    with pytest.raises(InputError, match="unknown voc year '2010'; known: 2007, 2012"):
        summarize("voc", FIXTURES / "voc", year=2010)
