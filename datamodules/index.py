"""The label index: what a dataset split holds, as arrays, and its on-disk cache.

Every dataset reader (``datamodules/<dataset>.py``) turns raw annotation files into one
:class:`LabelIndex` per split; everything downstream (``data summary``, the datamodule,
the dataset items) reads the index, never the raw files. The index holds labels sparsely
(CSR rows, one per image) so that 9M Open Images rows or 1,000 DeepFashion attributes cost
memory in proportion to their positives; dense ``[n, C]`` arrays are built only for the
rows asked for (one item, one batch).

Known-mask
    An entry ``(image, label)`` is *known* (scored, trained on) or *masked* (ignored).
    ``known_by_default=True`` means every entry is known except those listed in the mask
    CSR (VOC: the "difficult" entries); ``known_by_default=False`` means every entry is
    unknown except those listed (Open Images: the human-verified labels). Every positive
    is known (checked).

Cache (:func:`load_index`)
    ``cache_dir / <sha>.npz``; the sha covers the reader's name, version and options, the
    split/year/task and, for every annotation file the reader declares, its absolute path,
    size and ``mtime_ns``, so touching or editing one rebuilds the index. Files are written
    atomically; an unreadable cache file is rebuilt, never an error.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from fashionbench.errors import InputError
from fashionbench.io import atomic_open

if TYPE_CHECKING:  # pragma: no cover
    from datamodules.registry import DatasetReader

#: Bump when the index layout or a change common to all readers invalidates caches.
INDEX_FORMAT_VERSION = 2

__all__ = [
    "INDEX_FORMAT_VERSION",
    "LabelIndex",
    "csr_from_pairs",
    "default_cache_dir",
    "cache_key",
    "cache_path",
    "load_index",
]


# --------------------------------------------------------------------------- CSR helpers
def csr_from_pairs(rows: np.ndarray, cols: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """``(indptr int64 [n_rows+1], indices int32)`` from ``(row, col)`` pairs.

    Pairs may come in any order and may repeat (COCO: several boxes of one class); the
    result has each row's columns sorted and unique. Vectorised (one lexsort).
    """
    rows = np.asarray(rows, dtype=np.int64).ravel()
    cols = np.asarray(cols, dtype=np.int64).ravel()
    if rows.shape != cols.shape:
        raise ValueError("rows and cols must have the same length")
    if rows.size:
        order = np.lexsort((cols, rows))
        rows, cols = rows[order], cols[order]
        keep = np.ones(rows.size, dtype=bool)
        keep[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
        rows, cols = rows[keep], cols[keep]
        if rows[0] < 0 or rows[-1] >= n_rows:
            raise ValueError(f"row index out of range [0, {n_rows})")
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    return indptr, cols.astype(np.int32)


def _empty_csr(n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(n_rows + 1, dtype=np.int64), np.zeros(0, dtype=np.int32)


def _gather_rows(indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For the selected rows, the (output row, column) of every stored entry (vectorised)."""
    starts = indptr[rows]
    lengths = indptr[rows + 1] - starts
    out_rows = np.repeat(np.arange(rows.size), lengths)
    # position of each entry inside `indices`: start of its row + offset within the row
    offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return out_rows, indices[np.repeat(starts, lengths) + offsets]


def _check_csr(name: str, indptr: np.ndarray, indices: np.ndarray, n_rows: int, n_cols: int) -> None:
    if indptr.ndim != 1 or indptr.shape[0] != n_rows + 1:
        raise ValueError(f"{name}_indptr must have shape [{n_rows + 1}], got {list(indptr.shape)}")
    if indptr[0] != 0 or indptr[-1] != indices.shape[0] or np.any(np.diff(indptr) < 0):
        raise ValueError(f"{name}_indptr must start at 0, be non-decreasing and end at len({name}_indices)")
    if indices.size:
        if indices.min() < 0 or indices.max() >= n_cols:
            raise ValueError(f"{name}_indices out of range [0, {n_cols})")
        # strictly increasing inside each row: a step <= 0 is only allowed at a row start
        row_start = np.zeros(indices.size, dtype=bool)
        row_start[indptr[:-1][indptr[:-1] < indices.size]] = True
        bad = (np.diff(indices.astype(np.int64)) <= 0) & ~row_start[1:]
        if np.any(bad):
            raise ValueError(f"{name}_indices must be sorted and unique within each row")


def _entry_keys(indptr: np.ndarray, indices: np.ndarray, n_cols: int) -> np.ndarray:
    rows = np.repeat(np.arange(indptr.size - 1, dtype=np.int64), np.diff(indptr))
    return rows * n_cols + indices


def _pack_strings(strings: Sequence[str]) -> np.ndarray:
    """Strings as one UTF-8 ``uint8`` blob joined by newlines (compact; no pickle)."""
    return np.frombuffer("\n".join(strings).encode("utf-8"), dtype=np.uint8)


def _unpack_strings(blob: np.ndarray, count: int) -> list[str]:
    if count == 0:
        return []
    out = blob.tobytes().decode("utf-8").split("\n")
    if len(out) != count:
        raise ValueError("string table length mismatch")
    return out


# --------------------------------------------------------------------------- LabelIndex
@dataclass(eq=False)
class LabelIndex:
    """The labels of one dataset split (see module docstring).

    Attributes:
        dataset: reader name, e.g. ``"voc"``.
        split: split name, e.g. ``"trainval"``.
        label_names: the ``C`` label names, in the dataset's official order.
        image_paths: ``N`` image paths relative to the dataset root (POSIX separators).
        image_ids: ``N`` unique image ids (as strings).
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
    """

    dataset: str
    split: str
    label_names: list[str]
    image_paths: list[str]
    image_ids: list[str]
    pos_indptr: np.ndarray
    pos_indices: np.ndarray
    known_by_default: bool = True
    mask_indptr: np.ndarray | None = None
    mask_indices: np.ndarray | None = None
    class_ids: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    item_arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.label_names = list(self.label_names)
        self.image_paths = list(self.image_paths)
        self.image_ids = list(self.image_ids)
        self.known_by_default = bool(self.known_by_default)
        n, c = len(self.image_ids), len(self.label_names)
        if len(self.image_paths) != n:
            raise ValueError(f"{len(self.image_paths)} image paths for {n} image ids")
        if len(set(self.label_names)) != c:
            raise ValueError("label names must be unique")
        if len(set(self.image_ids)) != n:
            raise ValueError("image ids must be unique")
        self.pos_indptr = np.ascontiguousarray(self.pos_indptr, dtype=np.int64)
        self.pos_indices = np.ascontiguousarray(self.pos_indices, dtype=np.int32)
        if self.mask_indptr is None and self.mask_indices is None:
            self.mask_indptr, self.mask_indices = _empty_csr(n)
        self.mask_indptr = np.ascontiguousarray(self.mask_indptr, dtype=np.int64)
        self.mask_indices = np.ascontiguousarray(self.mask_indices, dtype=np.int32)
        _check_csr("pos", self.pos_indptr, self.pos_indices, n, c)
        _check_csr("mask", self.mask_indptr, self.mask_indices, n, c)
        listed = np.isin(
            _entry_keys(self.pos_indptr, self.pos_indices, c),
            _entry_keys(self.mask_indptr, self.mask_indices, c),
        )
        if np.any(listed == self.known_by_default):
            raise ValueError("every positive must be a known entry")
        if self.class_ids is not None:
            self.class_ids = np.ascontiguousarray(self.class_ids, dtype=np.int64)
            if self.class_ids.shape != (n,) or not np.array_equal(np.diff(self.pos_indptr), np.ones(n, np.int64)) \
                    or not np.array_equal(self.pos_indices, self.class_ids):
                raise ValueError("class_ids must be [N] and equal the single positive of each row")
        self.meta = dict(self.meta)
        self.item_arrays = {k: np.asarray(v) for k, v in (self.item_arrays or {}).items()}
        for key, value in self.item_arrays.items():
            if value.ndim == 0 or value.shape[0] != n:
                raise ValueError(f"item array '{key}' must have {n} rows, got shape {list(value.shape)}")
        for key in ("label_parents", "label_seen"):
            if key in self.meta and len(self.meta[key]) != c:
                raise ValueError(f"meta['{key}'] must have {c} entries, got {len(self.meta[key])}")

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
        return cls(dataset, split, list(label_names), list(image_paths), list(image_ids),
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
        return cls(dataset, split, list(label_names), list(image_paths), list(image_ids),
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

        def take(indptr: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            r, c = _gather_rows(indptr, indices, rows)
            new_ptr = np.zeros(rows.size + 1, dtype=np.int64)
            np.cumsum(np.bincount(r, minlength=rows.size), out=new_ptr[1:])
            return new_ptr, c

        pos = take(self.pos_indptr, self.pos_indices)
        mask = take(self.mask_indptr, self.mask_indices)
        return LabelIndex(
            self.dataset, self.split, list(self.label_names),
            [self.image_paths[i] for i in rows], [self.image_ids[i] for i in rows],
            pos[0], pos[1], self.known_by_default, mask[0], mask[1],
            None if self.class_ids is None else self.class_ids[rows], dict(self.meta),
            {k: v[rows] for k, v in self.item_arrays.items()},
        )

    # ---------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike, cache_key: str | None = None) -> None:
        """Write an ``.npz`` (no pickle; meta as JSON), atomically; ``cache_key`` is stored
        for :func:`load_index` to check the file against the annotations it came from."""
        arrays = {
            "format_version": np.array(INDEX_FORMAT_VERSION, dtype=np.int64),
            "dataset": np.array(self.dataset),
            "split": np.array(self.split),
            "n_images": np.array(len(self), dtype=np.int64),
            "label_names": _pack_strings(self.label_names),
            "n_labels": np.array(self.num_labels, dtype=np.int64),
            "image_paths": _pack_strings(self.image_paths),
            "image_ids": _pack_strings(self.image_ids),
            "pos_indptr": self.pos_indptr,
            "pos_indices": self.pos_indices,
            "known_by_default": np.array(self.known_by_default),
            "mask_indptr": self.mask_indptr,
            "mask_indices": self.mask_indices,
            "meta": np.array(json.dumps(self.meta, sort_keys=True)),
        }
        if self.class_ids is not None:
            arrays["class_ids"] = self.class_ids
        for key, value in self.item_arrays.items():
            arrays[f"item_{key}"] = value
        if cache_key is not None:
            arrays["cache_key"] = np.array(cache_key)
        with atomic_open(path, "wb") as handle:
            np.savez(handle, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike, cache_key: str | None = None) -> "LabelIndex":
        """Read what :meth:`save` wrote (raises ``ValueError``/``OSError`` if it is not that,
        or if ``cache_key`` is given and differs from the stored one)."""
        with np.load(path, allow_pickle=False) as z:
            if int(z["format_version"]) != INDEX_FORMAT_VERSION:
                raise ValueError(f"index format {int(z['format_version'])} != {INDEX_FORMAT_VERSION}")
            if cache_key is not None and ("cache_key" not in z.files or str(z["cache_key"]) != cache_key):
                raise ValueError("stale cache: the annotation files changed")
            n, c = int(z["n_images"]), int(z["n_labels"])
            return cls(
                dataset=str(z["dataset"]),
                split=str(z["split"]),
                label_names=_unpack_strings(z["label_names"], c),
                image_paths=_unpack_strings(z["image_paths"], n),
                image_ids=_unpack_strings(z["image_ids"], n),
                pos_indptr=z["pos_indptr"],
                pos_indices=z["pos_indices"],
                known_by_default=bool(z["known_by_default"]),
                mask_indptr=z["mask_indptr"],
                mask_indices=z["mask_indices"],
                class_ids=z["class_ids"] if "class_ids" in z.files else None,
                meta=json.loads(str(z["meta"])),
                item_arrays={k[5:]: z[k] for k in z.files if k.startswith("item_")},
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
