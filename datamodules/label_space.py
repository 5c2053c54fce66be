"""The label space of a split: which labels a model scores, in which order, and what is
known about them.

A :class:`LabelSpace` is what a datamodule hands a model for each split or evaluation set
(the CLI links the train one into the model; the base module builds each evaluation
set's evaluators from that set's own). A model with a fixed output width needs the same
number of labels everywhere; a model that scores labels through their vectors (zero-shot
SDL) scores whatever a label space holds.

Free of Lightning and torch (numpy only).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["LabelSpace"]


class LabelSpace:
    """Labels in output order, with what the dataset knows of them.

    Args:
        names: the ``C`` label names, in output order (unique).
        vectors: ``[C, d]`` label vectors (word embeddings), or None.
        parents: ``C`` parent/group names (a one-level hierarchy: DeepFashion's upper/lower/
            full body, iMaterialist's task groups), or None.
        frequencies: ``[C]`` training positive rate (positives / known entries), or None.
        seen: ``[C]`` bool, True for the labels seen in (zero-shot) training, or None.
        single_label: one class per image (softmax, top-k accuracy).
    """

    def __init__(
        self,
        names: Sequence[str],
        vectors: np.ndarray | None = None,
        parents: Sequence[str] | None = None,
        frequencies: np.ndarray | Sequence[float] | None = None,
        seen: np.ndarray | Sequence[bool] | None = None,
        single_label: bool = False,
    ) -> None:
        self.names = [str(n) for n in names]
        c = len(self.names)
        if c == 0:
            raise ValueError("a label space needs at least one label")
        if len(set(self.names)) != c:
            raise ValueError("label names must be unique")
        self.vectors = None if vectors is None else np.ascontiguousarray(vectors, dtype=np.float32)
        if self.vectors is not None and (self.vectors.ndim != 2 or self.vectors.shape[0] != c):
            raise ValueError(f"vectors must be [{c}, d], got {list(self.vectors.shape)}")
        self.parents = None if parents is None else [str(p) for p in parents]
        if self.parents is not None and len(self.parents) != c:
            raise ValueError(f"{len(self.parents)} parents for {c} labels")
        self.frequencies = None if frequencies is None else np.asarray(frequencies, dtype=np.float64)
        if self.frequencies is not None and self.frequencies.shape != (c,):
            raise ValueError(f"frequencies must be [{c}], got {list(self.frequencies.shape)}")
        self.seen = None if seen is None else np.asarray(seen, dtype=bool)
        if self.seen is not None and self.seen.shape != (c,):
            raise ValueError(f"seen must be [{c}], got {list(self.seen.shape)}")
        self.single_label = bool(single_label)

    # ---------------------------------------------------------------- queries
    @property
    def num_labels(self) -> int:
        return len(self.names)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def parent_names(self) -> list[str]:
        """The distinct parents, in order of first appearance (empty without a hierarchy)."""
        return list(dict.fromkeys(self.parents)) if self.parents is not None else []

    @property
    def parent_index(self) -> np.ndarray:
        """``int64 [C]``: each label's parent as an index into :attr:`parent_names`."""
        if self.parents is None:
            raise ValueError("this label space has no hierarchy")
        lookup = {p: i for i, p in enumerate(self.parent_names)}
        return np.array([lookup[p] for p in self.parents], dtype=np.int64)

    def subset(self, names: Sequence[str]) -> "LabelSpace":
        """The labels ``names`` (in that order), keeping what is known of each."""
        lookup = {n: i for i, n in enumerate(self.names)}
        missing = [n for n in names if n not in lookup]
        if missing:
            raise ValueError(f"labels not in this space: {missing[:5]}")
        rows = np.array([lookup[n] for n in names], dtype=np.int64)

        def take(values: Any) -> Any:
            if values is None:
                return None
            return [values[i] for i in rows] if isinstance(values, list) else values[rows]

        return LabelSpace(list(names), take(self.vectors), take(self.parents), take(self.frequencies),
                          take(self.seen), self.single_label)

    def with_vectors(self, vectors: np.ndarray | None) -> "LabelSpace":
        """The same labels with other vectors."""
        return LabelSpace(self.names, vectors, self.parents, self.frequencies, self.seen, self.single_label)

    def same_labels(self, other: "LabelSpace") -> bool:
        return self.names == other.names

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary (for records and logs): names and which facts are present."""
        return {
            "num_labels": self.num_labels,
            "names": list(self.names),
            "vector_dim": None if self.vectors is None else int(self.vectors.shape[1]),
            "parents": self.parents,
            "n_seen": None if self.seen is None else int(self.seen.sum()),
            "single_label": self.single_label,
        }

    def __repr__(self) -> str:
        extras = [k for k in ("vectors", "parents", "frequencies", "seen") if getattr(self, k) is not None]
        head = ", ".join(self.names[:3]) + (", ..." if self.num_labels > 3 else "")
        return f"LabelSpace({self.num_labels} labels: {head}; {'+'.join(extras) or 'names only'})"
