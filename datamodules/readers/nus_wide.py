"""NUS-WIDE (interfaces.md "Dataset roots": ``nus-wide``; Chua et al., CIVR 2009).

Layout (the official metadata archives, unchanged)::

    ROOT/ImageList/{Imagelist,TrainImagelist,TestImagelist}.txt   269,648 / 161,789 / 107,859 lines
    ROOT/ConceptsList/Concepts81.txt                               the 81 concepts (CRLF)
    ROOT/Groundtruth/TrainTestLabels/Labels_<concept>_{Train,Test}.txt   one 0/1 a line
    ROOT/NUS_WID_Tags/TagList1k.txt                                the 1,000 tags (CRLF)
    ROOT/NUS_WID_Tags/AllTags1k.txt                                one row of 1,000 0/1 a line
    ROOT/Flickr/<folder>/<file>.jpg                                the images

Image lists name Windows paths: ``actor\\0001_2124494179.jpg`` (the split lists) or
``C:\\ImageData\\Flickr\\actor\\0001_2124494179.jpg``; the part after the ``Flickr`` folder
(else the last two parts, as ``fashionbench download nus-wide`` does) becomes the image
path ``Flickr/actor/0001_2124494179.jpg`` and the id ``actor/0001_2124494179``. A
``Labels_<concept>_{Train,Test}.txt`` line ``i`` is about line ``i`` of
``{Train,Test}Imagelist.txt``; an ``AllTags1k.txt`` row ``i`` is about line ``i`` of
``Imagelist.txt`` (split images are matched to it by their normalised path, case-blind).
CRLF, a BOM, trailing blanks and blank lines are tolerated everywhere.

Splits: ``train`` (TrainImagelist, 161,789 images) and ``test`` (TestImagelist, 107,859),
the official partition that LESA and SDL use; there is no official validation split (LESA
validates on the first 5,000 train images; SDL's configs evaluate on ``test``).

Tasks (the zero-shot protocol of Fast0Tag, LESA and SDL, SDL paper §4.1):

- ``concepts81``: the 81 human-verified concepts (``Concepts81.txt`` order) from the
  Groundtruth files; reads no tag file. Every entry is known.
- ``zsl``: ``train`` on the 925 *seen* tags, ``TagList1k.txt`` minus the 75 tags that are
  also concepts (``TagList1k`` order), labels from the images' ``AllTags1k.txt`` rows
  (1 positive, 0 negative, as LESA reads them: ``2x - 1``); ``test`` on the 81 concepts
  (unseen), from the Groundtruth files. ``meta["label_seen"]``.
- ``gzsl``: ``train`` as ``zsl``; ``test`` on all 1,006 labels: the 925 seen tags (from
  ``AllTags1k.txt``) followed by the 81 concepts. (LESA orders its 1,006 labels 81 concepts
  first; the order changes no metric.) ``meta["label_seen"]``.

Each task and split reads only the files it needs (:meth:`NUSWideReader.annotation_files`
lists exactly them): ``concepts81`` and ``zsl`` ``test`` never open a tag file, the
tag-based splits never open a Groundtruth file they do not use.

Which images are kept: every image the split list names, as LESA does (its NUS-WIDE
TFRecords hold every listed image whose JPEG decodes; its evaluation keeps images without
a positive, ``exclude=False``). Images without a positive of the task's labels are kept
and counted (``meta["images_without_positives"]``); a zero-shot loss gives them no rank
term. SDL's own NUS-WIDE data code is not public (ZS_SDL ships only the 1,006 label names
and FastText vectors, and the COCO pipeline), so LESA's is what is followed here.
Images the lists name but the disk lacks are listed by ``data summary``
(``missing_images``); with the reader option ``drop_missing_images=True`` (what the
datamodule sets) they are left out (``meta["missing_images"]``, ``meta["listed_images"]``)
and the image folders join the cache key.

Speed: the 0/1 files are parsed with numpy (byte compares, one reshape), not line by line:
the 162 Groundtruth files of a split take well under a second, ``AllTags1k.txt`` (270K x
1,000 values) a few seconds, once: the index is cached.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from datamodules.index import LabelIndex
from datamodules.registry import DatasetReader, register_reader
from fashionbench.errors import InputError

__all__ = ["NUSWideReader", "read_name_list", "read_image_list", "read_binary_rows", "normalise_image_path",
           "N_SEEN_TAGS"]

SPLIT_FILES = {"train": "TrainImagelist.txt", "test": "TestImagelist.txt"}
SPLIT_SUFFIX = {"train": "Train", "test": "Test"}
N_SEEN_TAGS = 925
_BLOCK = 8 << 20
_ALLOWED = np.zeros(256, dtype=bool)
_ALLOWED[[ord(c) for c in "01 \t\r\n"]] = True


# --------------------------------------------------------------------------- text files
def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError("missing annotation file", path=path) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"not UTF-8 text ({err.reason})", path=path, line=data[: err.start].count(b"\n") + 1) from None


def read_name_list(path: Path) -> list[str]:
    """``Concepts81.txt`` / ``TagList1k.txt``: one name a line (CRLF, blanks tolerated);
    a repeated name is an error."""
    names: list[str] = []
    first: dict[str, int] = {}
    for number, line in enumerate(_read_text(path).split("\n"), start=1):
        name = line.strip()
        if not name:
            continue
        if name in first:
            raise InputError(f"duplicate name '{name}' (first at line {first[name]})", path=path, line=number)
        first[name] = number
        names.append(name)
    if not names:
        raise InputError("empty name list", path=path)
    return names


def normalise_image_path(entry: str) -> tuple[str, ...]:
    """``C:\\ImageData\\Flickr\\actor\\x.jpg`` or ``actor\\x.jpg`` -> ``("actor", "x.jpg")``:
    the parts after the last ``Flickr`` folder, else the last two."""
    parts = [p for p in entry.strip().replace("\\", "/").split("/") if p]
    after = [k + 1 for k, part in enumerate(parts) if part.lower() == "flickr"]
    return tuple(parts[after[-1]:] if after else parts[-2:])


def read_image_list(path: Path) -> tuple[list[str], list[int]]:
    """An image list: each entry's normalised relative path (``actor/x.jpg``, see
    :func:`normalise_image_path`) and its line number."""
    keys: list[str] = []
    lines: list[int] = []
    for number, line in enumerate(_read_text(path).replace("\\", "/").split("\n"), start=1):
        entry = line.strip()
        if not entry:
            continue
        if entry.count("/") == 1 and entry[0] != "/" and entry[-1] != "/" and entry[:7].lower() != "flickr/":
            key = entry  # the usual ``folder/file`` line
        else:
            parts = normalise_image_path(entry)
            if not parts:
                raise InputError(f"expected an image path, got {entry!r}", path=path, line=number)
            key = "/".join(parts)
        if "/." in "/" + key and any(p in (".", "..") for p in key.split("/")):  # no way out of ROOT/Flickr
            raise InputError(f"expected an image path, got {entry!r}", path=path, line=number)
        keys.append(key)
        lines.append(number)
    return keys, lines


def _blocks(path: Path, block_bytes: int) -> Iterator[tuple[bytes, int]]:
    """``(whole-line block, line number of its first line)``."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise InputError("missing annotation file", path=path) from None
    with handle:
        leftover, line = b"", 1
        while True:
            chunk = handle.read(block_bytes)
            if not chunk:
                if leftover:
                    yield leftover + b"\n", line
                return
            data = leftover + chunk if leftover else chunk
            if line == 1 and data.startswith(b"\xef\xbb\xbf"):
                data = b"   " + data[3:]  # a BOM: blank it out, keep the offsets
            cut = data.rfind(b"\n")
            if cut < 0:
                leftover = data
                continue
            block, leftover = data[: cut + 1], data[cut + 1:]
            yield block, line
            line += block.count(b"\n")


def read_binary_rows(path: Path, ncols: int, block_bytes: int = _BLOCK) -> tuple[int, np.ndarray, np.ndarray]:
    """A text matrix of 0/1 values, ``ncols`` whitespace-separated values a row (blank
    lines skipped): ``(rows, row of each 1, column of each 1)``. Vectorised per block; a
    malformed line is an InputError naming it."""
    rows_done = 0
    one_rows: list[np.ndarray] = []
    one_cols: list[np.ndarray] = []
    for data, first_line in _blocks(path, block_bytes):
        b = np.frombuffer(data, dtype=np.uint8)
        digit = (b == 48) | (b == 49)
        fast = bool(_ALLOWED[b].all()) and not bool((digit[1:] & digit[:-1]).any())
        if not fast:
            n, r, c = _binary_rows_slow(path, data, first_line, ncols)
        else:
            nl = np.flatnonzero(b == 10)
            through = np.cumsum(digit, dtype=np.int64)[nl]  # digits up to each line's end
            per_line = np.diff(through, prepend=0)
            bad = (per_line != ncols) & (per_line != 0)
            if bad.any():
                k = int(np.argmax(bad))
                raise InputError(f"expected {ncols} values (0 or 1), got {int(per_line[k])}", path=path,
                                 line=first_line + k)
            values = b[digit]
            n = int(np.count_nonzero(per_line))
            ones = np.flatnonzero(values == 49)
            r, c = np.divmod(ones, ncols)
        one_rows.append(r + rows_done)
        one_cols.append(c)
        rows_done += n
    if not one_rows:
        return 0, np.zeros(0, np.int64), np.zeros(0, np.int64)
    return rows_done, np.concatenate(one_rows).astype(np.int64), np.concatenate(one_cols).astype(np.int64)


def _binary_rows_slow(path: Path, data: bytes, first_line: int, ncols: int) -> tuple[int, np.ndarray, np.ndarray]:
    """:func:`read_binary_rows` for a block with other tokens (``1.0``, ``+1``, ...): line by line."""
    rows, cols, n = [], [], 0
    for k, line in enumerate(data.decode("utf-8", errors="replace").split("\n")):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) != ncols:
            raise InputError(f"expected {ncols} values (0 or 1), got {len(tokens)}", path=path, line=first_line + k)
        for j, token in enumerate(tokens):
            try:
                value = float(token)
            except ValueError:
                value = None
            if value not in (0.0, 1.0):
                raise InputError(f"expected 0 or 1, got {token!r}", path=path, line=first_line + k)
            if value == 1.0:
                rows.append(n)
                cols.append(j)
        n += 1
    return n, np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)


# --------------------------------------------------------------------------- reader
@register_reader
class NUSWideReader(DatasetReader):
    """NUS-WIDE concepts and tags -> index (see the module docstring).

    Args:
        drop_missing_images: leave out the listed images without a file under
            ``ROOT/Flickr/`` (``data summary`` reads with this off).
    """

    name = "nus-wide"
    version = 1
    splits = ("train", "test")
    default_split = "train"
    tasks = ("concepts81", "zsl", "gzsl")

    def __init__(self, drop_missing_images: bool = False):
        self.drop_missing_images = bool(drop_missing_images)

    @property
    def options(self) -> dict[str, Any]:
        return {"drop_missing_images": self.drop_missing_images}

    # ---------------------------------------------------------------- files
    @staticmethod
    def concepts_file(root: Path) -> Path:
        return Path(root) / "ConceptsList" / "Concepts81.txt"

    @staticmethod
    def split_list(root: Path, split: str) -> Path:
        return Path(root) / "ImageList" / SPLIT_FILES[split]

    @staticmethod
    def label_file(root: Path, concept: str, split: str) -> Path:
        return Path(root) / "Groundtruth" / "TrainTestLabels" / f"Labels_{concept}_{SPLIT_SUFFIX[split]}.txt"

    @staticmethod
    def tag_files(root: Path) -> list[Path]:
        root = Path(root)
        return [root / "NUS_WID_Tags" / "TagList1k.txt", root / "ImageList" / "Imagelist.txt",
                root / "NUS_WID_Tags" / "AllTags1k.txt"]

    @staticmethod
    def parts(split: str, task: str) -> tuple[bool, bool]:
        """(uses the 925 seen tags, uses the 81 concepts) for this split and task."""
        if task == "concepts81":
            return False, True
        if split == "train":
            return True, False
        return task == "gzsl", True

    def available(self, root: Path) -> list[tuple[int | None, str]]:
        return [(None, s) for s in self.splits if self.split_list(root, s).is_file()]

    def annotation_files(self, root: Path, split: str, year: int | None, task: str) -> list[Path]:
        root = Path(root)
        tags, concepts = self.parts(split, task)
        files = [self.concepts_file(root), self.split_list(root, split)]
        if tags:
            files += self.tag_files(root)
        if concepts:
            files += [self.label_file(root, c, split) for c in read_name_list(self.concepts_file(root))]
        for path in files:
            if not path.is_file():
                raise InputError("missing annotation file", path=path)
        if self.drop_missing_images:
            keys, _ = read_image_list(self.split_list(root, split))
            folders = sorted({key.rpartition("/")[0] for key in keys})
            files += [root / "Flickr" / f for f in folders if (root / "Flickr" / f).is_dir()]
        return files

    # ---------------------------------------------------------------- read
    def read(self, root: Path, split: str, year: int | None, task: str) -> LabelIndex:
        root = Path(root)
        use_tags, use_concepts = self.parts(split, task)
        concepts = read_name_list(self.concepts_file(root))
        list_path = self.split_list(root, split)
        keys, list_lines = read_image_list(list_path)
        first_line: dict[str, int] = {}
        for key, number in zip(keys, list_lines):
            if key in first_line:
                raise InputError(f"duplicate image '{key}' (first at line {first_line[key]})", path=list_path, line=number)
            first_line[key] = number
        n = len(keys)
        names: list[str] = []
        seen: list[bool] = []
        pos_rows: list[np.ndarray] = []
        pos_cols: list[np.ndarray] = []
        meta: dict[str, Any] = {"root": str(root.resolve()), "year": None, "task": task}
        if use_tags:
            tag_names, tag_rows, tag_cols, tag_meta = self._seen_tags(root, keys, list_path, list_lines, concepts)
            names += tag_names
            seen += [True] * len(tag_names)
            pos_rows.append(tag_rows)
            pos_cols.append(tag_cols)
            meta.update(tag_meta)
        if use_concepts:
            offset = len(names)
            for c, concept in enumerate(concepts):
                path = self.label_file(root, concept, split)
                rows, ones, _ = read_binary_rows(path, 1)
                if rows != n:
                    raise InputError(f"{rows} label lines for the {n} images of {list_path.name}", path=path)
                pos_rows.append(ones)
                pos_cols.append(np.full(ones.size, offset + c, dtype=np.int64))
            names += concepts
            seen += [False] * len(concepts)
        if task != "concepts81":
            meta["label_seen"] = seen
        if len(set(names)) != len(names):
            dup = next(x for x in names if names.count(x) > 1)
            raise InputError(f"label '{dup}' is both a seen tag and a concept", path=self.concepts_file(root))
        rows = np.concatenate(pos_rows) if pos_rows else np.zeros(0, np.int64)
        cols = np.concatenate(pos_cols) if pos_cols else np.zeros(0, np.int64)
        paths = [f"Flickr/{k}" for k in keys]
        ids = [k[:-4] if k[-4:].lower() == ".jpg" else os.path.splitext(k)[0] for k in keys]
        if self.drop_missing_images:
            from datamodules.summary import missing_files

            missing = set(missing_files(root, paths))
            keep = np.array([p not in missing for p in paths], dtype=bool)
            meta.update(listed_images=n, missing_images=int(n - keep.sum()))
            if not keep.all():
                new_row = np.cumsum(keep) - 1
                entry = keep[rows]
                rows, cols = new_row[rows[entry]], cols[entry]
                paths = [p for p, k in zip(paths, keep) if k]
                ids = [i for i, k in zip(ids, keep) if k]
        files = self.annotation_files(root, split, year, task)
        meta["annotation_files"] = [p.relative_to(root).as_posix() for p in files if p.is_file()]
        index = LabelIndex.from_pairs("nus-wide", split, names, paths, ids, rows, cols,
                                      known_by_default=True, meta=meta)
        index.meta["images_without_positives"] = int(np.count_nonzero(np.diff(index.pos_indptr) == 0))
        return index

    def _seen_tags(self, root: Path, keys: list[str], list_path: Path, list_lines: list[int],
                   concepts: list[str]) -> tuple[list[str], np.ndarray, np.ndarray, dict[str, Any]]:
        """The 925 seen tags and the split images' positives among them (from AllTags1k)."""
        tag_list, all_list, all_tags = self.tag_files(root)
        tags = read_name_list(tag_list)
        concept_set = set(concepts)
        seen_cols = [j for j, t in enumerate(tags) if t not in concept_set]
        overlap = [t for t in tags if t in concept_set]
        all_keys, all_lines = read_image_list(all_list)
        row_of = {key.lower(): row for row, key in enumerate(all_keys)}
        if len(row_of) != len(all_keys):
            seen_keys: set[str] = set()
            for key, number in zip(all_keys, all_lines):
                if key.lower() in seen_keys:
                    raise InputError(f"duplicate image '{key}'", path=all_list, line=number)
                seen_keys.add(key.lower())
        split_rows = np.empty(len(keys), dtype=np.int64)
        for i, key in enumerate(keys):
            row = row_of.get(key.lower())
            if row is None:
                raise InputError(f"image '{key}' is not in {all_list.name}", path=list_path, line=list_lines[i])
            split_rows[i] = row
        n_all, r, c = read_binary_rows(all_tags, len(tags))
        if n_all != len(all_keys):
            raise InputError(f"{n_all} tag rows for the {len(all_keys)} images of {all_list.name}", path=all_tags)
        to_split = np.full(n_all, -1, dtype=np.int64)
        to_split[split_rows] = np.arange(len(keys))
        to_seen = np.full(len(tags), -1, dtype=np.int64)
        to_seen[seen_cols] = np.arange(len(seen_cols))
        rows, cols = to_split[r], to_seen[c]
        keep = (rows >= 0) & (cols >= 0)
        meta = {"tags_also_concepts": overlap, "n_tags": len(tags)}
        return [tags[j] for j in seen_cols], rows[keep], cols[keep], meta
