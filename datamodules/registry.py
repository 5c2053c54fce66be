"""Dataset readers by name (interfaces.md "Dataset roots").

A reader is a small class that turns one dataset's annotation files into a
:class:`~datamodules.index.LabelIndex`; it never opens an image. Adding a dataset is adding
one module ``datamodules/readers/<dataset>.py`` that defines a :class:`DatasetReader`
subclass decorated with :func:`register_reader` (free of Lightning, so ``data summary``
starts fast) and, for training, a thin ``datamodules/<dataset>.py`` LightningDataModule:
:func:`get_reader` imports every module of ``datamodules.readers`` on first use, so
nothing else needs editing.
"""
from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from fashionbench.errors import InputError

if TYPE_CHECKING:  # index.py needs nothing from here; the import is for the annotation only
    from datamodules.index import LabelIndex

__all__ = ["DatasetReader", "register_reader", "get_reader", "reader_names"]

_READERS: dict[str, type["DatasetReader"]] = {}
_IMPORTED = False


class DatasetReader:
    """Reader protocol: files on disk -> one :class:`LabelIndex` per split.

    Subclasses set the class attributes and implement :meth:`annotation_files` and
    :meth:`read`. Constructor keyword arguments are reader *options* (e.g. COCO's
    ``include_empty``); they are part of the cache key via :attr:`options`.
    Errors in the files raise ``InputError(problem, path=file, line=n)``.
    """

    name: ClassVar[str] = ""
    #: Bump when the parser's output for the same files changes (invalidates caches).
    version: ClassVar[int] = 1
    years: ClassVar[tuple[int, ...]] = ()
    default_year: ClassVar[int | None] = None
    splits: ClassVar[tuple[str, ...]] = ()
    default_split: ClassVar[str] = ""
    tasks: ClassVar[tuple[str, ...]] = ("multilabel",)

    def __init__(self, **options: Any):
        if options:
            raise TypeError(f"{type(self).__name__} takes no options, got {sorted(options)}")

    @property
    def options(self) -> dict[str, Any]:
        """JSON-serialisable options that change what :meth:`read` returns."""
        return {}

    @property
    def default_task(self) -> str:
        return self.tasks[0]

    def resolve(self, split: str | None, year: int | str | None, task: str | None) -> tuple[str, int | None, str]:
        """Fill defaults and validate ``(split, year, task)``; unknown values are InputErrors."""
        split = self.default_split if split is None else str(split)
        if split not in self.splits:
            raise InputError(f"unknown {self.name} split '{split}'; known: {', '.join(self.splits)}")
        if year is None:
            year = self.default_year
        elif self.years:
            given = year
            try:
                year = int(year)
            except (TypeError, ValueError):
                year = None
            if year not in self.years:
                raise InputError(f"unknown {self.name} year '{given}'; known: {', '.join(map(str, self.years))}")
        task = self.default_task if task is None else str(task)
        if task not in self.tasks:
            raise InputError(f"unknown {self.name} task '{task}'; known: {', '.join(self.tasks)}")
        return split, year, task

    def available(self, root: Path) -> list[tuple[int | None, str]]:
        """``(year, split)`` pairs whose annotations are present under ``root``."""
        return []

    def annotation_files(self, root: Path, split: str, year: int | None, task: str) -> list[Path]:
        """Every file :meth:`read` depends on (their stats key the cache)."""
        raise NotImplementedError

    def read(self, root: Path, split: str, year: int | None, task: str) -> LabelIndex:
        """Parse the annotation files of one split into a LabelIndex."""
        raise NotImplementedError


R = TypeVar("R", bound=type[DatasetReader])


def register_reader(cls: R) -> R:
    """Class decorator: make ``cls`` available as ``get_reader(cls.name)``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    other = _READERS.get(cls.name)
    if other is not None and other.__qualname__ != cls.__qualname__:
        raise ValueError(f"dataset '{cls.name}' registered twice ({other.__qualname__}, {cls.__qualname__})")
    _READERS[cls.name] = cls
    return cls


def _import_dataset_modules() -> None:
    global _IMPORTED
    if _IMPORTED:
        return
    package = importlib.import_module("datamodules.readers")
    for module in pkgutil.iter_modules(package.__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"datamodules.readers.{module.name}")
    _IMPORTED = True


def reader_names() -> list[str]:
    """Names of all registered datasets, sorted."""
    _import_dataset_modules()
    return sorted(_READERS)


def get_reader(name: str, **options: Any) -> DatasetReader:
    """A reader instance for dataset ``name``; InputError listing the known names otherwise.

    Imports only the reader's own module when it is named after the dataset
    (``nus-wide`` -> ``datamodules/readers/nus_wide.py``), so one reader's dependencies
    (pandas for Open Images) do not slow every other dataset's start-up."""
    if name not in _READERS:
        module = name.replace("-", "_")
        if module.isidentifier() and importlib.util.find_spec(f"datamodules.readers.{module}") is not None:
            importlib.import_module(f"datamodules.readers.{module}")
    if name not in _READERS:
        _import_dataset_modules()
    if name not in _READERS:
        raise InputError(f"unknown dataset '{name}'; known: {', '.join(sorted(_READERS))}")
    return _READERS[name](**options)
