"""NUS-WIDE reader: concept counts on the complete real Groundtruth files, the zero-shot
tasks on a hand-written root, the files each task reads, bad input, the synthetic writer.

Expected values come from the files themselves, counted here with plain Python (``line ==
"1"``), or are worked out by hand in the comments.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datamodules.index import load_index
from datamodules.registry import get_reader
from datamodules.summary import summarize
from datamodules.synth import write_synthetic
from fashionbench.errors import InputError

FIXTURES = Path(__file__).parent / "fixtures" / "nus_wide"
REAL = ("airport", "dog", "sky")  # the concepts whose complete real files are in the fixtures


def names(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


CONCEPTS = names(FIXTURES / "ConceptsList" / "Concepts81.txt")
TAGS = names(FIXTURES / "NUS_WID_Tags" / "TagList1k.txt")
SEEN = [t for t in TAGS if t not in set(CONCEPTS)]


def real_lines(concept: str, split: str) -> list[str]:
    return (FIXTURES / "Groundtruth" / "TrainTestLabels" / f"Labels_{concept}_{split}.txt").read_text().splitlines()


@pytest.fixture(scope="module")
def full_root(tmp_path_factory):
    """The real Concepts81 and the three complete real concept files; the other 78 concepts
    all-zero files of the same length; split lists of that many CRLF backslash paths."""
    root = tmp_path_factory.mktemp("nus") / "nus"
    gt = root / "Groundtruth" / "TrainTestLabels"
    gt.mkdir(parents=True)
    (root / "ImageList").mkdir()
    shutil.copytree(FIXTURES / "ConceptsList", root / "ConceptsList")
    for split in ("Train", "Test"):
        n = len(real_lines("airport", split))
        (root / "ImageList" / f"{split}Imagelist.txt").write_bytes(
            b"".join(b"actor\\%04d_%d.jpg\r\n" % (i % 10000, 1000 + i) for i in range(n)))
        for concept in CONCEPTS:
            if concept in REAL:
                shutil.copy(FIXTURES / "Groundtruth/TrainTestLabels" / f"Labels_{concept}_{split}.txt", gt)
            else:
                (gt / f"Labels_{concept}_{split}.txt").write_bytes(b"0\n" * n)
    return root


def test_concept_counts_on_the_complete_real_groundtruth(full_root):
    assert (len(real_lines("sky", "Train")), len(real_lines("sky", "Test"))) == (161_789, 107_859)
    for split, suffix in (("train", "Train"), ("test", "Test")):
        s = summarize("nus-wide", full_root, split=split, task="concepts81")
        n = len(real_lines("airport", suffix))
        assert s["images"] == n and s["labels"] == 81 and s["label_names"] == CONCEPTS
        for concept in REAL:  # independent count: lines that read "1"
            ones = sum(1 for line in real_lines(concept, suffix) if line.strip() == "1")
            assert s["positives"][CONCEPTS.index(concept)] == ones
        assert sum(s["positives"]) == sum(s["positives"][CONCEPTS.index(c)] for c in REAL)
        assert s["ignored"] == [0] * 81
        # no image on disk: every listed image is reported, none is fatal
        assert len(s["missing_images"]) == n and s["missing_images"][0] == "Flickr/actor/0000_1000.jpg"


def test_concepts81_reads_no_tag_file(full_root):
    reader = get_reader("nus-wide")
    files = reader.annotation_files(full_root, "test", None, "concepts81")
    assert files[:2] == [full_root / "ConceptsList/Concepts81.txt", full_root / "ImageList/TestImagelist.txt"]
    assert files[2:] == [full_root / f"Groundtruth/TrainTestLabels/Labels_{c}_Test.txt" for c in CONCEPTS]
    assert not (full_root / "NUS_WID_Tags").exists()  # and it read fine above without them


# --------------------------------------------------------------------------- zero-shot tasks
# Six images; Imagelist order A..F, the split lists in another order, Windows paths, CRLF.
IMAGES = {  # key: (folder\file, split, tags, concepts)
    "A": ("actor\\0001_11.jpg", "train", ["nature", "dog", "puppy"], ["dog"]),
    "B": ("beach\\0001_12.jpg", "test", ["sand", "beach", "ocean"], ["beach", "ocean"]),
    "C": ("beach\\0002_13.jpg", "train", ["sand", "explore"], []),
    "D": ("cat\\0001_14.jpg", "test", [], ["animal"]),
    "E": ("dog\\0003_15.jpg", "train", ["puppy", "nature", "blue"], ["animal", "dog"]),
    "F": ("sky\\0009_16.jpg", "test", ["blue", "nature"], ["sky"]),
}
TRAIN_ORDER, TEST_ORDER = ["E", "A", "C"], ["F", "B", "D"]


@pytest.fixture()
def small_root(tmp_path):
    root = tmp_path / "nus"
    for sub in ("ImageList", "NUS_WID_Tags", "Groundtruth/TrainTestLabels"):
        (root / sub).mkdir(parents=True)
    shutil.copytree(FIXTURES / "ConceptsList", root / "ConceptsList")
    shutil.copy(FIXTURES / "NUS_WID_Tags" / "TagList1k.txt", root / "NUS_WID_Tags")
    crlf = "\r\n"
    (root / "ImageList" / "Imagelist.txt").write_text(
        "".join(f"C:\\ImageData\\Flickr\\{IMAGES[k][0]}{crlf}" for k in "ABCDEF"), newline="")
    (root / "ImageList" / "TrainImagelist.txt").write_text("".join(IMAGES[k][0] + crlf for k in TRAIN_ORDER), newline="")
    (root / "ImageList" / "TestImagelist.txt").write_text("".join(IMAGES[k][0] + crlf for k in TEST_ORDER), newline="")
    rows = ["".join(f"{int(t in IMAGES[k][2])}\t" for t in TAGS) for k in "ABCDEF"]
    (root / "NUS_WID_Tags" / "AllTags1k.txt").write_text("".join(r + "\r\n" for r in rows), newline="")
    for split, order in (("Train", TRAIN_ORDER), ("Test", TEST_ORDER)):
        for c in CONCEPTS:
            (root / "Groundtruth/TrainTestLabels" / f"Labels_{c}_{split}.txt").write_text(
                "".join(f"{int(c in IMAGES[k][3])}\n" for k in order))
    return root


def labels_of(index, row):
    return {index.label_names[c] for c in np.flatnonzero(index.dense_targets(row)[0])}


def test_zsl_trains_on_the_925_seen_tags(small_root):
    assert len(SEEN) == 925 and len(TAGS) - len(SEEN) == 75
    index = get_reader("nus-wide").read(small_root, "train", None, "zsl")
    assert index.label_names == SEEN and index.meta["label_seen"] == [True] * 925
    assert index.image_ids == ["dog/0003_15", "actor/0001_11", "beach/0002_13"]  # TrainImagelist order
    assert index.image_paths[1] == "Flickr/actor/0001_11.jpg"
    # by hand: the concept-named tags ("dog", "beach", ...) are not seen labels
    assert labels_of(index, 0) == {"puppy", "nature", "blue"}
    assert labels_of(index, 1) == {"nature", "puppy"}
    assert labels_of(index, 2) == {"explore"}  # "sand" is a concept
    assert index.dense_mask().all()
    positives = dict(zip(index.label_names, index.positive_counts()))
    assert (positives["nature"], positives["puppy"], positives["explore"], positives["blue"]) == (2, 2, 1, 1)
    assert sum(positives.values()) == 6 and index.meta["images_without_positives"] == 0
    assert get_reader("nus-wide").read(small_root, "train", None, "gzsl").label_names == SEEN


def test_zsl_and_gzsl_test_sets(small_root):
    reader = get_reader("nus-wide")
    zsl = reader.read(small_root, "test", None, "zsl")
    assert zsl.label_names == CONCEPTS and zsl.meta["label_seen"] == [False] * 81
    assert [labels_of(zsl, r) for r in range(3)] == [{"sky"}, {"beach", "ocean"}, {"animal"}]
    gzsl = reader.read(small_root, "test", None, "gzsl")
    assert gzsl.label_names == SEEN + CONCEPTS and gzsl.num_labels == 1006
    assert gzsl.meta["label_seen"] == [True] * 925 + [False] * 81
    # F: tags blue, nature + concept sky; B: tags sand, beach, ocean (all concept-named, so
    # not seen labels) + concepts beach, ocean; D: no tag + concept animal
    assert [labels_of(gzsl, r) for r in range(3)] == [{"blue", "nature", "sky"}, {"beach", "ocean"}, {"animal"}]
    assert gzsl.image_ids == ["sky/0009_16", "beach/0001_12", "cat/0001_14"]


def test_each_task_reads_only_its_files(small_root):
    reader = get_reader("nus-wide")
    tag_files = [small_root / "NUS_WID_Tags/TagList1k.txt", small_root / "ImageList/Imagelist.txt",
                 small_root / "NUS_WID_Tags/AllTags1k.txt"]
    label_files = [small_root / f"Groundtruth/TrainTestLabels/Labels_{c}_Test.txt" for c in CONCEPTS]
    head = [small_root / "ConceptsList/Concepts81.txt"]
    assert reader.annotation_files(small_root, "train", None, "zsl") == head + [small_root / "ImageList/TrainImagelist.txt"] + tag_files
    assert reader.annotation_files(small_root, "test", None, "zsl") == head + [small_root / "ImageList/TestImagelist.txt"] + label_files
    assert reader.annotation_files(small_root, "test", None, "gzsl") == head + [small_root / "ImageList/TestImagelist.txt"] + tag_files + label_files
    # zsl test never opens a tag file: it works without them
    for path in tag_files[::2]:
        path.unlink()
    assert len(reader.read(small_root, "test", None, "zsl")) == 3
    with pytest.raises(InputError, match="missing annotation file"):
        reader.read(small_root, "train", None, "zsl")


def test_missing_images_reported_and_dropped(small_root, tmp_path):
    for key in ("E", "C"):
        folder, name = IMAGES[key][0].split("\\")
        (small_root / "Flickr" / folder).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(small_root / "Flickr" / folder / name)
    s = summarize("nus-wide", small_root, split="train", task="zsl")
    assert s["images"] == 3 and s["missing_images"] == ["Flickr/actor/0001_11.jpg"]
    dropped = load_index(get_reader("nus-wide", drop_missing_images=True), small_root, "train", None, "zsl",
                         cache_dir=tmp_path / "cache")
    assert dropped.image_ids == ["dog/0003_15", "beach/0002_13"] and dropped.meta["missing_images"] == 1
    assert labels_of(dropped, 1) == {"explore"}
    again = load_index(get_reader("nus-wide", drop_missing_images=True), small_root, "train", None, "zsl",
                       cache_dir=tmp_path / "cache")
    assert again.image_ids == dropped.image_ids  # a cache hit, same content


def test_bad_input_names_file_and_line(small_root):
    reader = get_reader("nus-wide")
    label = small_root / "Groundtruth/TrainTestLabels/Labels_sky_Test.txt"
    label.write_text("0\n2\n0\n")
    with pytest.raises(InputError) as err:
        reader.read(small_root, "test", None, "zsl")
    assert str(err.value) == f"{label}:2: expected 0 or 1, got '2'"
    label.write_text("0\n1\n")
    with pytest.raises(InputError, match="2 label lines for the 3 images of TestImagelist.txt"):
        reader.read(small_root, "test", None, "zsl")
    tags = small_root / "NUS_WID_Tags/AllTags1k.txt"
    lines = tags.read_text().split("\n")
    lines[3] = lines[3][2:]  # row 4: 999 values
    tags.write_text("\n".join(lines))
    with pytest.raises(InputError) as err:
        reader.read(small_root, "train", None, "zsl")
    assert str(err.value) == f"{tags}:4: expected 1000 values (0 or 1), got 999"
    listed = small_root / "ImageList/TrainImagelist.txt"
    listed.write_text(listed.read_text() + "zebra\\0001_99.jpg\n")
    with pytest.raises(InputError) as err:
        reader.read(small_root, "train", None, "zsl")
    assert str(err.value) == f"{listed}:4: image 'zebra/0001_99.jpg' is not in Imagelist.txt"
    with pytest.raises(InputError, match="unknown nus-wide task 'tags'"):
        summarize("nus-wide", small_root, task="tags")


# --------------------------------------------------------------------------- synthetic
@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    return write_synthetic("nus-wide", tmp_path_factory.mktemp("s") / "nus", images=60, seed=5)


def test_synth_layout_and_syntax(synth_root):
    image_list = (synth_root / "ImageList" / "Imagelist.txt").read_bytes()
    assert image_list.startswith(b"C:\\ImageData\\Flickr\\") and image_list.count(b"\r\n") == 60
    train = (synth_root / "ImageList" / "TrainImagelist.txt").read_bytes().split(b"\r\n")
    assert b"\\" in train[0] and b"/" not in train[0]
    assert (synth_root / "ConceptsList" / "Concepts81.txt").read_bytes() == (FIXTURES / "ConceptsList/Concepts81.txt").read_bytes()
    rows = (synth_root / "NUS_WID_Tags" / "AllTags1k.txt").read_text().splitlines()
    assert len(rows) == 60 and all(len(r.split()) == 1000 for r in rows)
    with np.load(synth_root / "fashionbench_label_vectors.npz", allow_pickle=False) as z:
        assert z["names"].tolist() == SEEN + CONCEPTS and z["vectors"].shape == (1006, 300)


def test_synth_round_trip(synth_root):
    marker = json.loads((synth_root / "fashionbench_synthetic.json").read_text())["expected"]["splits"]
    for split in ("train", "test"):
        want = marker[split]
        s = summarize("nus-wide", synth_root, split=split, task="concepts81")
        assert s["images"] == want["images"] and s["positives"] == want["concepts81"]["positives"]
        assert sorted(s["missing_images"]) == want["missing_images"]
        g = summarize("nus-wide", synth_root, split=split, task="gzsl")
        expect = want["seen_tags"]["positives"] + (want["concepts81"]["positives"] if split == "test" else [])
        assert g["positives"] == expect
    assert sum(len(marker[s]["missing_images"]) for s in marker) >= 1
    # independently of the marker: the images of a concept's train file, counted in plain Python
    ones = sum(line == "1" for line in (synth_root / "Groundtruth/TrainTestLabels/Labels_sky_Train.txt").read_text().splitlines())
    assert summarize("nus-wide", synth_root, split="train", task="concepts81")["positives"][CONCEPTS.index("sky")] == ones


def test_synth_pixels_carry_the_label_code(synth_root):
    """Each grating's measured amplitude follows the contrast its labels' vectors set: the
    writer's code rebuilt from the files (AllTags1k + AllLabels, Imagelist order)."""
    from datamodules.synth.nus_wide import _gratings, load_label_vectors, semantic_codes, semantic_projection, standardise

    labels = SEEN + CONCEPTS
    column = {name: k for k, name in enumerate(labels)}  # a concept-named tag is its concept
    paths = ["Flickr/" + "/".join(line.strip().split("\\")[-2:])
             for line in (synth_root / "ImageList/Imagelist.txt").read_text().splitlines()]
    positive = np.zeros((len(paths), len(labels)), dtype=bool)
    for r, row in enumerate((synth_root / "NUS_WID_Tags/AllTags1k.txt").read_text().splitlines()):
        for tag, value in zip(TAGS, row.split()):
            positive[r, column[tag]] |= value == "1"
    for concept in CONCEPTS:
        values = (synth_root / f"Groundtruth/AllLabels/Labels_{concept}.txt").read_text().split()
        positive[:, column[concept]] |= np.array(values) == "1"
    vec = dict(zip(*load_label_vectors()))
    vectors = np.stack([vec[n] for n in labels])
    codes = standardise(semantic_codes(positive, vectors, semantic_projection(vectors)))
    contrast = 1 / (1 + np.exp(-1.7 * codes))
    cos, sin, colours = _gratings(96, codes.shape[1])
    rows, amplitude = [], []
    for r, path in enumerate(paths):
        if (synth_root / path).is_file():
            pixels = np.asarray(Image.open(synth_root / path).convert("RGB"), dtype=np.float64)
            pixels -= pixels.mean(axis=(0, 1))
            a = np.einsum("hwc,khw,kc->k", pixels, cos, colours)
            b = np.einsum("hwc,khw,kc->k", pixels, sin, colours)
            rows.append(r)
            amplitude.append(np.hypot(a, b))
    amplitude = np.stack(amplitude)
    for k in range(codes.shape[1]):
        assert np.corrcoef(amplitude[:, k], contrast[rows, k])[0, 1] > 0.9, k


def test_datamodule_zero_shot_splits(synth_root, tmp_path):
    from datamodules.nus_wide import NUSWideDataModule

    dm = NUSWideDataModule(str(synth_root), task="zsl", batch_size=4, num_workers=0, image_size=32,
                           cache_dir=str(tmp_path / "cache"), test_sets={"zsl": {"split": "test"}, "gzsl": {"split": "test", "task": "gzsl"}})
    assert dm.dataset_name == "nus-wide" and dm.num_labels == 925 and dm.is_synthetic
    marker = json.loads((synth_root / "fashionbench_synthetic.json").read_text())["expected"]["splits"]
    assert dm.n_train == marker["train"]["images"] - len(marker["train"]["missing_images"])  # missing ones dropped
    gzsl = dm.split_index("test", task="gzsl")
    assert gzsl.num_labels == 1006 and gzsl.meta["missing_images"] == len(marker["test"]["missing_images"])
