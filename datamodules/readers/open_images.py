"""Open Images v4 human-verified image-level labels (interfaces.md "Dataset roots": ``open-images``).

Layout (the 2018_04 release, unchanged)::

    ROOT/2018_04/class-descriptions.csv            MID,display name (19,995 rows, no header)
    ROOT/2018_04/classes-trainable.txt             the 7,186 trainable (seen) MIDs, one a line
    ROOT/2018_04/unseen_400_mids.txt               the 400 unseen MIDs (LESA's list, see below)
    ROOT/2018_04/<split>/<split>-annotations-human-imagelabels.csv   for train, validation, test
    ROOT/images/<split>/<ImageID>.jpg

Tasks (label sets, the same for every split; SDL paper §4.1, which follows LESA [21]):

- ``multilabel`` (default): the 7,186 MIDs of ``classes-trainable.txt``, in that order;
- ``zsl``: the 400 unseen MIDs of ``unseen_400_mids.txt``, in that order. They are "the most
  frequent 400 test labels not present in the training data", so the ``train`` split has
  (almost) no images for this task: zero-shot configs train on ``task: multilabel`` and
  evaluate ``zsl``/``gzsl`` on ``test`` (``test_sets``);
- ``gzsl``: the 7,186 followed by the 400; ``meta["label_seen"]`` marks the first 7,186.

``unseen_400_mids.txt`` is LESA's ``top_400_unseen.csv`` (400 row indices into the 2,594-MID
unseen pool of ``unseen_labels.pkl``) resolved to MIDs (shared fixture, hbdat/cvpr20_LESA
@e40a7f29). ``label_names`` are the MIDs; ``meta["label_display_names"]`` holds the names of
``class-descriptions.csv`` when that file is present (it then joins the cache key).

Labels, from the CSV (header ``ImageID,Source,LabelName,Confidence``, any column order):

- ``Confidence`` 1 is a positive, 0 a verified negative; any other value is an error
  (machine-generated label files, with fractional confidences, are not read). A pair
  without a row is unknown: the index has ``known_by_default=False`` and lists the
  verified pairs; ``ignored`` = images - verified, per label.
- Rows for labels outside the task's set are skipped (``meta["ignored_rows"]``).
- A split's images are the ``ImageID``\\ s with at least one row for a label of the task's
  set, in the order of their first such row.
- Repeated rows of one (image, label) pair count once (``meta["duplicate_rows"]``); when
  they disagree the positive wins, and ``meta["conflicting_pairs"]`` counts them, reported
  in one logged warning per read.

LESA's protocol differs in one point worth knowing: its test set is every test image
that has any row at all (and a file on disk), whatever the label. Here a task's images
are those with a row for one of its labels, so ``zsl``/``gzsl`` test images all carry
an unseen/task label row, as interfaces.md says.

Scale (9M train images, tens of millions of rows): the CSV is parsed in 32 MB blocks with
numpy only - newlines and commas located by vectorised byte compares, fields gathered into
zero-padded byte matrices, label names mapped through a per-block hash factorisation
(checked byte for byte, so a hash collision cannot merge two names), image ids reduced to
runs of equal consecutive ids (the files are grouped by image) and factorised once over
the runs. No Python object is made per row, and peak memory stays proportional to the
rows (about 25 bytes a row) plus 16 bytes an image. The pairs are encoded as one int64
``(image * C + label) * 2 + (1 - confidence)``, sorted once, and deduplicated by neighbour
comparison (the positive sorts first). The resulting CSR arrays, and the image ids as one
byte blob (:class:`~datamodules.index.PackedStrings`; paths are a template over them), go
into the memory-mapped cache. A block holding a double quote is parsed with the ``csv``
module instead (quoted fields; never seen in the real files). ``benchmarks/perf/
index_build.py`` measures this against a plain ``pandas.read_csv`` of the same file.

Missing images: ``data summary`` lists them; with the reader option
``drop_missing_images=True`` (what the datamodule sets) images without a file under
``ROOT/images/<split>/`` are left out (``meta["missing_images"]``, ``meta["listed_images"]``)
and that folder joins the cache key.
"""
from __future__ import annotations

import csv
import functools
import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from datamodules.index import LabelIndex, PackedStrings, TemplateStrings
from datamodules.registry import DatasetReader, register_reader
from fashionbench.errors import InputError

__all__ = [
    "OpenImagesReader", "OI_SPLITS", "label_csv_path", "read_mid_list", "read_class_descriptions",
    "parse_label_csv", "ParsedLabels",
]

logger = logging.getLogger(__name__)

OI_SPLITS = ("train", "validation", "test")
RELEASE = "2018_04"
BLOCK_BYTES = 32 << 20
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


def label_csv_path(root: Path, split: str) -> Path:
    return Path(root) / RELEASE / split / f"{split}-annotations-human-imagelabels.csv"


def _release(root: Path) -> Path:
    return Path(root) / RELEASE


# --------------------------------------------------------------------------- label lists
def read_mid_list(path: Path) -> list[str]:
    """A one-MID-a-line list (``classes-trainable.txt``, ``unseen_400_mids.txt``): BOM, CR
    and blank lines tolerated; a repeated MID or a line with a comma/space is an error."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise InputError("missing label list", path=path) from None
    except UnicodeDecodeError as err:
        raise InputError(f"not UTF-8 text ({err.reason})", path=path) from None
    out: list[str] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        mid = line.strip()
        if not mid:
            continue
        if any(ch in mid for ch in ", \t"):
            raise InputError(f"expected one label MID a line, got {mid!r}", path=path, line=number)
        if mid in seen:
            raise InputError(f"duplicate label '{mid}' (first at line {seen[mid]})", path=path, line=number)
        seen[mid] = number
        out.append(mid)
    if not out:
        raise InputError("empty label list", path=path)
    return out


def read_class_descriptions(path: Path) -> dict[str, str]:
    """``class-descriptions.csv``: ``MID,display name`` rows (names may be quoted)."""
    out: dict[str, str] = {}
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        try:
            for row in reader:
                if not row:
                    continue
                if len(row) < 2:
                    raise InputError("expected MID,name", path=path, line=reader.line_num)
                out[row[0].strip()] = row[1]
        except csv.Error as err:
            raise InputError(f"bad CSV: {err}", path=path, line=reader.line_num) from None
    return out


# --------------------------------------------------------------------------- CSV parsing
@dataclass
class ParsedLabels:
    """What :func:`parse_label_csv` returns: unique ``(image, label)`` pairs, sorted."""

    image_ids: PackedStrings
    rows: np.ndarray          # int64 [P] image row of each verified pair (ascending)
    cols: np.ndarray          # int32 [P] label column
    positive: np.ndarray      # bool [P]
    stats: dict[str, int] = field(default_factory=dict)


_SLACK = 1 << 16  # spare bytes after a block in the read buffer: room for field windows


class _Block:
    """One block of whole lines: ``data[:end]`` (``end`` just past a newline), inside a
    buffer that extends at least ``_SLACK`` bytes further (whatever is there)."""

    __slots__ = ("buffer", "end")

    def __init__(self, buffer: np.ndarray, end: int):
        self.buffer, self.end = buffer, end

    def text(self) -> bytes:
        return self.buffer[: self.end].tobytes()


def _blocks(handle: io.BufferedReader, block_bytes: int) -> Iterator[_Block]:
    """Whole-line blocks of about ``block_bytes``, read into one reused buffer (no copy of
    a block; the partial last line moves to the buffer's front). The last block gets a
    newline if the file lacks one."""
    buffer = bytearray(block_bytes + 2 * _SLACK)
    view = memoryview(buffer)
    array = np.frombuffer(buffer, dtype=np.uint8)
    have = 0
    while True:
        room = len(buffer) - _SLACK - have
        if room < block_bytes // 2:  # a line longer than the buffer: grow it
            grown = bytearray(len(buffer) * 2)
            grown[:have] = buffer[:have]
            buffer, view = grown, memoryview(grown)
            array = np.frombuffer(buffer, dtype=np.uint8)
            continue
        n = handle.readinto(view[have:have + min(room, block_bytes)])
        total = have + n
        if n == 0:
            if have:
                buffer[have] = 10
                yield _Block(array, have + 1)
            return
        cut = buffer.rfind(b"\n", have, total)
        if cut < 0:
            have = total
            continue
        yield _Block(array, cut + 1)
        have = total - cut - 1
        buffer[:have] = buffer[cut + 1:total]


@functools.lru_cache(maxsize=8)
def _word_masks(words: int) -> np.ndarray:
    """``uint64 [8*words + 1, words]``: row L keeps the first L bytes of a padded field."""
    width = 8 * words
    keep = np.arange(width)[None, :] < np.arange(width + 1)[:, None]
    return (keep.astype(np.uint8) * 0xFF).view(np.uint64)


def _gather_words(b: np.ndarray, starts: np.ndarray, lengths: np.ndarray, words: int | None = None) -> np.ndarray:
    """``uint64 [n, words]``: each field's bytes, zero-padded to ``8 * words`` bytes
    (``words`` = enough for the longest). One fancy index of a sliding-window view of
    the buffer (a ``8*words``-byte copy a row), then one AND with a per-length mask; ``b``
    must reach ``8 * words`` bytes past every start."""
    if words is None:
        words = max(1, -(-int(lengths.max()) // 8)) if lengths.size else 1
    width = 8 * words
    if starts.size and int(starts.max()) + width > b.size:
        raise ValueError("field window beyond the buffer")
    out = np.lib.stride_tricks.sliding_window_view(b, width)[starts].view(np.uint64)
    out &= _word_masks(words)[np.minimum(lengths, width)]
    return out


def _hash_rows(words: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each zero-padded row and its length (uint64 [n])."""
    h = np.full(words.shape[0], _FNV_OFFSET, dtype=np.uint64)
    h ^= lengths.astype(np.uint64)
    for j in range(words.shape[1]):
        h ^= words[:, j]
        h *= _FNV_PRIME
        h ^= h >> np.uint64(29)
    return h


def _factorize_rows(words: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(codes int64 [n], first int64 [K])``: equal rows (and lengths) share a code, codes
    in order of first appearance, ``first[k]`` the first row of code k. Exact: a hash
    factorisation checked word for word (a sort on a collision)."""
    if words.shape[0] == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    codes, _ = pd.factorize(_hash_rows(words, lengths))
    codes = codes.astype(np.int64, copy=False)
    first = _first_of_codes(codes)
    rep = first[codes]
    if np.array_equal(lengths, lengths[rep]) and np.array_equal(words, words[rep]):
        return codes, first
    # a 64-bit hash collision (practically never): exact factorisation by sorting the rows
    keyed = np.ascontiguousarray(np.concatenate([words, lengths.astype(np.uint64)[:, None]], axis=1))
    keys = keyed.view(f"V{keyed.shape[1] * 8}").ravel()
    _, first_sorted, inverse = np.unique(keys, return_index=True, return_inverse=True)
    order = np.argsort(first_sorted, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank[inverse.ravel()].astype(np.int64), first_sorted[order].astype(np.int64)


def _first_of_codes(codes: np.ndarray) -> np.ndarray:
    """First position of each code, for codes numbered in order of first appearance."""
    prev_max = np.empty_like(codes)
    prev_max[0] = -1
    if codes.size > 1:
        np.maximum.accumulate(codes[:-1], out=prev_max[1:])
    return np.flatnonzero(codes > prev_max)


def _row_bytes(words: np.ndarray, row: int, length: int) -> bytes:
    return words[row].tobytes()[:length]


class _Accumulator:
    """Per-block results: the kept rows' run, label and confidence, and the runs' ids."""

    def __init__(self, label_lookup: dict[bytes, int]):
        self.label_lookup = label_lookup
        self.row_run: list[np.ndarray] = []
        self.row_col: list[np.ndarray] = []
        self.row_conf: list[np.ndarray] = []
        self.heads: list[tuple[np.ndarray, np.ndarray]] = []
        self.n_runs = 0
        self.rows = 0
        self.ignored_rows = 0

    def add(self, ids: np.ndarray, id_len: np.ndarray, labels: np.ndarray, label_len: np.ndarray,
            conf: np.ndarray) -> None:
        """``ids``/``labels``: uint64 word rows of the fields (see :func:`_gather_words`)."""
        n = conf.size
        self.rows += n
        if n == 0:
            return
        codes, first = _factorize_rows(labels, label_len)
        lut = np.array([self.label_lookup.get(_row_bytes(labels, f, int(label_len[f])), -1) for f in first],
                       dtype=np.int64)
        col = lut[codes]
        keep = col >= 0
        n_keep = int(np.count_nonzero(keep))
        self.ignored_rows += n - n_keep
        if n_keep == 0:
            return
        if n_keep < n:
            ids, id_len, col, conf = ids[keep], id_len[keep], col[keep], conf[keep]
        change = np.ones(ids.shape[0], dtype=bool)
        if ids.shape[0] > 1:
            np.any(ids[1:] != ids[:-1], axis=1, out=change[1:])
            change[1:] |= id_len[1:] != id_len[:-1]
        run = np.cumsum(change)
        run += self.n_runs - 1
        self.heads.append((ids[change], id_len[change]))
        self.n_runs += int(run[-1] - self.n_runs + 1)
        self.row_run.append(run)
        self.row_col.append(col.astype(np.int32))
        self.row_conf.append(conf.astype(np.int8, copy=False))


def _header(path: Path, line: bytes) -> tuple[int, int, int, int]:
    text = line.decode("utf-8-sig", errors="replace").strip("\r\n")
    names = [c.strip() for c in next(csv.reader([text]))] if text else []
    need = ("ImageID", "LabelName", "Confidence")
    if not all(c in names for c in need):
        raise InputError(f"header must name ImageID, LabelName and Confidence, got {text!r}", path=path, line=1)
    return len(names), names.index("ImageID"), names.index("LabelName"), names.index("Confidence")


def _parse_block_fast(path: Path, block: _Block, first_line: int, header: tuple[int, int, int, int],
                      acc: _Accumulator) -> int:
    """Parse one block into ``acc`` (numpy only; a block with a double quote goes to
    :func:`_parse_block_csv`); returns its number of lines."""
    n_fields, i_id, i_label, i_conf = header
    full = block.buffer
    b = full[: block.end]
    # one pass finds every byte below 45: newlines, commas (and CR, space, ...)
    sep = np.flatnonzero(b < 45)
    sep_byte = b[sep]
    if (sep_byte == 34).any():  # a double quote: quoted fields, parse with the csv module
        return _parse_block_csv(path, block, first_line, header, acc)
    nl = sep[sep_byte == 10]
    commas = sep[sep_byte == 44]
    del sep, sep_byte
    starts = np.empty_like(nl)
    starts[0] = 0
    starts[1:] = nl[:-1] + 1
    ends = nl.copy()
    has_cr = (ends > starts) & (b[np.maximum(ends - 1, 0)] == 13)
    ends[has_cr] -= 1
    blank = ends == starts
    if blank.any():
        line_no = np.flatnonzero(~blank) + first_line
        starts, ends = starts[~blank], ends[~blank]
    else:
        line_no = None
    n_cuts = n_fields - 1
    # every line holds exactly n_cuts commas iff there are that many per line in all and
    # each line's share of the (sorted) comma positions lies inside that line
    fits = commas.size == n_cuts * starts.size
    if fits and starts.size:
        cuts = commas.reshape(starts.size, n_cuts)
        fits = bool((cuts[:, 0] >= starts).all() and (cuts[:, -1] < ends).all())
    if not fits:
        per_line = np.searchsorted(commas, ends) - np.searchsorted(commas, starts)
        j = int(np.argmax(per_line != n_cuts))
        raise InputError(f"expected {n_fields} comma-separated fields, got {int(per_line[j]) + 1}",
                         path=path, line=_line(line_no, j, first_line))
    if starts.size == 0:
        return int(nl.size)

    def bounds(k: int) -> tuple[np.ndarray, np.ndarray]:
        lo = starts if k == 0 else cuts[:, k - 1] + 1
        hi = ends if k == n_fields - 1 else cuts[:, k]
        return lo, hi - lo

    c_lo, c_len = bounds(i_conf)
    first_byte = full[c_lo]
    ok = (c_len == 1) & ((first_byte == 48) | (first_byte == 49))
    if not ok.all():
        j = int(np.argmin(ok))
        value = full[c_lo[j]:c_lo[j] + c_len[j]].tobytes().decode("utf-8", errors="replace")
        raise InputError(f"Confidence must be 0 or 1, got {value!r}", path=path, line=_line(line_no, j, first_line))
    conf = (first_byte == 49).view(np.int8)
    l_lo, l_len = bounds(i_label)
    i_lo, i_len = bounds(i_id)
    for lengths, what in ((l_len, "LabelName"), (i_len, "ImageID")):
        if (lengths <= 0).any():
            raise InputError(f"empty {what}", path=path, line=_line(line_no, int(np.argmax(lengths <= 0)), first_line))
    longest = int(max(i_len.max(), l_len.max()))
    if longest + 8 > _SLACK:  # absurdly long fields: give them a padded copy
        full = np.concatenate([b, np.zeros(longest + 8, np.uint8)])
    acc.add(_gather_words(full, i_lo, i_len), i_len, _gather_words(full, l_lo, l_len), l_len, conf)
    return int(nl.size)


def _line(line_no: np.ndarray | None, j: int, first_line: int) -> int:
    return int(line_no[j]) if line_no is not None else first_line + j


def _parse_block_csv(path: Path, block: _Block, first_line: int, header: tuple[int, int, int, int],
                     acc: _Accumulator) -> int:
    """The same as :func:`_parse_block_fast` through the ``csv`` module (quoted fields)."""
    n_fields, i_id, i_label, i_conf = header
    ids, labels, conf = [], [], []
    data = block.text()
    lines = data.decode("utf-8", errors="strict").split("\n")
    for k, row in enumerate(csv.reader(lines)):
        if not row:
            continue
        number = first_line + k
        if len(row) != n_fields:
            raise InputError(f"expected {n_fields} comma-separated fields, got {len(row)}", path=path, line=number)
        if row[i_conf] not in ("0", "1"):
            raise InputError(f"Confidence must be 0 or 1, got {row[i_conf]!r}", path=path, line=number)
        for value, what in ((row[i_label], "LabelName"), (row[i_id], "ImageID")):
            if not value:
                raise InputError(f"empty {what}", path=path, line=number)
        ids.append(row[i_id].encode())
        labels.append(row[i_label].encode())
        conf.append(row[i_conf] == "1")

    def words(values: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
        n_words = max(1, -(-int(lengths.max()) // 8))
        arr = np.array(values, dtype=f"S{8 * n_words}")  # zero-padded
        return arr.view(np.uint64).reshape(len(values), n_words), lengths

    if conf:
        acc.add(*words(ids), *words(labels), np.array(conf, dtype=np.int8))
    return data.count(b"\n")


def parse_label_csv(path: Path, label_names: list[str], block_bytes: int = BLOCK_BYTES) -> ParsedLabels:
    """The verified ``(image, label)`` pairs of a human image-labels CSV for ``label_names``
    (see the module docstring); rows of other labels are skipped."""
    lookup = {name.encode("utf-8"): k for k, name in enumerate(label_names)}
    acc = _Accumulator(lookup)
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise InputError("missing annotation file", path=path) from None
    with handle:
        first = handle.readline()
        if not first.strip():
            raise InputError("empty file (expected the header ImageID,Source,LabelName,Confidence)", path=path, line=1)
        header = _header(path, first)
        line = 2
        for block in _blocks(handle, block_bytes):
            try:
                line += _parse_block_fast(path, block, line, header, acc)
            except UnicodeDecodeError as err:
                raise InputError(f"not UTF-8 ({err.reason})", path=path,
                                 line=line + block.text()[: err.start].count(b"\n")) from None
    return _finish(acc, len(label_names))


def _finish(acc: _Accumulator, n_labels: int) -> ParsedLabels:
    stats = {"rows": acc.rows, "ignored_rows": acc.ignored_rows}
    if not acc.heads:
        stats.update(duplicate_rows=0, conflicting_pairs=0)
        empty = PackedStrings(np.zeros(0, np.uint8), offsets=np.zeros(1, np.int64))
        return ParsedLabels(empty, np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, bool), stats)
    n_words = max(h.shape[1] for h, _ in acc.heads)
    heads = np.zeros((acc.n_runs, n_words), dtype=np.uint64)
    lengths = np.empty(acc.n_runs, dtype=np.int64)
    at = 0
    for h, n in acc.heads:
        heads[at:at + h.shape[0], : h.shape[1]] = h
        lengths[at:at + h.shape[0]] = n
        at += h.shape[0]
    acc.heads.clear()
    run_image, first = _factorize_rows(heads, lengths)
    first_bytes = heads[first].view(np.uint8).reshape(first.size, 8 * n_words)
    image_ids = PackedStrings.from_padded(first_bytes[:, : int(lengths.max())], lengths[first])
    del heads, first_bytes
    row_run = np.concatenate(acc.row_run)
    acc.row_run.clear()
    keys = run_image[row_run]
    del row_run, run_image
    keys *= n_labels
    keys += np.concatenate(acc.row_col)
    acc.row_col.clear()
    keys <<= 1
    keys += 1 - np.concatenate(acc.row_conf).astype(np.int64)  # the positive sorts first
    acc.row_conf.clear()
    keys.sort()
    pair = keys >> 1
    start = np.ones(keys.size, dtype=bool)
    np.not_equal(pair[1:], pair[:-1], out=start[1:])
    del pair
    starts = np.flatnonzero(start)
    del start
    last = np.empty_like(starts)
    last[:-1] = starts[1:] - 1
    last[-1] = keys.size - 1
    first_bit, last_bit = keys[starts] & 1, keys[last] & 1
    stats["duplicate_rows"] = int(keys.size - starts.size)
    stats["conflicting_pairs"] = int(np.count_nonzero((first_bit == 0) & (last_bit == 1)))
    unique = keys[starts]
    del keys, starts, last
    positive = (unique & 1) == 0
    unique >>= 1
    rows, cols = np.divmod(unique, n_labels)
    return ParsedLabels(image_ids, rows, cols.astype(np.int32), positive, stats)


def _csr(rows: np.ndarray, cols: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR of pairs already sorted by (row, col) and unique."""
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    return indptr, np.ascontiguousarray(cols, dtype=np.int32)


# --------------------------------------------------------------------------- reader
@register_reader
class OpenImagesReader(DatasetReader):
    """Open Images v4 human image-level labels -> index (see the module docstring).

    Args:
        drop_missing_images: leave out the images without a file under
            ``ROOT/images/<split>/`` (``data summary`` reads with this off).
    """

    name = "open-images"
    version = 1
    splits = OI_SPLITS
    default_split = "train"
    tasks = ("multilabel", "zsl", "gzsl")

    def __init__(self, drop_missing_images: bool = False):
        self.drop_missing_images = bool(drop_missing_images)

    @property
    def options(self) -> dict[str, Any]:
        return {"drop_missing_images": self.drop_missing_images}

    def available(self, root: Path) -> list[tuple[int | None, str]]:
        return [(None, s) for s in self.splits if label_csv_path(root, s).is_file()]

    def _label_files(self, root: Path, task: str) -> list[Path]:
        rel = _release(root)
        return {"multilabel": [rel / "classes-trainable.txt"], "zsl": [rel / "unseen_400_mids.txt"],
                "gzsl": [rel / "classes-trainable.txt", rel / "unseen_400_mids.txt"]}[task]

    def annotation_files(self, root: Path, split: str, year: int | None, task: str) -> list[Path]:
        root = Path(root)
        files = self._label_files(root, task) + [label_csv_path(root, split)]
        for path in files:
            if not path.is_file():
                raise InputError("missing annotation file", path=path)
        descriptions = _release(root) / "class-descriptions.csv"
        if descriptions.is_file():
            files.append(descriptions)
        folder = root / "images" / split
        if self.drop_missing_images and folder.is_dir():
            files.append(folder)  # its mtime changes when an image is added or removed
        return files

    def label_set(self, root: Path, task: str) -> tuple[list[str], list[bool] | None]:
        """The task's MIDs and, for ``zsl``/``gzsl``, which are seen."""
        rel = _release(Path(root))
        if task == "multilabel":
            return read_mid_list(rel / "classes-trainable.txt"), None
        unseen = read_mid_list(rel / "unseen_400_mids.txt")
        if task == "zsl":
            return unseen, [False] * len(unseen)
        seen = read_mid_list(rel / "classes-trainable.txt")
        both = set(seen) & set(unseen)
        if both:
            raise InputError(f"{len(both)} MIDs are both trainable and unseen, e.g. {sorted(both)[0]}",
                             path=rel / "unseen_400_mids.txt")
        return seen + unseen, [True] * len(seen) + [False] * len(unseen)

    def read(self, root: Path, split: str, year: int | None, task: str) -> LabelIndex:
        root = Path(root)
        names, seen = self.label_set(root, task)
        csv_path = label_csv_path(root, split)
        parsed = parse_label_csv(csv_path, names)
        stats = parsed.stats
        if stats["conflicting_pairs"]:
            logger.warning("%s: %d (image, label) pairs have conflicting rows (Confidence 0 and 1); "
                           "the positive wins", csv_path, stats["conflicting_pairs"])
        n = len(parsed.image_ids)
        ids, rows, cols, positive = parsed.image_ids, parsed.rows, parsed.cols, parsed.positive
        meta: dict[str, Any] = {
            "root": str(root.resolve()), "year": None, "task": task, "release": RELEASE,
            "annotation_files": [p.relative_to(root).as_posix() for p in self.annotation_files(root, split, year, task)
                                 if p.is_file()],
            **stats,
        }
        if self.drop_missing_images:
            keep = _present(root / "images" / split, ids)
            meta.update(listed_images=n, missing_images=int(n - keep.sum()))
            if not keep.all():
                new_row = np.cumsum(keep) - 1
                entry_keep = keep[rows]
                rows, cols, positive = new_row[rows[entry_keep]], cols[entry_keep], positive[entry_keep]
                ids = ids.take(np.flatnonzero(keep))
                n = len(ids)
        if seen is not None:
            meta["label_seen"] = seen
        descriptions = _release(root) / "class-descriptions.csv"
        if descriptions.is_file():
            display = read_class_descriptions(descriptions)
            meta["label_display_names"] = [display.get(m, m) for m in names]
        mask = _csr(rows, cols, n)
        pos = _csr(rows[positive], cols[positive], n)
        paths = TemplateStrings(ids, f"images/{split}/", ".jpg")
        # pairs are unique and sorted, ids unique and positives a subset of the verified
        # pairs by construction (parse_label_csv): the entry-level checks are skipped
        return LabelIndex("open-images", split, names, paths, ids, pos[0], pos[1], False, mask[0], mask[1],
                          None, meta, {}, validate=False)


def _present(folder: Path, ids: PackedStrings) -> np.ndarray:
    """bool [n]: whether ``folder/<id>.jpg`` exists. One streamed directory listing; the
    names are kept as fixed-width bytes (16-hex-digit ids as exact uint64 keys), so 9M
    files cost ~150 MB, not a list of Python strings."""
    n = len(ids)
    if n == 0:
        return np.zeros(0, dtype=bool)
    try:
        entries = os.scandir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return np.zeros(n, dtype=bool)
    chunks, chunk = [], []
    with entries:
        for entry in entries:
            name = entry.name
            if name.endswith(".jpg"):
                chunk.append(name[:-4].encode("utf-8", "surrogateescape"))
                if len(chunk) >= 1 << 20:
                    chunks.append(np.array(chunk, dtype=bytes))
                    chunk = []
    if chunk:
        chunks.append(np.array(chunk, dtype=bytes))
    if not chunks:
        return np.zeros(n, dtype=bool)
    width = max(c.dtype.itemsize for c in chunks)
    present = np.concatenate([c.astype(f"S{width}") for c in chunks])
    if ids.offsets is None and ids.width == 16 and width == 16:
        want, have = _hex_keys(ids.blob.reshape(n, 16)), _hex_keys(present.view(np.uint8).reshape(-1, 16))
        if want is not None and have is not None:
            return np.isin(want, have)
    wanted = np.array([s.encode("utf-8") for s in ids], dtype=bytes)
    return np.isin(wanted, present)


_HEX = np.full(256, 255, dtype=np.uint8)
_HEX[np.frombuffer(b"0123456789", np.uint8)] = np.arange(10)
_HEX[np.frombuffer(b"abcdef", np.uint8)] = np.arange(10, 16)


def _hex_keys(rows: np.ndarray) -> np.ndarray | None:
    """uint64 [n] of 16 lower-case hex digits a row (exact), or None if a row is not that."""
    nibbles = _HEX[rows]
    if (nibbles == 255).any():
        return None
    keys = np.zeros(rows.shape[0], dtype=np.uint64)
    for j in range(16):
        keys <<= np.uint64(4)
        keys |= nibbles[:, j]
    return keys
