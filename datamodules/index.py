"""The label index: what a dataset split holds, as arrays, and its on-disk cache.

Every dataset reader (``datamodules/readers/<dataset>.py``) turns raw annotation files into
one :class:`LabelIndex` per split; everything downstream (``data summary``, the datamodule,
the dataset items) reads the index, never the raw files. The index holds labels sparsely
(CSR rows, one per image) so that 9M Open Images images or 1,000 DeepFashion attributes
cost memory in proportion to their entries; dense ``[n, C]`` arrays are built only for the
rows asked for (one item, one batch).

Known-mask
    An entry ``(image, label)`` is *known* (scored, trained on) or *masked* (ignored).
    ``known_by_default=True`` means every entry is known except those listed in the mask
    CSR (VOC: the "difficult" entries); ``known_by_default=False`` means every entry is
    unknown except those listed (Open Images: the human-verified labels). Every positive
    is known (checked).

Strings at scale
    ``image_ids`` / ``image_paths`` are plain lists when a reader gives lists (VOC, COCO),
    or a :class:`PackedStrings` (one UTF-8 byte blob plus offsets, or a fixed width; an
    item is decoded when asked for) or a :class:`TemplateStrings` (``prefix + id +
    suffix``, e.g. Open Images' ``images/<split>/<ImageID>.jpg``, which stores nothing).
    Both are read-only sequences: ``x[i]``, ``len``, iteration, ``==`` with a list,
    ``in``, ``.index``. 9M Open Images ids are 144 MB of bytes instead of ~1.6 GB of
    Python strings.

Cache (:func:`load_index`)
    One file per (reader, options, root, split, year, task): ``cache_dir /
    <reader>-<split>-<task>-<sha>.npz``. It is an *uncompressed* npz (a zip of ``.npy``
    members, stored, each member's data aligned to 64 bytes) that ``numpy.load`` reads as
    usual, and that :meth:`LabelIndex.load` memory-maps member by member (``np.memmap`` at
    the member's data offset), so a cache hit reads only the zip directory, the small
    members and the JSON meta: it costs well under a second and a few MB of resident
    memory whatever the size of the index; pages are read when a batch touches them.
    The file stores the *cache key*: sha256 over the reader's name, version and options,
    the split/year/task and, for every annotation file the reader declares, its
    root-relative path, size and ``mtime_ns``. A hit recomputes the key (one ``stat`` per
    annotation file) and compares it with the stored one; a file written by
    :meth:`LabelIndex.save` under a matching key is trusted, so a hit does not re-validate
    the entries (it checks the arrays' shapes only). Touching or editing an annotation
    file changes the key: the stale file is rebuilt and replaced. Files are written
    atomically (temp file + ``os.replace``; a process still mapping the old file keeps
    reading it); an unreadable cache file is rebuilt, never an error.
    (A single file rather than a folder of ``.npy`` files: it can be replaced atomically
    with one rename, even while mapped.)
"""
from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Sequence as SequenceABC
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

import numpy as np

from fashionbench.errors import InputError
from fashionbench.io import atomic_open

if TYPE_CHECKING:  # pragma: no cover
    from datamodules.registry import DatasetReader

#: Bump when the index layout or a change common to all readers invalidates caches.
INDEX_FORMAT_VERSION = 3

__all__ = [
    "INDEX_FORMAT_VERSION",
    "LabelIndex",
    "PackedStrings",
    "TemplateStrings",
    "csr_from_pairs",
    "default_cache_dir",
    "cache_key",
    "cache_path",
    "load_index",
]

_ALIGN = 64  # data of every cache member starts on a multiple of this many bytes
_DECODE_CHUNK = 1 << 16


# --------------------------------------------------------------------------- CSR helpers
def csr_from_pairs(rows: np.ndarray, cols: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """``(indptr int64 [n_rows+1], indices int32)`` from ``(row, col)`` pairs.

    Pairs may come in any order and may repeat (COCO: several boxes of one class); the
    result has each row's columns sorted and unique. Vectorised: the pairs become one
    int64 key ``row * n_cols + col``, sorted once (numpy's SIMD sort), deduplicated by
    comparing neighbours.
    """
    rows = np.asarray(rows, dtype=np.int64).ravel()
    cols = np.asarray(cols, dtype=np.int64).ravel()
    if rows.shape != cols.shape:
        raise ValueError("rows and cols must have the same length")
    if rows.size:
        if rows.min() < 0 or rows.max() >= n_rows:
            raise ValueError(f"row index out of range [0, {n_rows})")
        if cols.min() < 0:
            raise ValueError("column index out of range (negative)")
        width = int(cols.max()) + 1
        keys = np.sort(rows * width + cols)
        keep = np.ones(keys.size, dtype=bool)
        np.not_equal(keys[1:], keys[:-1], out=keep[1:])
        keys = keys[keep]
        rows, cols = np.divmod(keys, width)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    return indptr, cols.astype(np.int32)


def _empty_csr(n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(n_rows + 1, dtype=np.int64), np.zeros(0, dtype=np.int32)


def _gather_rows(indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For the selected rows, the (output row, column) of every stored entry (vectorised)."""
    starts = np.asarray(indptr[rows])
    lengths = np.asarray(indptr[rows + 1]) - starts
    out_rows = np.repeat(np.arange(rows.size), lengths)
    # position of each entry inside `indices`: start of its row + offset within the row
    offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return out_rows, np.asarray(indices[np.repeat(starts, lengths) + offsets])


def _check_csr(name: str, indptr: np.ndarray, indices: np.ndarray, n_rows: int, n_cols: int) -> None:
    if indptr.ndim != 1 or indptr.shape[0] != n_rows + 1:
        raise ValueError(f"{name}_indptr must have shape [{n_rows + 1}], got {list(indptr.shape)}")
    if indptr[0] != 0 or indptr[-1] != indices.shape[0] or np.any(indptr[1:] < indptr[:-1]):
        raise ValueError(f"{name}_indptr must start at 0, be non-decreasing and end at len({name}_indices)")
    if indices.size:
        if indices.min() < 0 or indices.max() >= n_cols:
            raise ValueError(f"{name}_indices out of range [0, {n_cols})")
        # strictly increasing inside each row: a step <= 0 is only allowed at a row start
        step_ok = indices[1:] > indices[:-1]
        row_start = indptr[1:-1]
        row_start = row_start[(row_start > 0) & (row_start < indices.size)]
        step_ok[row_start - 1] = True
        if not step_ok.all():
            raise ValueError(f"{name}_indices must be sorted and unique within each row")


def _entry_keys(indptr: np.ndarray, indices: np.ndarray, n_cols: int) -> np.ndarray:
    """``row * n_cols + col`` of every stored entry: ascending for a valid CSR."""
    rows = np.repeat(np.arange(indptr.size - 1, dtype=np.int64), np.diff(indptr))
    rows *= n_cols
    rows += indices
    return rows


def _sorted_isin(needles: np.ndarray, haystack: np.ndarray) -> np.ndarray:
    """``np.isin`` for an ascending ``haystack`` (a binary search each; no big sort)."""
    if haystack.size == 0:
        return np.zeros(needles.size, dtype=bool)
    at = np.searchsorted(haystack, needles)
    np.minimum(at, haystack.size - 1, out=at)
    return haystack[at] == needles


# --------------------------------------------------------------------------- strings
class _StringSequence(SequenceABC):
    """Read-only sequence of strings that compares equal to a list with the same items."""

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (_StringSequence, list, tuple)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        head = ", ".join(repr(s) for s in self[:3])
        return f"{type(self).__name__}([{head}{', ...' if len(self) > 3 else ''}], n={len(self)})"

    def tolist(self) -> list[str]:
        return list(self)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = np.array(self.tolist(), dtype=str)
        return out if dtype is None else out.astype(dtype)

    def __reduce__(self):  # pickles (DataLoader workers under spawn) as plain arrays
        return (type(self)._rebuild, self._state())

    def _state(self) -> tuple:  # pragma: no cover - subclasses
        raise NotImplementedError


class PackedStrings(_StringSequence):
    """Strings as one UTF-8 ``uint8`` blob, sliced by ``offsets`` (``int64 [n+1]``) or, when
    every string has the same byte length, by a fixed ``width`` (no offsets stored).

    Items are decoded on access; :meth:`take` selects rows without decoding.
    """

    def __init__(self, blob: np.ndarray, offsets: np.ndarray | None = None, width: int | None = None,
                 count: int | None = None):
        blob = np.asarray(blob)
        self.blob = blob.reshape(-1).view(np.uint8) if blob.size else np.zeros(0, np.uint8)
        if offsets is not None:
            self.offsets = np.asarray(offsets)
            self.width = None
            self._n = int(self.offsets.shape[0]) - 1
            if self.offsets.ndim != 1 or self._n < 0 or int(self.offsets[0]) != 0 \
                    or int(self.offsets[-1]) != self.blob.size:
                raise ValueError("offsets do not match the blob")
        else:
            if width is None or width < 0:
                raise ValueError("PackedStrings needs offsets or a width")
            self.offsets = None
            self.width = int(width)
            if self.width == 0:
                if count is None or self.blob.size:
                    raise ValueError("zero-width PackedStrings needs a count and an empty blob")
                self._n = int(count)
            else:
                if self.blob.size % self.width:
                    raise ValueError("blob size is not a multiple of the width")
                self._n = self.blob.size // self.width
            if count is not None and int(count) != self._n:
                raise ValueError(f"{self._n} strings, expected {count}")

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_strings(cls, strings: Iterable[str]) -> "PackedStrings":
        encoded = [s.encode("utf-8") for s in strings]
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        if lengths.size and (lengths == lengths[0]).all():
            return cls(blob, width=int(lengths[0]), count=lengths.size)
        offsets = np.zeros(lengths.size + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return cls(blob, offsets=offsets)

    @classmethod
    def from_padded(cls, matrix: np.ndarray, lengths: np.ndarray) -> "PackedStrings":
        """From a zero-padded ``uint8 [n, W]`` byte matrix and the ``n`` true lengths."""
        matrix = np.ascontiguousarray(matrix, dtype=np.uint8)
        lengths = np.asarray(lengths, dtype=np.int64)
        n, w = matrix.shape
        if n and (lengths == w).all():
            return cls(matrix.reshape(-1), width=w, count=n)
        if n == 0:
            return cls(np.zeros(0, np.uint8), offsets=np.zeros(1, np.int64))
        blob = matrix[np.arange(w)[None, :] < lengths[:, None]]
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return cls(blob, offsets=offsets)

    # ---------------------------------------------------------------- sequence
    def __len__(self) -> int:
        return self._n

    def _bounds(self, i: int) -> tuple[int, int]:
        if self.offsets is None:
            return i * self.width, (i + 1) * self.width
        return int(self.offsets[i]), int(self.offsets[i + 1])

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return self.take(np.arange(self._n)[i])
        i = int(i)
        if i < -self._n or i >= self._n:
            raise IndexError(f"index {i} out of range for {self._n} strings")
        if i < 0:
            i += self._n
        start, stop = self._bounds(i)
        return self.blob[start:stop].tobytes().decode("utf-8")

    def _decoded_chunks(self) -> Iterator[list[str]]:
        for lo in range(0, self._n, _DECODE_CHUNK):
            hi = min(self._n, lo + _DECODE_CHUNK)
            if self.offsets is None:
                if self.width == 0:
                    yield [""] * (hi - lo)
                    continue
                rows = self.blob[lo * self.width:hi * self.width].tobytes()
                w = self.width
                yield [rows[k:k + w].decode("utf-8") for k in range(0, len(rows), w)]
            else:
                offs = np.asarray(self.offsets[lo:hi + 1])
                data = self.blob[int(offs[0]):int(offs[-1])].tobytes()
                rel = (offs - offs[0]).tolist()
                yield [data[a:b].decode("utf-8") for a, b in zip(rel[:-1], rel[1:])]

    def __iter__(self) -> Iterator[str]:
        for chunk in self._decoded_chunks():
            yield from chunk

    def tolist(self) -> list[str]:
        out: list[str] = []
        for chunk in self._decoded_chunks():
            out.extend(chunk)
        return out

    def lengths(self) -> np.ndarray:
        if self.offsets is None:
            return np.full(self._n, self.width, dtype=np.int64)
        return np.diff(np.asarray(self.offsets))

    def take(self, rows: Sequence[int] | np.ndarray) -> "PackedStrings":
        """The strings at ``rows`` (in that order), without decoding them."""
        rows = np.asarray(rows, dtype=np.int64).ravel()
        if rows.size and (rows.min() < 0 or rows.max() >= self._n):
            raise IndexError("row out of range")
        if self.offsets is None:
            if self.width == 0:
                return PackedStrings(np.zeros(0, np.uint8), width=0, count=rows.size)
            picked = self.blob.reshape(self._n, self.width)[rows]
            return PackedStrings(picked.reshape(-1), width=self.width, count=rows.size)
        starts = np.asarray(self.offsets[rows])
        lengths = np.asarray(self.offsets[rows + 1]) - starts
        offsets = np.zeros(rows.size + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        positions = np.repeat(starts - offsets[:-1], lengths) + np.arange(int(offsets[-1]))
        return PackedStrings(self.blob[positions], offsets=offsets)

    def is_unique(self) -> bool:
        """Whether no string repeats (vectorised: fixed-width byte rows or a hash)."""
        if self._n < 2:
            return True
        if self.offsets is None:
            if self.width == 0:
                return False
            rows = self.blob.reshape(self._n, self.width)
            return np.unique(rows.view(f"S{self.width}").ravel()).size == self._n if self.width <= 64 \
                else len(set(self)) == self._n
        return len(set(self)) == self._n

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if self.offsets is None and self.width and self.blob.size and self.blob.max() < 128:
            out = self.blob.reshape(self._n, self.width).view(f"S{self.width}").ravel().astype(str)
        else:
            out = np.array(self.tolist(), dtype=str)
        return out if dtype is None else out.astype(dtype)

    # ---------------------------------------------------------------- persistence
    def _state(self) -> tuple:
        return (np.asarray(self.blob), None if self.offsets is None else np.asarray(self.offsets), self.width, self._n)

    @classmethod
    def _rebuild(cls, blob, offsets, width, count) -> "PackedStrings":
        return cls(blob, offsets=offsets, width=width, count=count if offsets is None else None)


class TemplateStrings(_StringSequence):
    """``prefix + base[i] + suffix`` for every string of ``base`` (stores only ``base``)."""

    def __init__(self, base: Sequence[str], prefix: str = "", suffix: str = ""):
        self.base = base if isinstance(base, _StringSequence) else PackedStrings.from_strings(base)
        self.prefix, self.suffix = str(prefix), str(suffix)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return self.take(np.arange(len(self))[i])
        return f"{self.prefix}{self.base[i]}{self.suffix}"

    def __iter__(self) -> Iterator[str]:
        p, s = self.prefix, self.suffix
        for item in self.base:
            yield f"{p}{item}{s}"

    def take(self, rows: Sequence[int] | np.ndarray) -> "TemplateStrings":
        rows = np.asarray(rows, dtype=np.int64)
        base = self.base.take(rows) if hasattr(self.base, "take") else [self.base[i] for i in rows]
        return TemplateStrings(base, self.prefix, self.suffix)

    def _state(self) -> tuple:
        return (self.base, self.prefix, self.suffix)

    @classmethod
    def _rebuild(cls, base, prefix, suffix) -> "TemplateStrings":
        return cls(base, prefix, suffix)


def _as_strings(values: Any) -> list[str] | _StringSequence:
    return values if isinstance(values, _StringSequence) else list(values)


def _take_strings(values: Sequence[str], rows: np.ndarray) -> list[str] | _StringSequence:
    if isinstance(values, _StringSequence):
        return values.take(rows)
    return [values[i] for i in rows]


def _strings_unique(values: Sequence[str]) -> bool:
    if isinstance(values, PackedStrings):
        return values.is_unique()
    return len(set(values)) == len(values)


# --------------------------------------------------------------------------- npz members
def _save_members(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """An uncompressed ``.npz`` whose members' array data start on ``_ALIGN``-byte
    boundaries of the file (so :func:`_open_members` can memory-map them), atomically."""
    with atomic_open(path, "wb") as handle:
        with zipfile.ZipFile(handle, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for key, value in arrays.items():
                value = np.asanyarray(value)
                if value.dtype.hasobject:
                    raise ValueError(f"cache member {key!r} holds Python objects")
                header = _npy_header(value)
                name = f"{key}.npy"
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_STORED
                # local header: 30 bytes + name + extra (+ 20 bytes of zip64 extra); pad the
                # extra field so that the array data (after the npy header) is aligned
                start = handle.tell() + 30 + len(name.encode()) + 20 + len(header)
                pad = (-(start + 4)) % _ALIGN
                info.extra = b"\x99\x99" + pad.to_bytes(2, "little") + b"\0" * pad
                with zf.open(info, "w", force_zip64=True) as member:
                    member.write(header)
                    if value.size:
                        member.write(np.ascontiguousarray(value).data)


def _npy_header(value: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    header = np.lib.format.header_data_from_array_1_0(value)
    np.lib.format.write_array_header_2_0(buffer, header)
    return buffer.getvalue()


class _Members:
    """The members of a stored (uncompressed) npz, each memory-mapped on demand."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self.offsets: dict[str, tuple[int, int]] = {}
        with open(self.path, "rb") as raw, zipfile.ZipFile(raw) as zf:
            for info in zf.infolist():
                if info.compress_type != zipfile.ZIP_STORED:
                    raise ValueError("compressed cache member")
                raw.seek(info.header_offset)
                local = raw.read(30)
                if local[:4] != b"PK\x03\x04":
                    raise ValueError("bad zip local header")
                n_name = int.from_bytes(local[26:28], "little")
                n_extra = int.from_bytes(local[28:30], "little")
                start = info.header_offset + 30 + n_name + n_extra
                key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                self.offsets[key] = (start, info.file_size)
        self._cache: dict[str, np.ndarray] = {}

    def __contains__(self, key: str) -> bool:
        return key in self.offsets

    def keys(self) -> list[str]:
        return list(self.offsets)

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._cache:
            start, size = self.offsets[key]
            with open(self.path, "rb") as raw:
                raw.seek(start)
                version = np.lib.format.read_magic(raw)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, fortran, dtype = read_header(raw)
                data_start = raw.tell()
            count = int(np.prod(shape, dtype=np.int64))
            if data_start - start + count * dtype.itemsize != size:
                raise ValueError(f"cache member {key!r} is truncated")
            if dtype.hasobject:
                raise ValueError(f"cache member {key!r} holds Python objects")
            if count == 0 or count * dtype.itemsize < 4096:
                with open(self.path, "rb") as raw:
                    raw.seek(data_start)
                    array = np.frombuffer(raw.read(count * dtype.itemsize), dtype=dtype).reshape(
                        shape, order="F" if fortran else "C").copy()
            else:
                array = np.memmap(self.path, dtype=dtype, mode="r", offset=data_start, shape=shape,
                                  order="F" if fortran else "C")
                array = array.view(np.ndarray)  # a plain (file-backed) array: slices stay cheap
            self._cache[key] = array
        return self._cache[key]


def _strings_to_members(prefix: str, values: Sequence[str], arrays: dict[str, np.ndarray],
                        ids_key: str | None = None, ids: Sequence[str] | None = None) -> dict[str, Any]:
    """Add ``values`` to ``arrays``; returns the JSON descriptor that :func:`_strings_from_members` reads."""
    if isinstance(values, TemplateStrings) and ids_key is not None and values.base is ids:
        return {"kind": "template", "of": ids_key, "prefix": values.prefix, "suffix": values.suffix}
    if isinstance(values, TemplateStrings):
        inner = _strings_to_members(prefix + "_base", values.base, arrays)
        return {"kind": "template_of", "base": inner, "prefix": values.prefix, "suffix": values.suffix}
    packed = values if isinstance(values, PackedStrings) else PackedStrings.from_strings(values)
    arrays[f"{prefix}_blob"] = np.asarray(packed.blob)
    if packed.offsets is None:
        return {"kind": "fixed", "blob": f"{prefix}_blob", "width": packed.width, "count": len(packed)}
    arrays[f"{prefix}_offsets"] = np.asarray(packed.offsets, dtype=np.int64)
    return {"kind": "packed", "blob": f"{prefix}_blob", "offsets": f"{prefix}_offsets"}


def _strings_from_members(desc: dict[str, Any], z: _Members, done: dict[str, Any]) -> _StringSequence:
    kind = desc["kind"]
    if kind == "fixed":
        return PackedStrings(z[desc["blob"]], width=int(desc["width"]), count=int(desc["count"]))
    if kind == "packed":
        return PackedStrings(z[desc["blob"]], offsets=z[desc["offsets"]])
    if kind == "template":
        return TemplateStrings(done[desc["of"]], desc["prefix"], desc["suffix"])
    if kind == "template_of":
        return TemplateStrings(_strings_from_members(desc["base"], z, done), desc["prefix"], desc["suffix"])
    raise ValueError(f"unknown string table kind {kind!r}")


# --------------------------------------------------------------------------- LabelIndex
@dataclass(eq=False)
class LabelIndex:
    """The labels of one dataset split (see module docstring).

    Attributes:
        dataset: reader name, e.g. ``"voc"``.
        split: split name, e.g. ``"trainval"``.
        label_names: the ``C`` label names, in the dataset's official order.
        image_paths: ``N`` image paths relative to the dataset root (POSIX separators): a
            list, or a :class:`PackedStrings` / :class:`TemplateStrings`.
        image_ids: ``N`` unique image ids (as strings), likewise.
        pos_indptr, pos_indices: positives as CSR: row ``i``'s positive labels are
            ``pos_indices[pos_indptr[i]:pos_indptr[i+1]]`` (sorted, unique).
        known_by_default: whether entries are known unless listed in the mask CSR.
        mask_indptr, mask_indices: the exceptions to ``known_by_default``, as CSR.
        class_ids: ``int64 [N]`` class of each image for single-label tasks, else None;
            then each positives row holds exactly that one class.
        meta: JSON-serialisable facts: root, year, task, source files, and per-label facts
            a reader knows: ``label_parents`` (``C`` parent/group names, e.g. DeepFashion's
            upper/lower/full body), ``label_seen`` (``C`` bools: seen in zero-shot training).
        item_arrays: per-image arrays ``[N, ...]`` a reader knows (e.g. ``bbox`` ``[N, 4]``
            x1, y1, x2, y2 in pixels); kept through :meth:`subset` and the cache.
        validate: (constructor only) check the arrays' consistency; False skips the
            entry-level checks (used for a trusted cache file, whose stored key matched).
    """

    dataset: str
    split: str
    label_names: list[str]
    image_paths: Sequence[str]
    image_ids: Sequence[str]
    pos_indptr: np.ndarray
    pos_indices: np.ndarray
    known_by_default: bool = True
    mask_indptr: np.ndarray | None = None
    mask_indices: np.ndarray | None = None
    class_ids: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    item_arrays: dict[str, np.ndarray] = field(default_factory=dict)
    validate: InitVar[bool] = True

    def __post_init__(self, validate: bool = True) -> None:
        self.label_names = list(self.label_names)
        self.image_paths = _as_strings(self.image_paths)
        self.image_ids = _as_strings(self.image_ids)
        self.known_by_default = bool(self.known_by_default)
        n, c = len(self.image_ids), len(self.label_names)
        if len(self.image_paths) != n:
            raise ValueError(f"{len(self.image_paths)} image paths for {n} image ids")
        self.pos_indptr = np.ascontiguousarray(self.pos_indptr, dtype=np.int64)
        self.pos_indices = np.ascontiguousarray(self.pos_indices, dtype=np.int32)
        if self.mask_indptr is None and self.mask_indices is None:
            self.mask_indptr, self.mask_indices = _empty_csr(n)
        self.mask_indptr = np.ascontiguousarray(self.mask_indptr, dtype=np.int64)
        self.mask_indices = np.ascontiguousarray(self.mask_indices, dtype=np.int32)
        if self.class_ids is not None:
            self.class_ids = np.ascontiguousarray(self.class_ids, dtype=np.int64)
        self.meta = dict(self.meta)
        self.item_arrays = {k: np.asarray(v) for k, v in (self.item_arrays or {}).items()}
        # shape checks: O(1), always
        for name, ptr, idx in (("pos", self.pos_indptr, self.pos_indices), ("mask", self.mask_indptr, self.mask_indices)):
            if ptr.ndim != 1 or ptr.shape[0] != n + 1 or idx.ndim != 1 or int(ptr[-1]) != idx.shape[0]:
                raise ValueError(f"{name}_indptr must have shape [{n + 1}] and end at len({name}_indices)")
        for key, value in self.item_arrays.items():
            if value.ndim == 0 or value.shape[0] != n:
                raise ValueError(f"item array '{key}' must have {n} rows, got shape {list(value.shape)}")
        for key in ("label_parents", "label_seen"):
            if key in self.meta and len(self.meta[key]) != c:
                raise ValueError(f"meta['{key}'] must have {c} entries, got {len(self.meta[key])}")
        if self.class_ids is not None and self.class_ids.shape != (n,):
            raise ValueError("class_ids must be [N] and equal the single positive of each row")
        if validate:
            self._validate()

    def _validate(self) -> None:
        """Entry-level checks (vectorised; a few seconds at 9M images)."""
        n, c = len(self.image_ids), len(self.label_names)
        if len(set(self.label_names)) != c:
            raise ValueError("label names must be unique")
        if not _strings_unique(self.image_ids):
            raise ValueError("image ids must be unique")
        _check_csr("pos", self.pos_indptr, self.pos_indices, n, c)
        _check_csr("mask", self.mask_indptr, self.mask_indices, n, c)
        if self.pos_indices.size:
            listed = _sorted_isin(_entry_keys(self.pos_indptr, self.pos_indices, c),
                                  _entry_keys(self.mask_indptr, self.mask_indices, c))
            if np.any(listed == self.known_by_default):
                raise ValueError("every positive must be a known entry")
        if self.class_ids is not None:
            if not np.array_equal(np.diff(self.pos_indptr), np.ones(n, np.int64)) \
                    or not np.array_equal(self.pos_indices, self.class_ids):
                raise ValueError("class_ids must be [N] and equal the single positive of each row")

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_pairs(
        cls,
        dataset: str,
        split: str,
        label_names: Sequence[str],
        image_paths: Sequence[str],
        image_ids: Sequence[str],
        pos_rows: np.ndarray,
        pos_cols: np.ndarray,
        mask_rows: np.ndarray | None = None,
        mask_cols: np.ndarray | None = None,
        known_by_default: bool = True,
        meta: dict[str, Any] | None = None,
        item_arrays: dict[str, np.ndarray] | None = None,
    ) -> "LabelIndex":
        """Build from ``(row, label)`` pairs in any order, repeats allowed: what readers use."""
        n = len(image_ids)
        pos_indptr, pos_indices = csr_from_pairs(pos_rows, pos_cols, n)
        if mask_rows is None:
            mask_indptr, mask_indices = _empty_csr(n)
        else:
            mask_indptr, mask_indices = csr_from_pairs(mask_rows, mask_cols, n)
        return cls(dataset, split, list(label_names), _as_strings(image_paths), _as_strings(image_ids),
                   pos_indptr, pos_indices, known_by_default, mask_indptr, mask_indices, None, meta or {},
                   item_arrays or {})

    @classmethod
    def from_class_ids(
        cls,
        dataset: str,
        split: str,
        label_names: Sequence[str],
        image_paths: Sequence[str],
        image_ids: Sequence[str],
        class_ids: np.ndarray,
        meta: dict[str, Any] | None = None,
        item_arrays: dict[str, np.ndarray] | None = None,
    ) -> "LabelIndex":
        """A single-label index (every label of every image known, one positive a row)."""
        class_ids = np.asarray(class_ids, dtype=np.int64)
        n = class_ids.shape[0]
        return cls(dataset, split, list(label_names), _as_strings(image_paths), _as_strings(image_ids),
                   np.arange(n + 1, dtype=np.int64), class_ids.astype(np.int32), True,
                   None, None, class_ids, meta or {}, item_arrays or {})

    # ---------------------------------------------------------------- queries
    def __len__(self) -> int:
        return len(self.image_ids)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def is_single_label(self) -> bool:
        return self.class_ids is not None

    def _rows(self, rows: int | Sequence[int] | np.ndarray | None) -> np.ndarray:
        if rows is None:
            return np.arange(len(self), dtype=np.int64)
        rows = np.atleast_1d(np.asarray(rows, dtype=np.int64))
        if rows.size and (rows.min() < -len(self) or rows.max() >= len(self)):
            raise IndexError(f"row out of range for an index of {len(self)} images")
        return np.where(rows < 0, rows + len(self), rows)

    def dense_targets(self, rows: int | Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """``uint8 [n, C]``: 1 for a positive, 0 otherwise (masked entries are 0 too)."""
        rows = self._rows(rows)
        out = np.zeros((rows.size, self.num_labels), dtype=np.uint8)
        r, c = _gather_rows(self.pos_indptr, self.pos_indices, rows)
        out[r, c] = 1
        return out

    def dense_mask(self, rows: int | Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """``bool [n, C]``: True where the entry is known (scored), False where masked."""
        rows = self._rows(rows)
        out = np.full((rows.size, self.num_labels), self.known_by_default, dtype=bool)
        r, c = _gather_rows(self.mask_indptr, self.mask_indices, rows)
        out[r, c] = not self.known_by_default
        return out

    def positive_counts(self) -> np.ndarray:
        """``int64 [C]``: images with a (known) positive of each label."""
        return np.bincount(self.pos_indices, minlength=self.num_labels).astype(np.int64)

    def ignored_counts(self) -> np.ndarray:
        """``int64 [C]``: masked entries of each label."""
        listed = np.bincount(self.mask_indices, minlength=self.num_labels).astype(np.int64)
        return listed if self.known_by_default else len(self) - listed

    def known_counts(self) -> np.ndarray:
        """``int64 [C]``: known entries of each label (``N - ignored``)."""
        return len(self) - self.ignored_counts()

    def label_frequencies(self) -> np.ndarray:
        """``float64 [C]``: positives / known entries per label (0 where none is known)."""
        known = self.known_counts()
        return np.divide(self.positive_counts(), known, out=np.zeros(self.num_labels), where=known > 0)

    def subset(self, rows: Sequence[int] | np.ndarray) -> "LabelIndex":
        """A new index of the given rows, in the given order (rows must be unique)."""
        rows = self._rows(rows)
        if np.unique(rows).size != rows.size:
            raise ValueError("subset rows must be unique")

        def take(indptr: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            r, c = _gather_rows(indptr, indices, rows)
            new_ptr = np.zeros(rows.size + 1, dtype=np.int64)
            np.cumsum(np.bincount(r, minlength=rows.size), out=new_ptr[1:])
            return new_ptr, c

        pos = take(self.pos_indptr, self.pos_indices)
        mask = take(self.mask_indptr, self.mask_indices)
        ids = _take_strings(self.image_ids, rows)
        paths = self.image_paths
        if isinstance(paths, TemplateStrings) and paths.base is self.image_ids:
            paths = TemplateStrings(ids, paths.prefix, paths.suffix)
        else:
            paths = _take_strings(paths, rows)
        return LabelIndex(
            self.dataset, self.split, list(self.label_names), paths, ids,
            pos[0], pos[1], self.known_by_default, mask[0], mask[1],
            None if self.class_ids is None else self.class_ids[rows], dict(self.meta),
            {k: np.asarray(v[rows]) for k, v in self.item_arrays.items()}, validate=False,
        )

    # ---------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike, cache_key: str | None = None) -> None:
        """Write an uncompressed, memory-mappable ``.npz`` (no pickle; meta as JSON),
        atomically; ``cache_key`` is stored for :func:`load_index` to check the file
        against the annotations it came from."""
        arrays: dict[str, np.ndarray] = {}
        strings = {
            "label_names": _strings_to_members("label_names", self.label_names, arrays),
            "image_ids": _strings_to_members("image_ids", self.image_ids, arrays),
        }
        strings["image_paths"] = _strings_to_members("image_paths", self.image_paths, arrays,
                                                     ids_key="image_ids", ids=self.image_ids)
        header = {
            "format_version": INDEX_FORMAT_VERSION,
            "dataset": self.dataset,
            "split": self.split,
            "n_images": len(self),
            "n_labels": self.num_labels,
            "known_by_default": self.known_by_default,
            "strings": strings,
            "has_class_ids": self.class_ids is not None,
            "item_arrays": sorted(self.item_arrays),
            "cache_key": cache_key,
        }
        arrays.update(
            pos_indptr=self.pos_indptr, pos_indices=self.pos_indices,
            mask_indptr=self.mask_indptr, mask_indices=self.mask_indices,
        )
        if self.class_ids is not None:
            arrays["class_ids"] = self.class_ids
        for key, value in self.item_arrays.items():
            arrays[f"item_{key}"] = value
        # header first: a reader checks the version and key before touching anything else
        members = {
            "header": np.frombuffer(json.dumps(header, sort_keys=True).encode("utf-8"), dtype=np.uint8),
            "meta": np.frombuffer(json.dumps(self.meta, sort_keys=True).encode("utf-8"), dtype=np.uint8),
        }
        members.update(arrays)
        _save_members(path, members)

    @classmethod
    def load(cls, path: str | os.PathLike, cache_key: str | None = None, validate: bool = False) -> "LabelIndex":
        """Read what :meth:`save` wrote, memory-mapped (raises ``ValueError``/``OSError``/
        ``zipfile.BadZipFile`` if it is not that, or if ``cache_key`` is given and differs
        from the stored one). The file is trusted: only shapes are checked unless
        ``validate=True``."""
        z = _Members(path)
        if "header" not in z:
            raise ValueError("not a fashionbench index file")
        header = json.loads(bytes(z["header"]).decode("utf-8"))
        if header.get("format_version") != INDEX_FORMAT_VERSION:
            raise ValueError(f"index format {header.get('format_version')} != {INDEX_FORMAT_VERSION}")
        if cache_key is not None and header.get("cache_key") != cache_key:
            raise ValueError("stale cache: the annotation files changed")
        done: dict[str, Any] = {}
        for key in ("label_names", "image_ids", "image_paths"):
            done[key] = _strings_from_members(header["strings"][key], z, done)
        label_names = done["label_names"].tolist()
        if len(label_names) != header["n_labels"] or len(done["image_ids"]) != header["n_images"]:
            raise ValueError("string table length mismatch")
        return cls(
            dataset=header["dataset"],
            split=header["split"],
            label_names=label_names,
            image_paths=done["image_paths"],
            image_ids=done["image_ids"],
            pos_indptr=z["pos_indptr"],
            pos_indices=z["pos_indices"],
            known_by_default=bool(header["known_by_default"]),
            mask_indptr=z["mask_indptr"],
            mask_indices=z["mask_indices"],
            class_ids=z["class_ids"] if header["has_class_ids"] else None,
            meta=json.loads(bytes(z["meta"]).decode("utf-8")),
            item_arrays={k: z[f"item_{k}"] for k in header["item_arrays"]},
            validate=validate,
        )


# --------------------------------------------------------------------------- files
def file_fingerprints(paths: Iterable[Path], root: str | os.PathLike | None = None) -> list[tuple[str, int, int]]:
    """``(path, size, mtime_ns)`` per file, the path relative to ``root`` when given (so a
    moved or re-mounted root keeps its key); a missing file is an InputError naming it."""
    out = []
    for p in paths:
        try:
            st = os.stat(p)
        except FileNotFoundError:
            raise InputError("missing annotation file", path=p) from None
        name = os.path.relpath(p, root) if root is not None else os.path.abspath(p)
        out.append((Path(name).as_posix(), st.st_size, st.st_mtime_ns))
    return out


# --------------------------------------------------------------------------- cache
def default_cache_dir() -> Path:
    """``$FASHIONBENCH_CACHE`` if set, else ``~/.cache/fashionbench/index``."""
    env = os.environ.get("FASHIONBENCH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "fashionbench" / "index"


def cache_key(reader: "DatasetReader", root: str | os.PathLike, split: str, year: int | None, task: str) -> str:
    """sha256 over reader name/version/options, split/year/task and the annotation files'
    root-relative paths, sizes and mtimes: what the cached index's content depends on."""
    files = file_fingerprints(reader.annotation_files(Path(root), split, year, task), root)
    payload = json.dumps(
        [reader.name, INDEX_FORMAT_VERSION, reader.version, reader.options, split, year, task, files],
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def load_index(
    reader: "DatasetReader | str",
    root: str | os.PathLike,
    split: str | None = None,
    year: int | str | None = None,
    task: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    rebuild: bool = False,
) -> LabelIndex:
    """The split's :class:`LabelIndex`, from the cache when its files are unchanged.

    ``reader`` is a reader instance or a registered name; ``split``/``year``/``task`` of
    None take the reader's defaults. ``rebuild=True`` ignores (and rewrites) the cache.
    A hit whose stored key matches is trusted (memory-mapped, not re-validated).
    """
    if isinstance(reader, str):
        from datamodules.registry import get_reader

        reader = get_reader(reader)
    split, year, task = reader.resolve(split, year, task)
    root = Path(root)
    key = cache_key(reader, root, split, year, task)
    path = cache_path(reader, root, split, year, task, cache_dir)
    if not rebuild and path.is_file():
        try:
            return LabelIndex.load(path, cache_key=key)
        except Exception:  # noqa: BLE001 - a corrupt/stale cache file is rebuilt, never an error
            pass
    index = reader.read(root, split, year, task)
    try:
        index.save(path, cache_key=key)  # replaces a stale file of the same split in place
    except OSError:  # read-only or full cache dir: the index is still good
        pass
    return index


def cache_path(reader: "DatasetReader", root: str | os.PathLike, split: str, year: int | None, task: str,
               cache_dir: str | os.PathLike | None = None) -> Path:
    """The one cache file of a (reader, options, root, split, year, task): named by what
    it is, not by its content, so a rebuild after an edit replaces the stale file."""
    identity = json.dumps([reader.name, reader.options, os.path.abspath(root), split, year, task], sort_keys=True)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return folder / f"{reader.name}-{split}-{task}-{hashlib.sha256(identity.encode()).hexdigest()[:24]}.npz"
