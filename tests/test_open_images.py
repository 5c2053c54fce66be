"""Open Images reader on hand-written real-format CSVs (the real 7,186 / 400 label lists),
its block parser against a plain-Python reference, bad input, the memory-mapped cache
(a hit trusts the stored key and does not re-validate; a stale file is still rebuilt),
the packed string tables, and the synthetic writer.
"""
from __future__ import annotations

import csv
import json
import logging
import pickle
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

import datamodules.index as index_module
from datamodules.index import LabelIndex, PackedStrings, TemplateStrings, load_index
from datamodules.readers.open_images import label_csv_path, parse_label_csv
from datamodules.registry import get_reader
from datamodules.summary import summarize
from datamodules.synth import write_synthetic
from fashionbench.errors import InputError

FIXTURES = Path(__file__).parent / "fixtures" / "open_images"
TRAINABLE = (FIXTURES / "2018_04" / "classes-trainable.txt").read_text().split()
UNSEEN = (FIXTURES / "2018_04" / "unseen_400_mids.txt").read_text().split()
APPLE, AIRPLANE = "/m/014j1m", "/m/0cmf2"      # trainable
FAUNA, FLORA = "/m/035qhg", "/m/03bmqb"         # unseen 1 and 2
JERKY = "/m/016dld"                             # neither

HAND = """ImageID,Source,LabelName,Confidence
000002b66c9c498e,verification,/m/014j1m,0
000002b66c9c498e,verification,/m/0cmf2,1
000002b66c9c498e,crowdsource-verification,/m/0cmf2,1
000002b97e5471a0,verification,/m/035qhg,1
000002b97e5471a0,verification,/m/0cmf2,0
000002b97e5471a0,verification,/m/0cmf2,1
000002c707c9895e,verification,/m/016dld,1
00000b4dcff7f799,verification,/m/03bmqb,0
"""
IMAGE_1, IMAGE_2, IMAGE_3, IMAGE_4 = "000002b66c9c498e", "000002b97e5471a0", "000002c707c9895e", "00000b4dcff7f799"


@pytest.fixture()
def oi_root(tmp_path):
    root = tmp_path / "oi"
    shutil.copytree(FIXTURES / "2018_04", root / "2018_04")
    (root / "2018_04" / "train").mkdir()
    label_csv_path(root, "train").write_text(HAND)
    return root


def by_label(summary, mid):
    k = summary["label_names"].index(mid)
    return summary["positives"][k], summary["ignored"][k]


def test_multilabel_counts_by_hand(oi_root):
    s = summarize("open-images", oi_root, task="multilabel")
    assert s["split"] == "train" and s["label_names"] == TRAINABLE and s["labels"] == 7186
    # images with a row for a trainable label: 1 (Apple, Airplane) and 2 (Airplane); 3 has
    # only Jerky, 4 only Flora
    assert s["images"] == 2
    assert by_label(s, AIRPLANE) == (2, 0)  # 1: positive twice; 2: 0 then 1 -> the positive wins
    assert by_label(s, APPLE) == (0, 1)     # 1: verified negative; 2: unknown
    assert sum(s["positives"]) == 2 and sum(s["ignored"]) == 2 * 7186 - 3
    index = get_reader("open-images").read(oi_root, "train", None, "multilabel")
    assert index.image_ids == [IMAGE_1, IMAGE_2] and index.image_paths[1] == f"images/train/{IMAGE_2}.jpg"
    assert index.meta["rows"] == 8 and index.meta["ignored_rows"] == 3  # Fauna, Jerky, Flora
    assert index.meta["duplicate_rows"] == 2 and index.meta["conflicting_pairs"] == 1
    assert index.meta["label_display_names"][TRAINABLE.index(AIRPLANE)] == "Airplane"
    assert "label_seen" not in index.meta and not index.known_by_default
    mask, target = index.dense_mask(), index.dense_targets()
    assert mask.sum() == 3 and mask[0, TRAINABLE.index(APPLE)] and not mask[1, TRAINABLE.index(APPLE)]
    assert target[:, TRAINABLE.index(AIRPLANE)].tolist() == [1, 1] and target.sum() == 2


def test_zsl_and_gzsl_label_sets(oi_root):
    z = summarize("open-images", oi_root, task="zsl")
    assert z["label_names"] == UNSEEN and z["labels"] == 400
    assert z["images"] == 2  # 2 (Fauna) and 4 (Flora)
    assert by_label(z, FAUNA) == (1, 1) and by_label(z, FLORA) == (0, 1)
    assert sum(z["ignored"]) == 2 * 400 - 2
    g = summarize("open-images", oi_root, task="gzsl")
    assert g["label_names"] == TRAINABLE + UNSEEN and g["images"] == 3  # 1, 2 and 4
    assert by_label(g, AIRPLANE) == (2, 1) and by_label(g, FAUNA) == (1, 2) and by_label(g, APPLE) == (0, 2)
    index = get_reader("open-images").read(oi_root, "train", None, "gzsl")
    assert index.meta["label_seen"] == [True] * 7186 + [False] * 400
    assert index.image_ids == [IMAGE_1, IMAGE_2, IMAGE_4] and index.meta["ignored_rows"] == 1  # Jerky


def test_conflicts_are_one_warning(oi_root, caplog):
    with caplog.at_level(logging.WARNING):
        get_reader("open-images").read(oi_root, "train", None, "multilabel")
    warnings = [r for r in caplog.records if "conflicting" in r.getMessage()]
    assert len(warnings) == 1 and ": 1 (image, label) pairs" in warnings[0].getMessage()


def test_crlf_quotes_bom_column_order_and_no_final_newline(oi_root):
    rows = list(csv.reader(HAND.splitlines()))
    header, body = rows[0], rows[1:]
    order = [2, 0, 3, 1]  # LabelName,ImageID,Confidence,Source
    text = "\ufeff" + ",".join(header[k] for k in order) + "\r\n" + "\r\n".join(
        ",".join(f'"{r[k]}"' if k == 0 else r[k] for k in order) for r in body)
    label_csv_path(oi_root, "train").write_text(text, newline="")
    s = summarize("open-images", oi_root, task="gzsl")
    assert s["images"] == 3 and by_label(s, AIRPLANE) == (2, 1) and by_label(s, FAUNA) == (1, 2)


def test_missing_images_reported_and_dropped(oi_root, tmp_path):
    folder = oi_root / "images" / "train"
    folder.mkdir(parents=True)
    (folder / f"{IMAGE_2}.jpg").write_bytes(b"")
    s = summarize("open-images", oi_root, task="gzsl")
    assert s["missing_images"] == [f"images/train/{IMAGE_1}.jpg", f"images/train/{IMAGE_4}.jpg"]
    reader = get_reader("open-images", drop_missing_images=True)
    assert folder in reader.annotation_files(oi_root, "train", None, "gzsl")
    index = load_index(reader, oi_root, "train", None, "gzsl", cache_dir=tmp_path / "cache")
    assert index.image_ids == [IMAGE_2] and index.meta["missing_images"] == 2 and index.meta["listed_images"] == 3
    assert index.dense_targets(0)[0, TRAINABLE.index(AIRPLANE)] == 1 and index.dense_mask().sum() == 2
    (folder / f"{IMAGE_4}.jpg").write_bytes(b"")  # a new file changes the folder: rebuilt
    assert load_index(reader, oi_root, "train", None, "gzsl", cache_dir=tmp_path / "cache").image_ids == [IMAGE_2, IMAGE_4]


@pytest.mark.parametrize("line, problem", [
    ("000002b66c9c498e,verification,/m/014j1m,0.7", "Confidence must be 0 or 1, got '0.7'"),
    ("000002b66c9c498e,verification,/m/014j1m", "expected 4 comma-separated fields, got 3"),
    (",verification,/m/014j1m,1", "empty ImageID"),
    ("000002b66c9c498e,verification,,1", "empty LabelName"),
])
def test_bad_rows_name_the_line(oi_root, line, problem):
    lines = HAND.splitlines()
    lines.insert(5, line)  # becomes line 6
    path = label_csv_path(oi_root, "train")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as err:
        get_reader("open-images").read(oi_root, "train", None, "multilabel")
    assert str(err.value) == f"{path}:6: {problem}"


def test_bad_header_and_missing_files(oi_root):
    path = label_csv_path(oi_root, "train")
    path.write_text("ImageID,Source,Label,Confidence\n")
    with pytest.raises(InputError, match=r":1: header must name ImageID, LabelName and Confidence"):
        get_reader("open-images").read(oi_root, "train", None, "multilabel")
    with pytest.raises(InputError) as err:
        summarize("open-images", oi_root, split="test")
    assert str(err.value) == f"{label_csv_path(oi_root, 'test')}: missing annotation file"
    (oi_root / "2018_04" / "unseen_400_mids.txt").write_text(f"{FAUNA}\n{AIRPLANE}\n{FAUNA}\n")
    with pytest.raises(InputError, match=r"unseen_400_mids.txt:3: duplicate label '/m/035qhg'"):
        get_reader("open-images").read(oi_root, "train", None, "zsl")


def reference(path: Path, names: list[str]):
    """Plain-Python reading of a labels CSV: images in order of first task row, unique
    pairs (positive wins), row statistics."""
    column = {n: k for k, n in enumerate(names)}
    order, values, rows, ignored, repeats = {}, {}, 0, 0, 0
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        next(reader)
        for image, _, label, conf in reader:
            rows += 1
            if label not in column:
                ignored += 1
                continue
            order.setdefault(image, len(order))
            key = (order[image], column[label])
            repeats += key in values
            values.setdefault(key, set()).add(conf)
    keys = sorted(values)
    stats = {"rows": rows, "ignored_rows": ignored, "duplicate_rows": repeats,
             "conflicting_pairs": sum(values[k] == {"0", "1"} for k in keys)}
    return list(order), keys, ["1" in values[k] for k in keys], stats


@pytest.mark.parametrize("shuffle", [False, True])
def test_block_parser_matches_plain_python(tmp_path, shuffle):
    rng = random.Random(int(shuffle))
    mids = [f"/m/{k:0{rng.randint(3, 9)}x}" for k in range(120)]
    lines = []
    for _ in range(1500):
        image = f"{rng.getrandbits(64):016x}" if rng.random() < 0.9 else f"x{rng.randrange(10**6)}"
        for _ in range(rng.randint(1, 4)):
            lines.append(f"{image},verification,{rng.choice(mids)},{rng.choice('01')}")
        if rng.random() < 0.05:
            lines.append(lines[-1][:-1] + rng.choice("01"))  # a repeat, maybe conflicting
    if shuffle:
        rng.shuffle(lines)  # an image's rows scattered over the file and across blocks
    path = tmp_path / "labels.csv"
    path.write_text("ImageID,Source,LabelName,Confidence\n" + "\n".join(lines))
    names = mids[:80] + ["/m/never"]
    got = parse_label_csv(path, names, block_bytes=1 << 12)  # many blocks, lines cut at edges
    ids, keys, positive, stats = reference(path, names)
    assert got.image_ids.tolist() == ids and got.stats == stats
    assert list(zip(got.rows.tolist(), got.cols.tolist())) == keys and got.positive.tolist() == positive


# --------------------------------------------------------------------------- cache
def test_cache_hit_is_trusted_memory_mapped_and_a_stale_file_rebuilt(oi_root, tmp_path, monkeypatch):
    reader = get_reader("open-images")
    calls = {"read": 0, "validate": 0}
    real_read, real_validate = reader.read, LabelIndex._validate

    def counting_read(*args):
        calls["read"] += 1
        return real_read(*args)

    def counting_validate(self):
        calls["validate"] += 1
        return real_validate(self)

    monkeypatch.setattr(reader, "read", counting_read)
    monkeypatch.setattr(LabelIndex, "_validate", counting_validate)
    cache = tmp_path / "cache"
    first = load_index(reader, oi_root, "train", None, "gzsl", cache_dir=cache)
    assert calls["read"] == 1
    calls["validate"] = 0
    hit = load_index(reader, oi_root, "train", None, "gzsl", cache_dir=cache)
    assert calls == {"read": 1, "validate": 0}  # a hit: not re-read, not re-validated
    assert isinstance(hit.image_ids, PackedStrings) and isinstance(hit.image_paths, TemplateStrings)
    assert hit.image_ids == first.image_ids and list(hit.image_paths) == list(first.image_paths)
    np.testing.assert_array_equal(hit.dense_targets([2, 0]), first.dense_targets([2, 0]))
    np.testing.assert_array_equal(hit.dense_mask(), first.dense_mask())
    assert hit.meta == first.meta
    # appending a row makes the stored key stale: rebuilt, and the new row is there
    path = label_csv_path(oi_root, "train")
    path.write_text(path.read_text() + "00000b4dcff7f799,verification,/m/014j1m,1\n")
    stale = load_index(reader, oi_root, "train", None, "gzsl", cache_dir=cache)
    assert calls["read"] == 2 and len(list(cache.iterdir())) == 1
    assert stale.dense_targets(2)[0, TRAINABLE.index(APPLE)] == 1
    # the key is stored in the file: one written under another key is not trusted
    entry = next(cache.iterdir())
    LabelIndex.load(entry)  # loads without a key
    with pytest.raises(ValueError, match="stale"):
        LabelIndex.load(entry, cache_key="0" * 64)
    with np.load(entry, allow_pickle=False) as z:  # still an ordinary npz
        assert "pos_indptr" in z.files


def test_large_members_are_memory_mapped(tmp_path):
    n = 5000
    ids = PackedStrings.from_strings([f"{i:016x}" for i in range(n)])
    index = LabelIndex("toy", "t", ["a", "b"], TemplateStrings(ids, "images/t/", ".jpg"), ids,
                       np.arange(n + 1), np.zeros(n, np.int32), False, np.arange(n + 1), np.zeros(n, np.int32))
    index.save(tmp_path / "x.npz", cache_key="k")
    back = LabelIndex.load(tmp_path / "x.npz", cache_key="k")
    def mapped(array):
        while array is not None and not isinstance(array, np.memmap):
            array = getattr(array, "base", None)
        return array is not None

    for array in (back.pos_indptr, back.mask_indices, back.image_ids.blob):
        assert not array.flags.writeable and mapped(array)  # read-only pages of the cache file
    assert back.pos_indptr.ctypes.data % 64 == 0 == back.mask_indices.ctypes.data % 64  # aligned members
    assert back.image_paths[4999] == "images/t/0000000000001387.jpg" and back.image_ids.offsets is None


def test_index_format_bump_rebuilds(oi_root, tmp_path, monkeypatch):
    reader = get_reader("open-images")
    cache = tmp_path / "cache"
    load_index(reader, oi_root, "train", None, "zsl", cache_dir=cache)
    monkeypatch.setattr(index_module, "INDEX_FORMAT_VERSION", index_module.INDEX_FORMAT_VERSION + 1)
    with pytest.raises(ValueError, match="index format"):
        LabelIndex.load(next(cache.iterdir()))
    reads = []
    monkeypatch.setattr(reader, "read", lambda *a: reads.append(a) or LabelIndex.from_pairs(
        "open-images", "train", ["x"], [], [], [], []))
    assert len(load_index(reader, oi_root, "train", None, "zsl", cache_dir=cache)) == 0 and len(reads) == 1


def test_packed_strings_behave_like_lists():
    words = ["a", "bcd", "", "é", "zz"]
    packed = PackedStrings.from_strings(words)
    assert packed == words and words == packed and packed != words[:-1] and len(packed) == 5
    assert packed[1] == "bcd" and packed[-2] == "é" and packed[1:3] == ["bcd", ""] and list(reversed(packed))[0] == "zz"
    assert "é" in packed and packed.index("zz") == 4 and packed.take([4, 0]) == ["zz", "a"]
    fixed = PackedStrings.from_strings(["0f", "1e", "2d"])
    assert fixed.offsets is None and fixed.width == 2 and np.asarray(fixed).tolist() == ["0f", "1e", "2d"]
    paths = TemplateStrings(fixed, "images/train/", ".jpg")
    assert paths[2] == "images/train/2d.jpg" and paths.take([1]) == ["images/train/1e.jpg"]
    assert pickle.loads(pickle.dumps(paths)) == paths and pickle.loads(pickle.dumps(packed)) == words
    index = LabelIndex.from_pairs("toy", "t", ["x", "y"], paths, fixed, [0, 2], [1, 0], [0, 1, 2], [1, 1, 0],
                                  known_by_default=False)
    sub = index.subset([2, 0])
    assert sub.image_ids == ["2d", "0f"] and sub.image_paths == ["images/train/2d.jpg", "images/train/0f.jpg"]
    np.testing.assert_array_equal(sub.dense_targets(), [[1, 0], [0, 1]])
    with pytest.raises(ValueError, match="unique"):
        LabelIndex("toy", "t", ["x"], ["p", "q"], PackedStrings.from_strings(["a", "a"]),
                   np.zeros(3, np.int64), np.zeros(0, np.int32))


# --------------------------------------------------------------------------- synthetic
@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    return write_synthetic("open-images", tmp_path_factory.mktemp("s") / "oi", images=80, seed=2)


def test_synth_round_trip(synth_root):
    marker = json.loads((synth_root / "fashionbench_synthetic.json").read_text())["expected"]["splits"]
    trainable = (synth_root / "2018_04/classes-trainable.txt").read_text().split()
    unseen = (synth_root / "2018_04/unseen_400_mids.txt").read_text().split()
    for split in ("train", "validation", "test"):
        path = label_csv_path(synth_root, split)
        assert path.read_text().startswith("ImageID,Source,LabelName,Confidence\n")
        ids = [line.split(",")[0] for line in path.read_text().splitlines()[1:]]
        assert ids == sorted(ids) and all(len(i) == 16 for i in ids)
        for task, names in (("multilabel", trainable), ("zsl", unseen), ("gzsl", trainable + unseen)):
            s = summarize("open-images", synth_root, split=split, task=task)
            images, keys, positive, stats = reference(path, names)
            pos = np.bincount([k[1] for k, p in zip(keys, positive) if p], minlength=len(names)).tolist()
            known = np.bincount([k[1] for k in keys], minlength=len(names))
            assert (s["images"], s["positives"], s["ignored"]) == (len(images), pos, (len(images) - known).tolist())
            assert (s["images"], s["positives"], s["ignored"]) == (
                marker[split][task]["images"], marker[split][task]["positives"], marker[split][task]["ignored"])
            assert s["missing_images"] == []
    assert marker["train"]["zsl"]["images"] == 0  # unseen labels are never verified in train
    with np.load(synth_root / "fashionbench_label_vectors.npz", allow_pickle=False) as z:
        assert sorted(z["names"].tolist()) == sorted(trainable + unseen) and z["vectors"].shape[1] == 300


def test_datamodule_defaults(synth_root, tmp_path):
    from datamodules.open_images import OpenImagesDataModule

    dm = OpenImagesDataModule(str(synth_root), batch_size=4, num_workers=0, image_size=32,
                              cache_dir=str(tmp_path / "cache"), test_sets={"gzsl": {"split": "test", "task": "gzsl"}})
    assert dm.dataset_name == "open-images" and dm.task == "multilabel" and dm.num_labels == 62 and dm.is_synthetic
    assert (dm.train_split, dm.val_split) == ("train", "validation")
    test = dm.split_index("test", task="gzsl")
    assert test.num_labels == 78 and test.meta["missing_images"] == 0
