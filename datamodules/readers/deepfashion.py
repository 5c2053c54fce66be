"""DeepFashion Category and Attribute Prediction Benchmark (interfaces.md "Dataset roots":
``deepfashion``), the data of HMCN-F (shared/papers/001_ab0cc3d50053969e, §4: 50 categories,
289,222 images, 40,000 of them test) and of the semantic-embedding paper's pattern task
(shared/papers/000_a06c47c28b112d23, §IV-A: the 11 pattern attributes).

Layout (the official download, unchanged)::

    ROOT/Anno/list_category_cloth.txt  category_name  category_type    50 rows; type 1 upper, 2 lower, 3 full body
    ROOT/Anno/list_category_img.txt    image_name  category_label      1-based row of list_category_cloth
    ROOT/Anno/list_attr_cloth.txt      attribute_name  attribute_type  1,000 rows; type 1 texture, 2 fabric,
                                                                       3 shape, 4 part, 5 style
    ROOT/Anno/list_attr_img.txt        image_name  attribute_labels    then 1,000 values: 1 positive,
                                                                       -1 negative, 0 unknown
    ROOT/Anno/list_bbox.txt            image_name  x_1  y_1  x_2  y_2  pixels (may be zero-padded: 072)
    ROOT/Eval/list_eval_partition.txt  image_name  evaluation_status   train | val | test
    ROOT/img/<product folder>/img_00000001.jpg                         the lists' image_name, root-relative

Syntax: every list starts with a count line (the number of rows) and a header line. Fields
are separated by runs of spaces (tabs are accepted); blank lines are skipped. Names may
contain spaces ("abstract chevron print", "a-line", category names), so a row is parsed from
the right: its last fields are the values, everything before them is the name.

Tasks (``--task``):

- ``category``: 50 labels in ``list_category_cloth.txt`` order, single-label
  (``LabelIndex.from_class_ids``); ``meta["label_parents"]`` is each category's type name
  (``upper``, ``lower``, ``full body``), the hierarchy HMCN-F starts from.
- ``attributes``: the 1,000 attributes; 1 is a positive, -1 a known negative, 0 is masked
  (``ignored`` in ``data summary``). ``meta["label_parents"]`` is each attribute's type name.
- ``patterns``: the 11 groups of ``deepfashion_patterns.yaml`` (next to this file; each a
  union of attribute names), in that file's order. A group is *positive* when any of its
  attributes is 1, a *known negative* when all of them are -1, and *masked* otherwise (none
  is 1 and at least one is 0).

Every task puts ``item_arrays["bbox"]`` (int64 ``[N, 4]``: x_1, y_1, x_2, y_2 of
``list_bbox.txt``) in the index. Every image of the partition must have a box: the official
list covers all 289,222 images, and a full-image box would need the image's size, which a
reader never opens.

Images of a split are the rows of ``list_eval_partition.txt`` with that status, in file
order; ``image_ids`` and ``image_paths`` are the lists' ``image_name``. Every list must name
exactly the partition's images (any order): an image missing from the partition, an image
of the partition missing from a list, and a duplicate image are ``file:line`` errors, as are a
count line that disagrees with the rows, a category id out of range, an attribute row of the
wrong length or with a value other than 1/-1/0, and any malformed line.

Speed: the image lists are parsed by ``numpy.loadtxt`` with a structured dtype (name +
values; C speed), checked vectorised afterwards; only a file that fails that fast path (a
malformed line, image names with spaces) is re-read line by line in Python, which names
the first bad line exactly (or parses the names with spaces). Parsed files are memoised per
reader instance on (path, size, mtime), so ``available`` + ``read`` or a datamodule's three
splits parse each file once. Measured on full-size synthetic lists (289,222 images, an
888 MB list_attr_img.txt), CPU time of one ``data summary``: ``category`` 2.2 s, ``attributes``
and ``patterns`` 7 s (5 s of it the loadtxt of list_attr_img), peak memory 1.2 GB; the exact
parser is about 6x slower than the fast path.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from datamodules.index import LabelIndex
from datamodules.registry import DatasetReader, register_reader
from fashionbench.errors import InputError

__all__ = [
    "ATTRIBUTE_TYPES", "CATEGORY_TYPES", "CLOTH_DIR", "DeepFashionReader", "FILES", "PATTERNS_FILE",
    "SPLITS", "load_pattern_groups", "read_cloth_list",
]

CATEGORY_TYPES = {1: "upper", 2: "lower", 3: "full body"}
ATTRIBUTE_TYPES = {1: "texture", 2: "fabric", 3: "shape", 4: "part", 5: "style"}
SPLITS = ("train", "val", "test")
#: Root-relative paths of the six lists.
FILES = {
    "category_cloth": "Anno/list_category_cloth.txt",
    "category_img": "Anno/list_category_img.txt",
    "attr_cloth": "Anno/list_attr_cloth.txt",
    "attr_img": "Anno/list_attr_img.txt",
    "bbox": "Anno/list_bbox.txt",
    "partition": "Eval/list_eval_partition.txt",
}
HEADERS = {
    "category_cloth": "category_name  category_type",
    "category_img": "image_name  category_label",
    "attr_cloth": "attribute_name  attribute_type",
    "attr_img": "image_name  attribute_labels",
    "bbox": "image_name  x_1  y_1  x_2  y_2",
    "partition": "image_name  evaluation_status",
}
#: The pattern-group mapping (data, not code) and the real cloth lists (package data; the
#: synthetic writer copies them).
PATTERNS_FILE = Path(__file__).with_name("deepfashion_patterns.yaml")
CLOTH_DIR = Path(__file__).with_name("deepfashion_cloth")

_NAME_WIDTH = 192  # fast-path name field; a longer name sends the file to the exact parser
_ATTR_TOKENS = {"-1": -1, "0": 0, "1": 1}


# --------------------------------------------------------------------------- one list
@dataclass
class _Rows:
    """The data rows of one list: names, values, and their line numbers (for errors)."""

    path: Path
    names: list[str]
    values: np.ndarray
    lines: np.ndarray | None = None  # 1-based line of each row; filled lazily on the fast path

    def __len__(self) -> int:
        return len(self.names)

    def line_of(self, row: int) -> int:
        if self.lines is None:
            numbers = []
            with open(self.path, "rb") as handle:
                for number, raw in enumerate(handle, start=1):
                    if number > 2 and raw.strip():
                        numbers.append(number)
            self.lines = np.asarray(numbers, dtype=np.int64)
        return int(self.lines[row])

    def error(self, row: int, problem: str) -> InputError:
        return InputError(problem, path=self.path, line=self.line_of(row))


def _read_head(path: Path, header: str) -> int:
    """Check the count line and the header line; return the count."""
    try:
        with open(path, "rb") as handle:
            first, second = handle.readline(), handle.readline()
    except FileNotFoundError:
        raise InputError("missing file", path=path) from None
    except IsADirectoryError:
        raise InputError("expected a file, found a folder", path=path) from None
    text = first.decode("utf-8", errors="replace").strip()
    try:
        count = int(text)
    except ValueError:
        count = -1
    if count < 0:
        raise InputError(f"expected the number of rows on the first line, got {text!r}", path=path, line=1)
    fields = second.decode("utf-8", errors="replace").split()
    if not fields:
        raise InputError(f"expected the header line ({header!r}) on line 2", path=path, line=2)
    looks_like_data = fields[0].startswith("img/") or fields[-1].lstrip("+-").isdigit()
    if looks_like_data and fields != header.split():
        raise InputError(f"expected the header line ({header!r}) on line 2, got a data row", path=path, line=2)
    return count


def _fast_rows(path: Path, n_values: int, kind: str) -> tuple[list[str], np.ndarray] | None:
    """``numpy.loadtxt`` of the data rows as (name, values), or None if it cannot (then the
    exact parser runs): a bad token, a row of another length, a name with spaces."""
    if kind == "status":
        value_field: tuple = ("v", "U8")  # longer strings are cut to 8 chars: never a valid status
    elif kind == "attr":
        value_field = ("v", "i1", (n_values,))
    else:
        value_field = ("v", "i8", (n_values,)) if n_values > 1 else ("v", "i8")
    dtype = np.dtype([("name", f"U{_NAME_WIDTH}"), value_field])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data"
            table = np.loadtxt(path, dtype=dtype, skiprows=2, comments=None, encoding="utf-8", ndmin=1)
    except Exception:  # noqa: BLE001 - any failure: the exact parser names the line
        return None
    names = table["name"]
    if names.size and int(np.char.str_len(names).max()) >= _NAME_WIDTH:
        return None  # possibly truncated
    return names.tolist(), table["v"]  # a view: no copy of the 289 MB attribute block


def _is_value(token: str, kind: str) -> bool:
    """Whether the last word of a name could be a value (then the row has too many)."""
    if kind == "status":
        return token in SPLITS
    return token.lstrip("+-").isdigit()


def _attr_problem(column: int, labels: list[str] | None, value: Any) -> str:
    name = f" ({labels[column]!r})" if labels is not None and column < len(labels) else ""
    return f"attribute value {column + 1}{name} must be 1, -1 or 0, got {value!r}"


def _exact_rows(path: Path, n_values: int, kind: str, fields: tuple[str, ...], what: str,
                labels: list[str] | None = None) -> _Rows:
    """Line-by-line parse from the right (names may contain spaces); the first bad line is
    an InputError naming it. ``labels``: attribute names, for the messages."""
    names: list[str] = []
    values: list[Any] = []
    lines: list[int] = []
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number <= 2:
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise InputError(f"not UTF-8 text ({err.reason})", path=path, line=number) from None
            parts = line.rsplit(None, n_values)
            if not parts:
                continue  # blank line
            name = parts[0].strip()
            tokens = parts[1:]
            head = name.split()
            if len(tokens) != n_values or (len(head) > 1 and _is_value(head[-1], kind)):  # a row too long
                got = len(line.split()) - 1
                raise InputError(f"expected {what}, got {max(got, 0)} value{'s' if got != 1 else ''} "
                                 f"after the name in {line.strip()[:80]!r}", path=path, line=number)
            if kind == "status":
                values.append(tokens[0])
            elif kind == "attr":
                row = [_ATTR_TOKENS.get(t) for t in tokens]
                if None in row:
                    for k, (token, value) in enumerate(zip(tokens, row)):
                        if value is None:
                            try:
                                value = int(token)  # "+1" is 1, as numpy reads it
                            except ValueError:
                                value = None
                            if value not in (-1, 0, 1):
                                raise InputError(_attr_problem(k, labels, token), path=path, line=number)
                            row[k] = value
                values.append(np.array(row, dtype=np.int8))
            else:
                row = []
                for label, token in zip(fields, tokens):
                    try:
                        row.append(int(token))
                    except ValueError:
                        raise InputError(f"{label} must be an integer, got {token!r}", path=path,
                                         line=number) from None
                values.append(row if n_values > 1 else row[0])
            names.append(name)
            lines.append(number)
    if kind == "status":
        array = np.array(values, dtype=str) if values else np.zeros(0, dtype="U8")
    elif kind == "attr":
        array = np.stack(values) if values else np.zeros((0, n_values), dtype=np.int8)
    else:
        array = np.array(values, dtype=np.int64).reshape((len(values), n_values) if n_values > 1 else (len(values),))
    return _Rows(path, names, array, np.asarray(lines, dtype=np.int64))


def _read_list(path: Path, key: str, n_values: int, kind: str, names_may_have_spaces: bool = False,
               labels: list[str] | None = None) -> _Rows:
    """One list: count + header lines, then rows of ``name`` and ``n_values`` values."""
    header = HEADERS[key]
    count = _read_head(path, header)
    fields = tuple(header.split()[1:]) if kind != "attr" else ("attribute value",)
    if kind == "attr":
        what = f"an image name and {n_values} attribute values (list_attr_cloth.txt has {n_values} attributes)"
    else:
        what = f"a name and {n_values} value{'s' if n_values > 1 else ''} ({header})"
    fast = None if names_may_have_spaces else _fast_rows(path, n_values, kind)
    rows = _Rows(path, *fast) if fast is not None else _exact_rows(path, n_values, kind, fields, what, labels)
    if len(rows) != count:
        raise InputError(f"the count line says {count} rows but the file has {len(rows)}", path=path, line=1)
    return rows


# --------------------------------------------------------------------------- cloth lists
@dataclass
class ClothList:
    """``list_category_cloth.txt`` or ``list_attr_cloth.txt``: names and 1-based types."""

    path: Path
    names: list[str]
    types: np.ndarray
    type_names: list[str] = field(default_factory=list)


def read_cloth_list(path: str | os.PathLike, kind: str) -> ClothList:
    """Parse a cloth list; ``kind`` is ``"category"`` or ``"attribute"``."""
    path = Path(path)
    key, types = ("category_cloth", CATEGORY_TYPES) if kind == "category" else ("attr_cloth", ATTRIBUTE_TYPES)
    rows = _read_list(path, key, 1, "int", names_may_have_spaces=True)
    field_name = HEADERS[key].split()[1]
    bad = ~np.isin(rows.values, list(types))
    if np.any(bad):
        r = int(np.argmax(bad))
        known = ", ".join(f"{k} {v}" for k, v in types.items())
        raise rows.error(r, f"{field_name} must be one of {known}; got {int(rows.values[r])}")
    seen: dict[str, int] = {}
    for r, name in enumerate(rows.names):
        if name in seen:
            raise rows.error(r, f"duplicate {kind} name {name!r} (first at line {rows.line_of(seen[name])})")
        seen[name] = r
    return ClothList(path, rows.names, rows.values.astype(np.int64), [types[int(t)] for t in rows.values])


# --------------------------------------------------------------------------- pattern groups
def load_pattern_groups(path: str | os.PathLike = PATTERNS_FILE) -> tuple[dict[str, list[str]], dict[tuple[str, str], int]]:
    """The pattern-group mapping: ``{group: [attribute names]}`` in file order, and the
    1-based line of each ``(group, name)`` (for errors). Every group must be a non-empty
    list of distinct strings."""
    path = Path(path)
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("missing pattern-group file", path=path) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise InputError(f"bad YAML: {getattr(err, 'problem', err)}", path=path,
                         line=None if mark is None else mark.line + 1) from None

    def fail(problem: str, at: Any) -> InputError:
        return InputError(problem, path=path, line=None if at is None else at.start_mark.line + 1)

    top = {k.value: v for k, v in node.value} if isinstance(node, yaml.MappingNode) else {}
    groups_node = top.get("groups")
    if not isinstance(groups_node, yaml.MappingNode):
        raise fail("expected a mapping 'groups: {group: [attribute names]}'", node)
    groups: dict[str, list[str]] = {}
    lines: dict[tuple[str, str], int] = {}
    for key_node, value_node in groups_node.value:
        group = str(key_node.value)
        if group in groups:
            raise fail(f"pattern group {group!r} given twice", key_node)
        if not isinstance(value_node, yaml.SequenceNode) or not value_node.value:
            raise fail(f"pattern group {group!r} must be a non-empty list of attribute names", key_node)
        names = []
        for item in value_node.value:
            if not isinstance(item, yaml.ScalarNode) or not str(item.value).strip():
                raise fail(f"pattern group {group!r}: expected an attribute name", item)
            name = str(item.value)
            if name in names:
                raise fail(f"pattern group {group!r} lists {name!r} twice", item)
            names.append(name)
            lines[(group, name)] = item.start_mark.line + 1
        groups[group] = names
    if not groups:
        raise fail("no pattern groups", groups_node)
    return groups, lines


# --------------------------------------------------------------------------- attributes
@dataclass
class _AttrTable:
    """The value matrix of list_attr_img, sparse: the 1s, and whichever of the 0s / -1s is
    rarer (``other_value``); the remaining value fills the rest. Rows: partition order."""

    n_rows: int
    n_cols: int
    one_rows: np.ndarray
    one_cols: np.ndarray
    other_rows: np.ndarray
    other_cols: np.ndarray
    other_value: int

    @classmethod
    def from_dense(cls, values: np.ndarray, order: np.ndarray) -> "_AttrTable":
        """``values[k]`` (int8, in {-1, 0, 1}) is the row of partition row ``order[k]``."""
        n, k = values.shape
        order = np.asarray(order, dtype=np.int64)
        flat = np.flatnonzero(values >= 0)  # the 1s and 0s (few in the real file): one pass
        other_value = 0
        if flat.size > values.size // 2:  # mostly 0s: keep the -1s instead
            other_value = -1
            ones = np.flatnonzero(values == 1)
            others = np.flatnonzero(values == -1)
        else:
            hit = values.reshape(-1)[flat] if values.flags.c_contiguous else values[np.unravel_index(flat, values.shape)]
            ones, others = flat[hit == 1], flat[hit == 0]
        return cls(n, k, order[ones // k], ones % k, order[others // k], others % k, other_value)


def _select(rows: np.ndarray, cols: np.ndarray, new_row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs whose row is in the split (``new_row >= 0``), renumbered."""
    r = new_row[rows]
    keep = r >= 0
    return r[keep], cols[keep]


# --------------------------------------------------------------------------- reader
@dataclass
class _Full:
    """One task's data for the whole partition (every split), aligned to partition rows."""

    names: list[str]
    status: np.ndarray
    bbox: np.ndarray
    label_names: list[str]
    label_parents: list[str] | None
    class_ids: np.ndarray | None = None
    attrs: _AttrTable | None = None
    attr_names: list[str] | None = None
    groups: dict[str, list[str]] | None = None


@register_reader
class DeepFashionReader(DatasetReader):
    """DeepFashion Category and Attribute Prediction lists (see the module docstring)."""

    name = "deepfashion"
    version = 1
    splits = SPLITS
    default_split = "train"
    tasks = ("category", "attributes", "patterns")

    def __init__(self, **options: Any):
        super().__init__(**options)
        self._memo: dict[tuple, Any] = {}

    # ---------------------------------------------------------------- files
    @staticmethod
    def file(root: Path, key: str) -> Path:
        return Path(root) / FILES[key]

    def available(self, root: Path) -> list[tuple[int | None, str]]:
        path = self.file(root, "partition")
        if not path.is_file():
            return []
        try:
            status = self._partition(Path(root))[1]
        except InputError:
            return []  # read() reports the problem
        present = set(np.unique(status).tolist())
        return [(None, s) for s in SPLITS if s in present]

    def annotation_files(self, root: Path, split: str, year: int | None, task: str) -> list[Path]:
        keys = ["partition", "bbox"] + (["category_cloth", "category_img"] if task == "category"
                                         else ["attr_cloth", "attr_img"])
        return [self.file(root, k) for k in keys] + ([PATTERNS_FILE] if task == "patterns" else [])

    def _memoised(self, key: str, paths: list[Path], build):
        """``build()`` once per (key, files' path/size/mtime); one entry per key."""
        stamp = []
        for p in paths:
            try:
                st = os.stat(p)
            except OSError:
                return build()  # the builder reports the missing file
            stamp.append((os.path.abspath(p), st.st_size, st.st_mtime_ns))
        cached = self._memo.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        value = build()
        self._memo[key] = (stamp, value)
        return value

    # ---------------------------------------------------------------- parsing
    def _partition(self, root: Path) -> tuple[_Rows, np.ndarray, dict[str, int]]:
        path = self.file(root, "partition")

        def build():
            rows = _read_list(path, "partition", 1, "status")
            status = rows.values.astype(str)
            bad = ~np.isin(status, SPLITS)
            if np.any(bad):
                r = int(np.argmax(bad))
                raise rows.error(r, f"evaluation_status must be train, val or test, got {str(status[r])!r}")
            index_of = dict(zip(rows.names, range(len(rows))))
            if len(index_of) != len(rows):
                _raise_first_duplicate(rows)
            return rows, status, index_of

        return self._memoised("partition", [path], build)

    @staticmethod
    def _align(rows: _Rows, key: str, partition: _Rows, index_of: dict[str, int]) -> np.ndarray:
        """``order[k]`` = partition row of ``rows``' row ``k``; every partition image exactly once."""
        n = len(partition)
        if rows.names == partition.names:
            return np.arange(n, dtype=np.int64)
        order = np.fromiter((index_of.get(name, -1) for name in rows.names), dtype=np.int64, count=len(rows))
        unknown = order < 0
        if np.any(unknown):
            k = int(np.argmax(unknown))
            raise rows.error(k, f"image {rows.names[k]!r} is not in {FILES['partition']}")
        if len(rows) != n or np.any(np.bincount(order, minlength=n) != 1):
            seen = np.zeros(n, dtype=bool)
            for k, p in enumerate(order):
                if seen[p]:
                    first = int(np.flatnonzero(order[:k] == p)[0])
                    raise rows.error(k, f"duplicate image {rows.names[k]!r} (first at line {rows.line_of(first)})")
                seen[p] = True
            p = int(np.argmin(seen))
            raise partition.error(p, f"image {partition.names[p]!r} has no line in {FILES[key]}")
        return order

    def _bbox(self, root: Path, partition: _Rows, index_of: dict[str, int]) -> np.ndarray:
        rows = _read_list(self.file(root, "bbox"), "bbox", 4, "int")
        box = rows.values.reshape(len(rows), 4)
        bad = (box[:, 0] < 0) | (box[:, 1] < 0) | (box[:, 2] < box[:, 0]) | (box[:, 3] < box[:, 1])
        if np.any(bad):
            r = int(np.argmax(bad))
            raise rows.error(r, f"bounding box must have 0 <= x_1 <= x_2 and 0 <= y_1 <= y_2, got {box[r].tolist()}")
        order = self._align(rows, "bbox", partition, index_of)
        out = np.empty_like(box)
        out[order] = box
        return out

    def _full(self, root: Path, task: str) -> _Full:
        root = Path(root)
        paths = self.annotation_files(root, "", None, task)
        return self._memoised(f"task:{task}", paths, lambda: self._build_full(root, task))

    def _build_full(self, root: Path, task: str) -> _Full:
        partition, status, index_of = self._partition(root)
        if task == "category":
            cloth = read_cloth_list(self.file(root, "category_cloth"), "category")
            rows = _read_list(self.file(root, "category_img"), "category_img", 1, "int")
            c = len(cloth.names)
            bad = (rows.values < 1) | (rows.values > c)
            if np.any(bad):
                r = int(np.argmax(bad))
                raise rows.error(r, f"category_label {int(rows.values[r])} is out of range 1..{c} "
                                    f"({FILES['category_cloth']} has {c} categories)")
            order = self._align(rows, "category_img", partition, index_of)
            class_ids = np.empty(len(partition), dtype=np.int64)
            class_ids[order] = rows.values - 1
            bbox = self._bbox(root, partition, index_of)
            return _Full(partition.names, status, bbox, cloth.names, cloth.type_names, class_ids=class_ids)

        cloth = read_cloth_list(self.file(root, "attr_cloth"), "attribute")
        groups = None
        if task == "patterns":
            groups, lines = load_pattern_groups(PATTERNS_FILE)
            known = set(cloth.names)
            for (group, name), line in lines.items():
                if name not in known:
                    raise InputError(f"pattern group {group!r} names attribute {name!r}, which "
                                     f"{cloth.path} does not have", path=PATTERNS_FILE, line=line)
        k = len(cloth.names)
        rows = _read_list(self.file(root, "attr_img"), "attr_img", k, "attr", labels=cloth.names)
        values = rows.values.reshape(len(rows), k)
        if values.size and (int(values.min()) < -1 or int(values.max()) > 1):
            r, c = (int(v) for v in np.argwhere((values < -1) | (values > 1))[0])
            raise rows.error(r, _attr_problem(c, cloth.names, str(int(values[r, c]))))
        order = self._align(rows, "attr_img", partition, index_of)
        attrs = _AttrTable.from_dense(values, order)
        del values, rows
        bbox = self._bbox(root, partition, index_of)
        if task == "attributes":
            return _Full(partition.names, status, bbox, cloth.names, cloth.type_names, attrs=attrs,
                         attr_names=cloth.names)
        return _Full(partition.names, status, bbox, list(groups), None, attrs=attrs, attr_names=cloth.names,
                     groups=groups)

    # ---------------------------------------------------------------- index
    def read(self, root: Path, split: str, year: int | None, task: str) -> LabelIndex:
        root = Path(root)
        full = self._full(root, task)
        rows = np.flatnonzero(full.status == split)
        names = [full.names[i] for i in rows]
        files = [p.relative_to(root).as_posix() if p.is_relative_to(root) else str(p)
                 for p in self.annotation_files(root, split, year, task)]
        meta: dict[str, Any] = {"root": str(root.resolve()), "year": None, "task": task, "annotation_files": files,
                                "bbox_format": "x_1, y_1, x_2, y_2 in pixels (Anno/list_bbox.txt)"}
        if full.label_parents is not None:
            meta["label_parents"] = list(full.label_parents)
        items = {"bbox": full.bbox[rows].astype(np.int64)}
        if task == "category":
            meta["category_labels"] = list(range(1, len(full.label_names) + 1))
            return LabelIndex.from_class_ids("deepfashion", split, full.label_names, names, names,
                                             full.class_ids[rows], meta=meta, item_arrays=items)
        new_row = np.full(len(full.names), -1, dtype=np.int64)
        new_row[rows] = np.arange(rows.size)
        attrs = full.attrs
        one_r, one_c = _select(attrs.one_rows, attrs.one_cols, new_row)
        oth_r, oth_c = _select(attrs.other_rows, attrs.other_cols, new_row)
        if task == "attributes":
            if attrs.other_value == 0:  # the 0s are the masked entries
                return LabelIndex.from_pairs("deepfashion", split, full.label_names, names, names, one_r, one_c,
                                             oth_r, oth_c, known_by_default=True, meta=meta, item_arrays=items)
            # the 0s are the majority: list the known entries (1s and -1s) instead
            return LabelIndex.from_pairs("deepfashion", split, full.label_names, names, names, one_r, one_c,
                                         np.concatenate([one_r, oth_r]), np.concatenate([one_c, oth_c]),
                                         known_by_default=False, meta=meta, item_arrays=items)
        return self._patterns_index(full, split, names, rows.size, (one_r, one_c), (oth_r, oth_c), meta, items)

    @staticmethod
    def _patterns_index(full: _Full, split: str, names: list[str], n: int, ones, others, meta, items) -> LabelIndex:
        attr_index = {name: c for c, name in enumerate(full.attr_names)}
        groups = full.groups
        member = np.zeros((full.attrs.n_cols, len(groups)), dtype=bool)
        for g, attributes in enumerate(groups.values()):
            member[[attr_index[a] for a in attributes], g] = True
        size = member.sum(axis=0)
        has_one = np.zeros((n, len(groups)), dtype=bool)
        n_other = np.zeros((n, len(groups)), dtype=np.int64)
        for g in range(len(groups)):
            sel = member[ones[1], g]
            has_one[ones[0][sel], g] = True
            sel = member[others[1], g]
            n_other[:, g] = np.bincount(others[0][sel], minlength=n)
        if full.attrs.other_value == 0:
            known = has_one | (n_other == 0)       # no member unknown: all -1 unless one is 1
        else:
            known = has_one | (n_other == size)    # every member is -1
        pos_r, pos_c = np.nonzero(has_one)
        mask_r, mask_c = np.nonzero(~known)
        meta = dict(meta, pattern_groups={g: list(a) for g, a in groups.items()},
                    pattern_rule="positive if any member attribute is 1; negative if all are -1; masked otherwise",
                    patterns_file=str(PATTERNS_FILE))
        return LabelIndex.from_pairs("deepfashion", split, list(groups), names, names, pos_r, pos_c,
                                     mask_r, mask_c, known_by_default=True, meta=meta, item_arrays=items)


def _raise_first_duplicate(rows: _Rows) -> None:
    first: dict[str, int] = {}
    for k, name in enumerate(rows.names):
        if name in first:
            raise rows.error(k, f"duplicate image {name!r} (first at line {rows.line_of(first[name])})")
        first[name] = k
