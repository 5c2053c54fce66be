"""LabelIndex (dense views, counts, subset, save/load, validation) and its cache."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from datamodules.index import LabelIndex, csr_from_pairs, load_index
from datamodules.registry import get_reader, reader_names
from fashionbench.errors import InputError

FIXTURES = Path(__file__).parent / "fixtures"


def small_index(**kw) -> LabelIndex:
    # 3 images x 4 labels; positives (0,1) (0,3) (2,0) with (0,1) repeated; (1,2) masked.
    args = dict(
        dataset="toy", split="train", label_names=["a", "b", "c", "d"],
        image_paths=["x/0.jpg", "x/1.jpg", "x/2.jpg"], image_ids=["i0", "i1", "i2"],
        pos_rows=[0, 2, 0, 0], pos_cols=[3, 0, 1, 1], mask_rows=[1], mask_cols=[2],
        meta={"root": "/r", "year": None},
    )
    args.update(kw)
    return LabelIndex.from_pairs(**args)


def test_dense_views_and_counts_known_by_default():
    index = small_index()
    assert len(index) == 3 and index.num_labels == 4
    np.testing.assert_array_equal(index.dense_targets(), [[0, 1, 0, 1], [0, 0, 0, 0], [1, 0, 0, 0]])
    assert index.dense_targets().dtype == np.uint8
    mask = np.ones((3, 4), bool)
    mask[1, 2] = False
    np.testing.assert_array_equal(index.dense_mask(), mask)
    np.testing.assert_array_equal(index.positive_counts(), [1, 1, 0, 1])
    np.testing.assert_array_equal(index.ignored_counts(), [0, 0, 1, 0])
    # positives / known: a 1/3, b 1/3, c 0/2, d 1/3
    np.testing.assert_allclose(index.label_frequencies(), [1 / 3, 1 / 3, 0.0, 1 / 3])
    np.testing.assert_array_equal(index.dense_targets([2, 0]), [[1, 0, 0, 0], [0, 1, 0, 1]])
    np.testing.assert_array_equal(index.dense_mask(1), [[True, True, False, True]])
    np.testing.assert_array_equal(index.dense_targets(-1), [[1, 0, 0, 0]])


def test_known_by_default_false_uses_exceptions_as_verified_entries():
    # Open-Images style: only the listed entries are known; positives must be among them.
    index = small_index(pos_rows=[0, 2], pos_cols=[1, 0], mask_rows=[0, 0, 1, 2], mask_cols=[1, 3, 0, 0],
                        known_by_default=False)
    expected_mask = np.zeros((3, 4), bool)
    expected_mask[[0, 0, 1, 2], [1, 3, 0, 0]] = True
    np.testing.assert_array_equal(index.dense_mask(), expected_mask)
    # ignored = N - listed: a 3-2, b 3-1, c 3-0, d 3-1
    np.testing.assert_array_equal(index.ignored_counts(), [1, 2, 3, 2])
    np.testing.assert_allclose(index.label_frequencies(), [1 / 2, 1 / 1, 0.0, 0 / 1])


def test_csr_from_pairs_matches_python_sets():
    rng = np.random.default_rng(0)
    rows, cols = rng.integers(0, 7, 50), rng.integers(0, 5, 50)
    indptr, indices = csr_from_pairs(rows, cols, 9)
    for r in range(9):
        assert indices[indptr[r]:indptr[r + 1]].tolist() == sorted({int(c) for rr, c in zip(rows, cols) if rr == r})
    assert indices.dtype == np.int32 and indptr.dtype == np.int64


def test_subset_keeps_rows_in_given_order():
    sub = small_index().subset([2, 1])
    assert sub.image_ids == ["i2", "i1"] and sub.image_paths == ["x/2.jpg", "x/1.jpg"]
    np.testing.assert_array_equal(sub.dense_targets(), [[1, 0, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(sub.dense_mask(), [[True] * 4, [True, True, False, True]])


def test_single_label_index():
    index = LabelIndex.from_class_ids("toy", "train", ["a", "b", "c"], ["0", "1"], ["0", "1"], [2, 0])
    assert index.is_single_label
    np.testing.assert_array_equal(index.dense_targets(), [[0, 0, 1], [1, 0, 0]])
    assert index.subset([1]).class_ids.tolist() == [0]


@pytest.mark.parametrize("bad, match", [
    (dict(image_ids=["i0", "i0", "i2"]), "unique"),
    (dict(pos_rows=[0], pos_cols=[4]), "out of range"),
    (dict(pos_rows=[1], pos_cols=[2]), "known"),  # a positive on the masked entry
    (dict(image_paths=["x/0.jpg"]), "image paths"),
])
def test_validation_rejects_bad_indices(bad, match):
    with pytest.raises(ValueError, match=match):
        small_index(**bad)


def test_validation_rejects_unsorted_rows():
    with pytest.raises(ValueError, match="sorted"):
        LabelIndex("toy", "t", ["a", "b"], ["p"], ["i"], np.array([0, 2]), np.array([1, 0]))


def test_save_load_round_trip_without_pickle(tmp_path):
    index = small_index(meta={"root": "/r", "year": 2007, "files": ["a.txt"]})
    path = tmp_path / "sub" / "index.npz"
    index.save(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["index.npz"]  # no temp file left
    np.load(path, allow_pickle=False)  # loads without pickle
    back = LabelIndex.load(path)
    assert back.image_ids == index.image_ids and back.image_paths == index.image_paths
    assert back.label_names == index.label_names and back.meta == index.meta
    np.testing.assert_array_equal(back.dense_targets(), index.dense_targets())
    np.testing.assert_array_equal(back.dense_mask(), index.dense_mask())
    single = LabelIndex.from_class_ids("toy", "train", ["a", "b"], ["0"], ["0"], [1])
    single.save(tmp_path / "s.npz")
    assert LabelIndex.load(tmp_path / "s.npz").class_ids.tolist() == [1]


def test_registry_lists_known_names_for_unknown_dataset():
    assert {"voc", "coco"} <= set(reader_names())
    with pytest.raises(InputError, match=r"unknown dataset 'nope'; known: .*coco.*voc"):
        get_reader("nope")


# --------------------------------------------------------------------------- cache
class CountingReader:
    """Wraps a reader and counts calls to read()."""

    def __init__(self, reader):
        self.inner, self.reads = reader, 0
        for attr in ("name", "version", "options", "resolve", "annotation_files"):
            setattr(self, attr, getattr(reader, attr))

    def read(self, *args):
        self.reads += 1
        return self.inner.read(*args)


@pytest.fixture()
def voc_root(tmp_path):
    root = tmp_path / "voc"
    shutil.copytree(FIXTURES / "voc", root)
    return root


def test_cache_hit_miss_and_invalidation(voc_root, tmp_path):
    cache = tmp_path / "cache"
    reader = CountingReader(get_reader("voc"))
    first = load_index(reader, voc_root, "trainval", 2007, None, cache_dir=cache)
    assert reader.reads == 1 and len(list(cache.glob("*.npz"))) == 1
    again = load_index(reader, voc_root, "trainval", 2007, None, cache_dir=cache)
    assert reader.reads == 1  # hit
    assert again.image_ids == first.image_ids
    np.testing.assert_array_equal(again.dense_targets(), first.dense_targets())

    # touching one annotation file (mtime only) invalidates
    xml = voc_root / "VOCdevkit/VOC2007/Annotations/000002.xml"
    st = xml.stat()
    os.utime(xml, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    load_index(reader, voc_root, "trainval", 2007, None, cache_dir=cache)
    assert reader.reads == 2
    load_index(reader, voc_root, "trainval", 2007, None, cache_dir=cache)
    assert reader.reads == 2

    # editing it changes the labels and the cached index follows
    xml.write_text(xml.read_text().replace("<name>train</name>", "<name>bus</name>"))
    changed = load_index(reader, voc_root, "trainval", 2007, None, cache_dir=cache)
    assert reader.reads == 3
    row = changed.image_ids.index("000002")
    assert [changed.label_names[c] for c in np.flatnonzero(changed.dense_targets(row)[0])] == ["bus"]

    # another split is another entry; rebuild=True always reads
    load_index(reader, voc_root, "test", 2007, None, cache_dir=cache)
    assert reader.reads == 4
    load_index(reader, voc_root, "test", 2007, None, cache_dir=cache, rebuild=True)
    assert reader.reads == 5


def test_corrupt_cache_file_is_rebuilt(voc_root, tmp_path):
    cache = tmp_path / "cache"
    reader = CountingReader(get_reader("voc"))
    load_index(reader, voc_root, "trainval", 2007, None, cache_dir=cache)
    (entry,) = cache.glob("*.npz")
    entry.write_bytes(b"not an npz")
    index = load_index(reader, voc_root, "trainval", 2007, None, cache_dir=cache)
    assert reader.reads == 2 and len(index) == 5
    LabelIndex.load(entry)  # rewritten and valid again


def test_cache_dir_from_environment(voc_root, tmp_path, monkeypatch):
    monkeypatch.setenv("FASHIONBENCH_CACHE", str(tmp_path / "env-cache"))
    index = load_index("voc", voc_root, "trainval", 2007)
    assert len(index) == 5 and len(list((tmp_path / "env-cache").glob("voc-trainval-*.npz"))) == 1


def test_cache_key_fails_cleanly_for_missing_annotation(voc_root, tmp_path):
    (voc_root / "VOCdevkit/VOC2007/Annotations/000003.xml").unlink()
    with pytest.raises(InputError) as err:
        load_index("voc", voc_root, "trainval", 2007, cache_dir=tmp_path / "c")
    assert str(err.value).startswith(f"{voc_root / 'VOCdevkit/VOC2007/Annotations/000003.xml'}: missing annotation file")
