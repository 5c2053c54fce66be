"""DeepFashion reader, pattern groups and synthetic writer.

Expected values come from: the real cloth lists (tests/fixtures/deepfashion, counted by hand:
20 upper (Anorak..Turtleneck) / 16 lower (Capris..Trunks) / 14 full-body (Caftan..Sundress) categories); a hand-written real-format list set below
whose counts are worked out by hand in comments; and, for the synthetic root, counts taken
from the written files with plain Python (not from the writer's own records).

Category ids of the real list used below (1-based): 3 Blouse, 18 Tee, 29 Joggers, 32 Shorts,
41 Dress.
"""
from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from datamodules.readers import deepfashion as df
from datamodules.registry import get_reader
from datamodules.summary import summarize
from datamodules.synth import MARKER_FILE, write_synthetic
from datamodules.synth.images import glyph_style
from fashionbench.cli import main
from fashionbench.errors import InputError

FIXTURES = Path(__file__).parent / "fixtures" / "deepfashion"
PAPER_GROUPS = ["Solid", "Plaid", "Floral", "Stripe", "Check", "Graphic", "Tie Dye", "Animal",
                "Words/Letters", "Dot", "Paisley"]


def plain_cloth(path: Path) -> list[tuple[str, int]]:
    """Independent parse of a cloth list: (name, type) from the right of each data line."""
    rows = []
    for line in path.read_text().splitlines()[2:]:
        if line.strip():
            name, kind = line.rsplit(None, 1)
            rows.append((name.strip(), int(kind)))
    return rows


REAL_CATEGORIES = [n for n, _ in plain_cloth(FIXTURES / "Anno" / "list_category_cloth.txt")]
REAL_ATTRIBUTES = [n for n, _ in plain_cloth(FIXTURES / "Anno" / "list_attr_cloth.txt")]


# --------------------------------------------------------------------------- real cloth lists
def test_real_cloth_lists():
    cats = df.read_cloth_list(FIXTURES / "Anno" / "list_category_cloth.txt", "category")
    assert len(cats.names) == 50 and cats.names[:3] == ["Anorak", "Blazer", "Blouse"] and cats.names[-1] == "Sundress"
    assert cats.names.index("Button-Down") == 4 and cats.names.index("Dress") == 40
    assert Counter(cats.type_names) == {"upper": 20, "lower": 16, "full body": 14}
    assert cats.type_names[cats.names.index("Capris")] == "lower" and cats.type_names[-1] == "full body"
    attrs = df.read_cloth_list(FIXTURES / "Anno" / "list_attr_cloth.txt", "attribute")
    assert len(attrs.names) == 1000 and attrs.names[:4] == ["a-line", "abstract", "abstract chevron",
                                                          "abstract chevron print"]
    # names with spaces survive; rows with trailing spaces ("floral flutter      1       ") too
    assert attrs.names[366] == "floral flutter" and attrs.type_names[366] == "texture"
    assert attrs.names[-1] == "zippered" and attrs.type_names[-1] == "part"
    assert "tie-dye" in attrs.names and "polka dot" in attrs.names
    assert [(n, ["texture", "fabric", "shape", "part", "style"][t - 1])
            for n, t in plain_cloth(attrs.path)] == list(zip(attrs.names, attrs.type_names))
    # the package copy the synthetic writer uses is the real list, byte for byte
    for name in ("list_category_cloth.txt", "list_attr_cloth.txt"):
        assert (df.CLOTH_DIR / name).read_bytes() == (FIXTURES / "Anno" / name).read_bytes()
    # the one real list_category_img row: name padded with a run of spaces, then the id
    row = (FIXTURES / "list_category_img_one_row.txt").read_text()
    assert row.split() == ["img/Sheer_Pleated-Front_Blouse/img_00000001.jpg", "3"] and "   " in row


def test_pattern_mapping_names_exist_in_the_real_list():
    raw = yaml.safe_load(df.PATTERNS_FILE.read_text())["groups"]
    assert list(raw) == PAPER_GROUPS
    for group, names in raw.items():
        assert names and len(set(names)) == len(names), group
        missing = [n for n in names if n not in REAL_ATTRIBUTES]
        assert not missing, (group, missing)
    groups, lines = df.load_pattern_groups()
    assert groups == raw
    text = df.PATTERNS_FILE.read_text().splitlines()
    assert all(name in text[line - 1] for (_, name), line in lines.items())


# --------------------------------------------------------------------------- hand-written root
SMALL_ATTR_CLOTH = (
    "6\n"
    "attribute_name  attribute_type\n"
    "a-line                       3\n"
    "abstract chevron print       1\n"
    "tie-dye                      2   \n"
    "floral print                 1\n"
    "solid                        5\n"
    "zip-up                       4\n"
)
SMALL_ATTRS = ["a-line", "abstract chevron print", "tie-dye", "floral print", "solid", "zip-up"]
#: name: (split, category id, the 6 attribute values, box); partition order
IMAGES = {
    "img/Sheer_Pleated-Front_Blouse/img_00000001.jpg": ("train", 3, "-1 -1 -1 -1  1  0", "072 079 232 273"),
    "img/Sheer_Pleated-Front_Blouse/img_00000002.jpg": ("val", 3, "-1 -1 -1 -1  1 -1", "011 020 190 280"),
    "img/Striped_A-Line_Dress/img_00000001.jpg": ("train", 41, " 1 -1 -1  0 -1 -1", "000 000 300 300"),
    "img/Floral_Print_Chiffon_Shorts/img_00000001.jpg": ("test", 32, "-1 -1 -1  1 -1  1", "050 100 250 290"),
    "img/Tie-Dye_Drawstring_Joggers/img_00000001.jpg": ("train", 29, "-1 -1  1 -1  0  1", "030 010 170 299"),
    "img/Abstract_Chevron_Print_Tee/img_00000001.jpg": ("test", 18, "-1  1  0 -1 -1 -1", "045 061 205 250"),
}
NAMES = list(IMAGES)
CAT_ORDER = NAMES[::-1]            # list_category_img lists the images in reverse
ATTR_ORDER = NAMES[2:] + NAMES[:2]  # list_attr_img rotated by two


def list_text(header: str, rows: list[tuple[str, str]], sep: str | None = None, newline: str = "\n",
              trailing_blank: bool = False) -> str:
    """A real-format list: count line, header line, ``name`` padded to 71 (or ``sep``), value."""
    lines = [str(len(rows)), header] + [(f"{n:<71}" if sep is None else n + sep) + v for n, v in rows]
    return newline.join(lines) + newline + (newline if trailing_blank else "")


def write_hand_root(root: Path, attr_cloth: str = SMALL_ATTR_CLOTH, attr_rows: dict[str, str] | None = None) -> Path:
    anno, evl = root / "Anno", root / "Eval"
    anno.mkdir(parents=True)
    evl.mkdir()
    shutil.copy(FIXTURES / "Anno" / "list_category_cloth.txt", anno)
    (anno / "list_attr_cloth.txt").write_text(attr_cloth)
    values = attr_rows or {n: IMAGES[n][2] for n in NAMES}
    (evl / "list_eval_partition.txt").write_text(
        list_text("image_name  evaluation_status", [(n, IMAGES[n][0]) for n in NAMES]))
    (anno / "list_category_img.txt").write_text(
        list_text("image_name  category_label", [(n, str(IMAGES[n][1])) for n in CAT_ORDER], sep="\t  "))
    (anno / "list_attr_img.txt").write_text(
        list_text("image_name  attribute_labels", [(n, values[n]) for n in ATTR_ORDER], trailing_blank=True))
    (anno / "list_bbox.txt").write_bytes(
        list_text("image_name  x_1  y_1  x_2  y_2", [(n, IMAGES[n][3]) for n in NAMES], newline="\r\n").encode())
    return root


@pytest.fixture()
def hand_root(tmp_path):
    return write_hand_root(tmp_path / "deepfashion")


def one_hot(index: int, size: int, value: int = 1) -> list[int]:
    out = [0] * size
    out[index] = value
    return out


def test_hand_written_category(hand_root):
    # train = Blouse #1, Dress, Joggers (partition order); val = Blouse #2; test = Shorts, Tee
    s = summarize("deepfashion", hand_root, split="train", task="category")
    assert list(s) == ["dataset", "split", "images", "labels", "label_names", "positives", "ignored", "missing_images"]
    assert s["dataset"] == "deepfashion" and s["images"] == 3 and s["labels"] == 50
    assert s["label_names"] == REAL_CATEGORIES
    expected = [0] * 50
    for cid in (3, 41, 29):
        expected[cid - 1] += 1
    assert s["positives"] == expected and s["ignored"] == [0] * 50
    assert s["missing_images"] == NAMES[:1] + NAMES[2:3] + NAMES[4:5]  # no JPEG was written
    assert summarize("deepfashion", hand_root, split="val", task="category")["positives"] == one_hot(2, 50)
    test = summarize("deepfashion", hand_root, split="test", task="category")["positives"]
    assert test == [a + b for a, b in zip(one_hot(31, 50), one_hot(17, 50))]

    index = get_reader("deepfashion").read(hand_root, "train", None, "category")
    assert index.is_single_label and index.class_ids.tolist() == [2, 40, 28]
    assert index.image_ids == index.image_paths == [NAMES[0], NAMES[2], NAMES[4]]
    assert index.meta["label_parents"][:3] == ["upper"] * 3 and index.meta["label_parents"][40] == "full body"
    assert index.item_arrays["bbox"].tolist() == [[72, 79, 232, 273], [0, 0, 300, 300], [30, 10, 170, 299]]


def test_hand_written_attributes(hand_root):
    # values per image (a-line, abstract chevron print, tie-dye, floral print, solid, zip-up):
    #   train: Blouse#1 -1 -1 -1 -1 1 0 | Dress 1 -1 -1 0 -1 -1 | Joggers -1 -1 1 -1 0 1
    #   val:   Blouse#2 -1 -1 -1 -1 1 -1
    #   test:  Shorts -1 -1 -1 1 -1 1 | Tee -1 1 0 -1 -1 -1
    want = {
        "train": ([1, 0, 1, 0, 1, 1], [0, 0, 0, 1, 1, 1]),
        "val": ([0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0]),
        "test": ([0, 1, 0, 1, 0, 1], [0, 0, 1, 0, 0, 0]),
    }
    for split, (positives, ignored) in want.items():
        s = summarize("deepfashion", hand_root, split=split, task="attributes")
        assert s["label_names"] == SMALL_ATTRS and (s["positives"], s["ignored"]) == (positives, ignored), split
    index = get_reader("deepfashion").read(hand_root, "train", None, "attributes")
    assert index.meta["label_parents"] == ["shape", "texture", "fabric", "texture", "style", "part"]
    np.testing.assert_array_equal(index.dense_targets(), [[0, 0, 0, 0, 1, 0], [1, 0, 0, 0, 0, 0], [0, 0, 1, 0, 0, 1]])
    np.testing.assert_array_equal(index.dense_mask(), [[1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 1, 1], [1, 1, 1, 1, 0, 1]])
    assert index.item_arrays["bbox"].shape == (3, 4)


def attr_line(setting: dict[str, int]) -> str:
    values = [-1] * len(REAL_ATTRIBUTES)
    for name, value in setting.items():
        values[REAL_ATTRIBUTES.index(name)] = value
    return " ".join("%2d" % v for v in values)


PATTERN_ROWS = {
    NAMES[0]: {"solid": 1},                                   # train: Solid
    NAMES[1]: {"striped": 1, "polka dot": 0},                 # val: Stripe; Dot unknown (a 0, no 1)
    NAMES[2]: {"floral paisley": 1, "a-line": 1},             # train: Floral and Paisley (one attribute, two groups)
    NAMES[3]: {"logo": 0},                                    # test: Words/Letters unknown
    NAMES[4]: {"dots": 1, "dot": 0, "tie-dye": 1},            # train: Dot (a 1 wins over a 0), Tie Dye
    NAMES[5]: {},                                             # test: every group a known negative
}


def test_hand_written_patterns(tmp_path):
    root = write_hand_root(tmp_path / "p", (FIXTURES / "Anno" / "list_attr_cloth.txt").read_text(),
                           {n: attr_line(v) for n, v in PATTERN_ROWS.items()})
    g = PAPER_GROUPS.index
    want = {
        "train": ([1 if k in (g("Solid"), g("Floral"), g("Paisley"), g("Dot"), g("Tie Dye")) else 0 for k in range(11)],
                  [0] * 11),
        "val": (one_hot(g("Stripe"), 11), one_hot(g("Dot"), 11)),
        "test": ([0] * 11, one_hot(g("Words/Letters"), 11)),
    }
    for split, (positives, ignored) in want.items():
        s = summarize("deepfashion", root, split=split, task="patterns")
        assert s["label_names"] == PAPER_GROUPS and (s["positives"], s["ignored"]) == (positives, ignored), split
    val = get_reader("deepfashion").read(root, "val", None, "patterns")
    assert val.dense_mask()[0].tolist() == [k != g("Dot") for k in range(11)]
    assert val.meta["pattern_groups"]["Tie Dye"] == ["tie-dye", "dip-dye", "dip-dyed", "dye"]
    # the attributes task of the same root: 1000 labels, the 0s ignored
    s = summarize("deepfashion", root, split="val", task="attributes")
    assert s["labels"] == 1000 and sum(s["positives"]) == 1 and s["ignored"][REAL_ATTRIBUTES.index("polka dot")] == 1


def test_available_and_default_split(hand_root):
    reader = get_reader("deepfashion")
    assert reader.available(hand_root) == [(None, "train"), (None, "val"), (None, "test")]
    assert summarize("deepfashion", hand_root)["split"] == "train"  # default task: category
    part = hand_root / "Eval" / "list_eval_partition.txt"
    part.write_text(part.read_text().replace("val\n", "test\n"))
    assert get_reader("deepfashion").available(hand_root) == [(None, "train"), (None, "test")]
    assert reader.available(hand_root.parent / "nowhere") == []


def test_image_names_with_spaces_are_parsed_from_the_right(tmp_path):
    spaced = {n: n.replace("Sheer_Pleated-Front_Blouse", "Sheer  Pleated Front Blouse") for n in NAMES}
    root = write_hand_root(tmp_path / "s")
    for path in [*root.joinpath("Anno").glob("list_*_img.txt"), root / "Anno/list_bbox.txt",
                 root / "Eval/list_eval_partition.txt"]:
        text = path.read_bytes().decode()
        for old, new in spaced.items():
            text = text.replace(old, new)
        path.write_bytes(text.encode())
    index = get_reader("deepfashion").read(root, "train", None, "attributes")
    assert index.image_paths[0] == "img/Sheer  Pleated Front Blouse/img_00000001.jpg"
    np.testing.assert_array_equal(index.dense_targets()[0], [0, 0, 0, 0, 1, 0])
    assert summarize("deepfashion", root, split="val", task="category")["positives"] == one_hot(2, 50)


# --------------------------------------------------------------------------- bad input
def edit_line(path: Path, line: int, new: str | None) -> None:
    """Replace (or with None delete) 1-based ``line`` of a list, keeping its line ending."""
    raw = path.read_bytes().decode()
    newline = "\r\n" if "\r\n" in raw else "\n"
    lines = raw.split(newline)
    if new is None:
        del lines[line - 1]
    else:
        lines[line - 1] = new
    path.write_bytes(newline.join(lines).encode())


def set_count(path: Path, count: int) -> None:
    edit_line(path, 1, str(count))


def padded(name: str, value: str) -> str:
    return f"{name:<71}{value}"


PART, CAT, ATTR, BBOX = "Eval/list_eval_partition.txt", "Anno/list_category_img.txt", "Anno/list_attr_img.txt", "Anno/list_bbox.txt"
CATEGORY_CLOTH = "Anno/list_category_cloth.txt"

# (name, task, edit(root), file, line, message start); lines: row k of a list is line 3 + k
BAD_CASES = [
    ("count line", "category", lambda r: set_count(r / CAT, 7), CAT, 1, "the count line says 7 rows but the file has 6"),
    ("count not a number", "category", lambda r: edit_line(r / PART, 1, "six"), PART, 1,
     "expected the number of rows on the first line, got 'six'"),
    ("no header line", "category", lambda r: (edit_line(r / PART, 2, None), set_count(r / PART, 6)), PART, 2,
     "expected the header line ('image_name  evaluation_status') on line 2, got a data row"),
    ("category id too big", "category", lambda r: edit_line(r / CAT, 4, CAT_ORDER[1] + "\t  51"), CAT, 4,
     "category_label 51 is out of range 1..50"),
    ("category id zero", "category", lambda r: edit_line(r / CAT, 8, CAT_ORDER[5] + "  0"), CAT, 8,
     "category_label 0 is out of range 1..50"),
    ("category id not a number", "category", lambda r: edit_line(r / CAT, 5, CAT_ORDER[2] + "  Dress"), CAT, 5,
     "category_label must be an integer, got 'Dress'"),
    ("attribute row too short", "attributes", lambda r: edit_line(r / ATTR, 6, padded(ATTR_ORDER[3], "-1 -1 -1 -1 0")),
     ATTR, 6, "expected an image name and 6 attribute values (list_attr_cloth.txt has 6 attributes), got 5 values"),
    ("attribute row too long", "attributes", lambda r: edit_line(r / ATTR, 3, padded(ATTR_ORDER[0], "1 -1 -1 0 -1 -1 1")),
     ATTR, 3, "expected an image name and 6 attribute values (list_attr_cloth.txt has 6 attributes), got 7 values"),
    ("attribute value 2", "attributes", lambda r: edit_line(r / ATTR, 7, padded(ATTR_ORDER[4], "-1 -1  2 -1 -1 -1")),
     ATTR, 7, "attribute value 3 ('tie-dye') must be 1, -1 or 0, got '2'"),
    ("attribute value word", "attributes", lambda r: edit_line(r / ATTR, 4, padded(ATTR_ORDER[1], "-1 -1 -1 yes -1 -1")),
     ATTR, 4, "attribute value 4 ('floral print') must be 1, -1 or 0, got 'yes'"),
    ("image not in partition", "category",
     lambda r: edit_line(r / CAT, 5, CAT_ORDER[2].replace("Shorts", "Jeans") + "  26"), CAT, 5,
     "image 'img/Floral_Print_Chiffon_Jeans/img_00000001.jpg' is not in Eval/list_eval_partition.txt"),
    ("attribute image not in partition", "attributes",
     lambda r: edit_line(r / ATTR, 3, padded("img/Unknown_Tee/img_00000001.jpg", " 1 -1 -1  0 -1 -1")), ATTR, 3,
     "image 'img/Unknown_Tee/img_00000001.jpg' is not in Eval/list_eval_partition.txt"),
    ("partition image without category", "category",
     lambda r: (edit_line(r / CAT, 3, None), set_count(r / CAT, 5)), PART, 8,
     f"image '{NAMES[5]}' has no line in Anno/list_category_img.txt"),
    ("partition image without box", "attributes",
     lambda r: (edit_line(r / BBOX, 7, None), set_count(r / BBOX, 5)), PART, 7,
     f"image '{NAMES[4]}' has no line in Anno/list_bbox.txt"),
    ("duplicate in partition", "category",
     lambda r: edit_line(r / PART, 8, padded(NAMES[1], "test")), PART, 8,
     f"duplicate image '{NAMES[1]}' (first at line 4)"),
    ("duplicate in category list", "category",
     lambda r: edit_line(r / CAT, 7, NAMES[2] + "   41"), CAT, 7, f"duplicate image '{NAMES[2]}' (first at line 6)"),
    ("bad status", "category", lambda r: edit_line(r / PART, 5, padded(NAMES[2], "dev")), PART, 5,
     "evaluation_status must be train, val or test, got 'dev'"),
    ("box of three numbers", "category", lambda r: edit_line(r / BBOX, 4, padded(NAMES[1], "011 020 190")), BBOX, 4,
     "expected a name and 4 values (image_name  x_1  y_1  x_2  y_2), got 3 values"),
    ("inverted box", "category", lambda r: edit_line(r / BBOX, 3, padded(NAMES[0], "232 079 072 273")), BBOX, 3,
     "bounding box must have 0 <= x_1 <= x_2 and 0 <= y_1 <= y_2, got [232, 79, 72, 273]"),
    ("bad category type", "category", lambda r: edit_line(r / CATEGORY_CLOTH, 3, "Anorak         4"), CATEGORY_CLOTH, 3,
     "category_type must be one of 1 upper, 2 lower, 3 full body; got 4"),
    ("missing attribute list", "attributes", lambda r: (r / ATTR).unlink(), ATTR, None, "missing file"),
]


@pytest.mark.parametrize("case", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_malformed_lists_name_file_and_line(hand_root, case):
    _, task, edit, rel, line, message = case
    edit(hand_root)
    with pytest.raises(InputError) as err:
        summarize("deepfashion", hand_root, split="train", task=task)
    where = f"{hand_root / rel}:{line}" if line is not None else f"{hand_root / rel}"
    assert str(err.value).startswith(f"{where}: {message}"), str(err.value)


def test_pattern_group_naming_an_unknown_attribute(hand_root):
    # the small attribute list has "solid" but lacks "plaid": the YAML line of the first missing name
    with pytest.raises(InputError) as err:
        summarize("deepfashion", hand_root, split="train", task="patterns")
    line = next(k for k, text in enumerate(df.PATTERNS_FILE.read_text().splitlines(), 1) if "Plaid: [plaid," in text)
    assert str(err.value) == (f"{df.PATTERNS_FILE}:{line}: pattern group 'Plaid' names attribute 'plaid', which "
                              f"{hand_root / 'Anno/list_attr_cloth.txt'} does not have")


def test_bad_pattern_file(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("groups:\n  Solid: [solid]\n  Plaid: []\n")
    with pytest.raises(InputError, match=re.escape(f"{path}:3: pattern group 'Plaid' must be a non-empty list")):
        df.load_pattern_groups(path)


def test_exact_parser_agrees_with_fast_path(hand_root):
    path = hand_root / ATTR
    fast = df._fast_rows(path, 6, "attr")
    exact = df._exact_rows(path, 6, "attr", ("attribute value",), "")
    assert fast[0] == exact.names == ATTR_ORDER
    np.testing.assert_array_equal(fast[1], exact.values)
    assert exact.lines.tolist() == [3, 4, 5, 6, 7, 8]


def test_cli_summary_in_process(hand_root, capsys):
    assert main(["data", "summary", "deepfashion", "--root", str(hand_root), "--task", "attributes", "--split", "test"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == summarize("deepfashion", hand_root, split="test", task="attributes")
    assert out["positives"] == [0, 1, 0, 1, 0, 1]
    set_count(hand_root / CAT, 9)
    assert main(["data", "summary", "deepfashion", "--root", str(hand_root)]) == 2
    err = capsys.readouterr().err
    assert err == f"{hand_root / CAT}:1: the count line says 9 rows but the file has 6\n"


# --------------------------------------------------------------------------- synthetic root
@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    return write_synthetic("deepfashion", tmp_path_factory.mktemp("df") / "deepfashion", images=64, seed=5)


def plain_list(path: Path, n_values: int) -> tuple[int, str, list[str], list[list[str]], list[str]]:
    """count, header, names, value tokens and raw data lines, parsed from the right."""
    lines = path.read_text().split("\n")
    rows = [line for line in lines[2:] if line.strip()]
    names, values = [], []
    for line in rows:
        parts = line.rsplit(None, n_values)
        names.append(parts[0].strip())
        values.append(parts[1:])
    return int(lines[0]), lines[1], names, values, rows


def test_synth_layout_and_syntax(synth_root):
    marker = json.loads((synth_root / MARKER_FILE).read_text())
    assert marker["generator"] == "fashionbench.synth.deepfashion" and marker["seed"] == 5
    for name in ("list_category_cloth.txt", "list_attr_cloth.txt"):
        assert (synth_root / "Anno" / name).read_bytes() == (FIXTURES / "Anno" / name).read_bytes()
    spec = {"Eval/list_eval_partition.txt": ("image_name  evaluation_status", 1),
            "Anno/list_category_img.txt": ("image_name  category_label", 1),
            "Anno/list_attr_img.txt": ("image_name  attribute_labels", 1000),
            "Anno/list_bbox.txt": ("image_name  x_1  y_1  x_2  y_2", 4)}
    parsed = {}
    for rel, (header, k) in spec.items():
        count, head, names, values, raw = plain_list(synth_root / rel, k)
        assert count == len(names) == 64 and head == header, rel
        assert all(re.match(r"^\S+ +\S", line) for line in raw), rel
        # the name is padded to 71 characters: a run of spaces follows every shorter name
        assert all(re.match(r"^\S+ {2,}\S", line) for line, n in zip(raw, names) if len(n) < 70), rel
        assert all(len(v) == k for v in values)
        parsed[rel] = (names, values)
    names = parsed["Eval/list_eval_partition.txt"][0]
    assert all(parsed[rel][0] == names for rel in spec)  # one row order
    assert {v[0] for v in parsed["Eval/list_eval_partition.txt"][1]} == {"train", "val", "test"}
    cats = [REAL_CATEGORIES[int(v[0]) - 1] for v in parsed["Anno/list_category_img.txt"][1]]
    per_folder: dict[str, list[int]] = {}
    for name, cat in zip(names, cats):
        m = re.fullmatch(r"img/((?:[A-Z0-9][A-Za-z0-9-]*_)+)([A-Za-z-]+)/img_(\d{8})\.jpg", name)
        assert m and m.group(2) == cat, (name, cat)  # the folder is a product title ending in the category
        per_folder.setdefault(name.rsplit("/", 1)[0], []).append(int(m.group(3)))
    assert all(sorted(v) == list(range(1, len(v) + 1)) for v in per_folder.values())
    assert len(per_folder) < 64  # products with several images share a folder
    assert all(set(v) <= {"-1", "0", "1"} for v in parsed["Anno/list_attr_img.txt"][1])
    assert all(re.fullmatch(r"\d{3}", c) for v in parsed["Anno/list_bbox.txt"][1] for c in v)


def independent_counts(root: Path) -> dict:
    """Per split and task: images, positives, ignored, from the files with plain Python."""
    _, _, names, status, _ = plain_list(root / "Eval/list_eval_partition.txt", 1)
    split_of = dict(zip(names, (s[0] for s in status)))
    _, _, cnames, cvals, _ = plain_list(root / "Anno/list_category_img.txt", 1)
    _, _, anames, avals, _ = plain_list(root / "Anno/list_attr_img.txt", 1000)
    groups = yaml.safe_load(df.PATTERNS_FILE.read_text())["groups"]
    out = {}
    for split in ("train", "val", "test"):
        cat = [0] * 50
        for n, v in zip(cnames, cvals):
            if split_of[n] == split:
                cat[int(v[0]) - 1] += 1
        pos, ign = [0] * 1000, [0] * 1000
        gpos, gign = [0] * 11, [0] * 11
        for n, v in zip(anames, avals):
            if split_of[n] != split:
                continue
            for c, t in enumerate(v):
                pos[c] += t == "1"
                ign[c] += t == "0"
            by_name = dict(zip(REAL_ATTRIBUTES, v))
            for k, members in enumerate(groups.values()):
                tokens = {by_name[m] for m in members}
                gpos[k] += "1" in tokens
                gign[k] += "1" not in tokens and tokens != {"-1"}
        out[split] = {"images": sum(s == split for s in split_of.values()), "category": (cat, [0] * 50),
                      "attributes": (pos, ign), "patterns": (gpos, gign)}
    return out


def test_synth_round_trip_counts_from_the_files(synth_root):
    expected = independent_counts(synth_root)
    assert sum(expected[s]["images"] for s in expected) == 64
    for split, want in expected.items():
        assert want["images"] >= 1
        for task in ("category", "attributes", "patterns"):
            s = summarize("deepfashion", synth_root, split=split, task=task)
            assert s["images"] == want["images"] and (s["positives"], s["ignored"]) == want[task], (split, task)
            assert s["missing_images"] == []
    train = expected["train"]
    assert min(train["patterns"][0]) >= 1  # every pattern group has a positive
    assert sum(train["patterns"][1]) >= 1 and sum(train["attributes"][1]) >= 1  # unknown entries exist


def test_synth_boxes_hold_the_glyph_inside_the_image(synth_root):
    reader = get_reader("deepfashion")
    checked = 0
    for split in ("train", "val", "test"):
        index = reader.read(synth_root, split, None, "category")
        for path, box, cid in zip(index.image_paths, index.item_arrays["bbox"], index.class_ids):
            with Image.open(synth_root / path) as im:
                assert im.format == "JPEG"
                pixels = np.asarray(im.convert("RGB"), dtype=np.int64)
            h, w = pixels.shape[:2]
            x1, y1, x2, y2 = box.tolist()
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
            close = np.abs(pixels - np.array(glyph_style(int(cid))[1])).sum(axis=2) < 60
            inside = np.zeros((h, w), dtype=bool)
            inside[y1:y2, x1:x2] = True
            assert close[inside].sum() >= 10 and close[~inside].mean() < 0.01, path
            checked += 1
    assert checked == 64


def test_synth_textures_follow_the_pattern_labels(synth_root):
    """Stripe-only images have horizontal stripes beside the label patch (row means swing),
    Solid-only images a flat colour there."""
    reader = get_reader("deepfashion")
    swings = {"Stripe": [], "Solid": []}
    for split in ("train", "val", "test"):
        index = reader.read(synth_root, split, None, "patterns")
        targets = index.dense_targets()
        for row in range(len(index)):
            only = [index.label_names[g] for g in np.flatnonzero(targets[row])]
            if only not in (["Stripe"], ["Solid"]):
                continue
            x1, y1, x2, y2 = index.item_arrays["bbox"][row].tolist()
            side = max(8, round(0.42 * min(x2 - x1, y2 - y1)))
            strip = x1 + (x2 - x1 - side) // 2  # left of the patch: texture only
            pixels = np.asarray(Image.open(synth_root / index.image_paths[row]).convert("RGB"), dtype=np.float64)
            region = pixels[y1 + 1:y2 - 1, x1 + 1:strip - 1]
            swings[only[0]].append(float(region.mean(axis=1).std(axis=0).max()))  # rows, any channel
    assert swings["Stripe"] and swings["Solid"]
    assert min(swings["Stripe"]) > 15 > 4 > max(swings["Solid"]), swings


def test_synth_deterministic_and_cli(tmp_path, capsys):
    a = write_synthetic("deepfashion", tmp_path / "a", images=12, seed=9)
    assert main(["synth", "deepfashion", "--out", str(tmp_path / "b"), "--images", "12", "--seed", "9"]) == 0
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    capsys.readouterr()
    assert main(["synth", "deepfashion", "--out", str(tmp_path / "c"), "--year", "2014"]) == 2
    assert capsys.readouterr().err == "deepfashion has no year or edition (got --year 2014)\n"
    assert not (tmp_path / "c").exists()


def test_datamodule_crops_to_box(synth_root, tmp_path):
    from datamodules.deepfashion import DeepFashionDataModule

    dm = DeepFashionDataModule(root=str(synth_root), task="patterns", batch_size=4, num_workers=0, image_size=32,
                               crop_to_box=True, cache_dir=str(tmp_path / "cache"))
    assert dm.num_labels == 11 and dm.label_names == PAPER_GROUPS and not dm.single_label and dm.is_synthetic
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 32) and batch["target"].shape == (4, 11)
    category = DeepFashionDataModule(root=str(synth_root), num_workers=0, cache_dir=str(tmp_path / "cache"))
    assert category.task == "category" and category.single_label and category.num_labels == 50
