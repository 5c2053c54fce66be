"""PASCAL VOC 2007/2012 (interfaces.md "Dataset roots": ``voc``).

Layout: ``ROOT/VOCdevkit/VOC{year}/{Annotations,ImageSets/Main,JPEGImages}/``.

Labels of a split, in the 20 classes' official order:

- When all 20 ``ImageSets/Main/<class>_<split>.txt`` exist they are the labels: ``1``
  positive, ``-1`` negative, ``0`` difficult (masked). Lines are ``<id> <value>`` with any
  whitespace (the devkit writes ``"%s %2d"``, e.g. ``000007  1``). The image list is
  ``ImageSets/Main/<split>.txt`` when present (else the ids of the class files, in the
  first file's order); every class file must list exactly those ids.
- Otherwise ``Annotations/<id>.xml`` of every id in ``ImageSets/Main/<split>.txt``: a class
  is positive for an image with at least one non-difficult object of it, masked when all
  its objects are difficult, negative otherwise. ``<part>`` elements (VOC2012 person
  layout: head, hand, foot) are not objects.

VOC2012's test labels are not public: 2012 configs train on ``train`` and evaluate on
``val``.
"""
from __future__ import annotations

import re
from pathlib import Path
from xml.parsers import expat

import numpy as np

from datamodules.index import LabelIndex
from datamodules.registry import DatasetReader, register_reader
from fashionbench.errors import InputError

__all__ = ["VOC_CLASSES", "VOCReader", "parse_voc_xml", "read_id_table"]

#: The 20 VOC classes in the devkit's order (VOCinit.m).
VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)
_CLASS_INDEX = {name: i for i, name in enumerate(VOC_CLASSES)}
_CLASS_VALUES = np.array(["-1", "0", "1"])


# --------------------------------------------------------------------------- text tables
class _Table:
    """A whitespace-separated text file of ``ncols`` tokens a line (blank lines skipped).

    The happy path is one regex pass; line numbers are worked out only for an error.
    """

    def __init__(self, path: Path, ncols: int):
        self.path = path
        try:
            self.text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InputError("missing file", path=path) from None
        except UnicodeDecodeError as err:
            raise InputError(f"not UTF-8 text ({err.reason})", path=path,
                             line=path.read_bytes()[: err.start].count(b"\n") + 1) from None
        cells = r"[ \t]+".join([r"(\S+)"] * ncols)
        rows = re.findall(rf"^[ \t]*{cells}[ \t\r]*$", self.text, re.M)
        n_nonblank = len(re.findall(r"^[ \t\r]*\S", self.text, re.M))
        if len(rows) != n_nonblank:
            self._raise_first_malformed(ncols)
        self.cells = np.array(rows, dtype=str).reshape(len(rows), ncols)
        self._lines: np.ndarray | None = None

    def line_of(self, row: int) -> int:
        """1-based line number of the ``row``-th non-blank line."""
        if self._lines is None:
            nonblank = [bool(line.strip()) for line in self.text.split("\n")]
            self._lines = np.flatnonzero(nonblank) + 1
        return int(self._lines[row])

    def error(self, row: int, problem: str) -> InputError:
        return InputError(problem, path=self.path, line=self.line_of(row))

    def _raise_first_malformed(self, ncols: int) -> None:
        want = "an image id" if ncols == 1 else f"{ncols} whitespace-separated fields"
        for number, line in enumerate(self.text.split("\n"), start=1):
            fields = line.split()
            if fields and len(fields) != ncols:
                raise InputError(f"expected {want}, got {line.strip()!r}", path=self.path, line=number)
        raise InputError(f"expected {want} a line", path=self.path)  # pragma: no cover


def read_id_table(path: Path) -> tuple[_Table, np.ndarray]:
    """An ``ImageSets`` split list: one unique id a line."""
    table = _Table(path, 1)
    ids = table.cells[:, 0]
    _raise_duplicate(table, ids)
    return table, ids


def _raise_duplicate(table: _Table, ids: np.ndarray) -> None:
    if ids.size == 0:
        return
    order = np.argsort(ids, kind="stable")
    same = ids[order[1:]] == ids[order[:-1]]
    if np.any(same):
        second = order[1:][same].min()  # first line that repeats an earlier id
        raise table.error(int(second), f"duplicate image id '{ids[second]}'")


# --------------------------------------------------------------------------- XML
class _VOCXMLHandler:
    """expat callbacks collecting ``(class index, difficult)`` of each ``annotation/object``."""

    def __init__(self, parser: expat.XMLParserType, path: Path):
        self.parser, self.path = parser, path
        self.stack: list[str] = []
        self.text: list[str] = []
        self.objects: list[tuple[int, bool]] = []
        self.name: tuple[str, int] | None = None
        self.difficult: tuple[str, int] | None = None
        self.object_line = 0
        self.line = 0

    def start(self, tag: str, attrs: dict) -> None:
        self.stack.append(tag)
        depth = len(self.stack)
        if depth == 2 and tag == "object":
            self.name = self.difficult = None
            self.object_line = self.parser.CurrentLineNumber
        elif depth == 3 and self.stack[1] == "object":
            self.text = []
            self.line = self.parser.CurrentLineNumber

    def chars(self, data: str) -> None:
        self.text.append(data)

    def end(self, tag: str) -> None:
        depth = len(self.stack)
        if depth == 3 and self.stack[1] == "object":
            if tag == "name":
                self.name = ("".join(self.text).strip(), self.line)
            elif tag == "difficult":
                self.difficult = ("".join(self.text).strip(), self.line)
        elif depth == 2 and tag == "object":
            self.objects.append(self._finish_object())
        self.stack.pop()

    def _finish_object(self) -> tuple[int, bool]:
        if self.name is None:
            raise InputError("<object> without <name>", path=self.path, line=self.object_line)
        name, line = self.name
        if name not in _CLASS_INDEX:
            raise InputError(f"unknown class '{name}' (VOC has {len(VOC_CLASSES)} classes: "
                             f"{', '.join(VOC_CLASSES)})", path=self.path, line=line)
        difficult = False
        if self.difficult is not None and self.difficult[0] != "":
            if self.difficult[0] not in ("0", "1"):
                raise InputError(f"<difficult> must be 0 or 1, got '{self.difficult[0]}'",
                                 path=self.path, line=self.difficult[1])
            difficult = self.difficult[0] == "1"
        return _CLASS_INDEX[name], difficult


def parse_voc_xml(path: Path, data: bytes | None = None) -> list[tuple[int, bool]]:
    """``(class index, difficult)`` for every object of one VOC annotation file."""
    if data is None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise InputError("missing annotation file", path=path) from None
    parser = expat.ParserCreate()
    parser.buffer_text = True
    handler = _VOCXMLHandler(parser, path)
    parser.StartElementHandler = handler.start
    parser.EndElementHandler = handler.end
    parser.CharacterDataHandler = handler.chars
    try:
        parser.Parse(data, True)
    except expat.ExpatError as err:
        raise InputError(f"bad XML: {expat.ErrorString(err.code)} (column {err.offset + 1})",
                         path=path, line=err.lineno) from None
    return handler.objects


# --------------------------------------------------------------------------- reader
@register_reader
class VOCReader(DatasetReader):
    """PASCAL VOC classification labels (see the module docstring)."""

    name = "voc"
    version = 1
    years = (2007, 2012)
    default_year = 2007
    splits = ("train", "val", "trainval", "test")
    default_split = "trainval"

    @staticmethod
    def year_dir(root: Path, year: int) -> Path:
        return Path(root) / "VOCdevkit" / f"VOC{year}"

    def available(self, root: Path) -> list[tuple[int | None, str]]:
        out = []
        for year in self.years:
            main = self.year_dir(root, year) / "ImageSets" / "Main"
            out += [(year, s) for s in self.splits
                    if (main / f"{s}.txt").is_file() or (main / f"{VOC_CLASSES[0]}_{s}.txt").is_file()]
        return out

    def _main_dir(self, root: Path, year: int) -> Path:
        base = self.year_dir(root, year)
        if not base.is_dir():
            raise InputError("missing VOC directory", path=base)
        main = base / "ImageSets" / "Main"
        if not main.is_dir():
            raise InputError("missing directory", path=main)
        return main

    @staticmethod
    def _class_files(main: Path, split: str) -> list[Path] | None:
        """The 20 class files if all exist, None if none does (an error if only some do)."""
        paths = [main / f"{c}_{split}.txt" for c in VOC_CLASSES]
        present = [p.is_file() for p in paths]
        if all(present):
            return paths
        if any(present):
            missing = paths[present.index(False)]
            raise InputError(f"missing class file ({sum(present)} of {len(paths)} "
                             f"<class>_{split}.txt files exist)", path=missing)
        return None

    def annotation_files(self, root: Path, split: str, year: int | None, task: str) -> list[Path]:
        main = self._main_dir(root, year)
        split_list = main / f"{split}.txt"
        class_files = self._class_files(main, split)
        if class_files is not None:
            return ([split_list] if split_list.is_file() else []) + class_files
        if not split_list.is_file():
            raise InputError(f"missing split list (and no ImageSets/Main/<class>_{split}.txt files)",
                             path=split_list)
        _, ids = read_id_table(split_list)
        annotations = self.year_dir(root, year) / "Annotations"
        return [split_list] + [annotations / f"{i}.xml" for i in ids]

    def read(self, root: Path, split: str, year: int | None, task: str) -> LabelIndex:
        root = Path(root)
        main = self._main_dir(root, year)
        split_list = main / f"{split}.txt"
        class_files = self._class_files(main, split)
        meta = {"root": str(root.resolve()), "year": year, "task": task}
        if class_files is not None:
            ids, pos, masked = self._read_class_files(class_files, split_list if split_list.is_file() else None)
            rel = [p.relative_to(root).as_posix() for p in ([split_list] if split_list.is_file() else []) + class_files]
            meta.update(source="ImageSets/Main class files", annotation_files=rel)
        else:
            if not split_list.is_file():
                raise InputError(f"missing split list (and no ImageSets/Main/<class>_{split}.txt files)",
                                 path=split_list)
            ids, pos, masked = self._read_xml(root, year, split_list)
            meta.update(source="Annotations XML",
                        annotation_files=[split_list.relative_to(root).as_posix(),
                                          f"VOCdevkit/VOC{year}/Annotations/<id>.xml"])
        ids = [str(i) for i in ids]
        paths = [f"VOCdevkit/VOC{year}/JPEGImages/{i}.jpg" for i in ids]
        return LabelIndex.from_pairs("voc", split, VOC_CLASSES, paths, ids, pos[0], pos[1],
                                     masked[0], masked[1], known_by_default=True, meta=meta)

    @staticmethod
    def _read_class_files(class_files: list[Path], split_list: Path | None):
        tables = [_Table(p, 2) for p in class_files]
        if split_list is not None:
            list_table, ids = read_id_table(split_list)
        else:
            list_table, ids = None, tables[0].cells[:, 0]
            _raise_duplicate(tables[0], ids)
        n = ids.size
        sorter = np.argsort(ids)
        pos_rows, pos_cols, mask_rows, mask_cols = [], [], [], []
        for label, table in enumerate(tables):  # 20 files; each handled vectorised
            file_ids, values = table.cells[:, 0], table.cells[:, 1]
            bad = ~np.isin(values, _CLASS_VALUES)
            if np.any(bad):
                k = int(np.argmax(bad))
                raise table.error(k, f"label must be 1, -1 or 0, got '{values[k]}'")
            if np.array_equal(file_ids, ids):
                rows = np.arange(n)
            else:
                if n:
                    rows = sorter[np.minimum(np.searchsorted(ids, file_ids, sorter=sorter), n - 1)]
                    unknown = ids[rows] != file_ids
                else:
                    rows, unknown = np.zeros(file_ids.size, np.int64), np.ones(file_ids.size, bool)
                if np.any(unknown):
                    k = int(np.argmax(unknown))
                    where = split_list.name if split_list is not None else class_files[0].name
                    raise table.error(k, f"image id '{file_ids[k]}' is not in {where}")
                _raise_duplicate(table, file_ids)
                if rows.size != n:  # all known, none repeated: some id is missing
                    covered = np.zeros(n, dtype=bool)
                    covered[rows] = True
                    r = int(np.argmin(covered))
                    if list_table is not None:
                        raise list_table.error(r, f"image id '{ids[r]}' has no line in {table.path.name}")
                    raise InputError(f"image id '{ids[r]}' of {class_files[0].name} has no line here",
                                     path=table.path)
            positive, difficult = rows[values == "1"], rows[values == "0"]
            pos_rows.append(positive), pos_cols.append(np.full(positive.size, label))
            mask_rows.append(difficult), mask_cols.append(np.full(difficult.size, label))
        cat = np.concatenate
        return ids, (cat(pos_rows), cat(pos_cols)), (cat(mask_rows), cat(mask_cols))

    @staticmethod
    def _read_xml(root: Path, year: int, split_list: Path):
        list_table, ids = read_id_table(split_list)
        annotations = VOCReader.year_dir(root, year) / "Annotations"
        rows: list[int] = []
        labels: list[int] = []
        difficult: list[bool] = []
        for row, image_id in enumerate(ids):  # one expat parse per file is the unit of work
            path = annotations / f"{image_id}.xml"
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                raise InputError(f"missing annotation file (image listed at {split_list.name}:"
                                 f"{list_table.line_of(row)})", path=path) from None
            objects = parse_voc_xml(path, data)
            rows += [row] * len(objects)
            for label, is_difficult in objects:
                labels.append(label)
                difficult.append(is_difficult)
        rows_a, labels_a, hard_a = np.asarray(rows, np.int64), np.asarray(labels, np.int64), np.asarray(difficult, bool)
        easy = np.zeros((ids.size, len(VOC_CLASSES)), dtype=bool)
        hard = np.zeros_like(easy)
        easy[rows_a[~hard_a], labels_a[~hard_a]] = True
        hard[rows_a[hard_a], labels_a[hard_a]] = True
        # masked: the class's only objects in the image are difficult
        return ids, np.nonzero(easy), np.nonzero(hard & ~easy)


# --------------------------------------------------------------------------- datamodule
