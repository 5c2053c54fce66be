"""The VOC LightningDataModule; the reader (files -> LabelIndex) is ``datamodules.readers.voc``."""
from __future__ import annotations

from typing import Any

from datamodules.base import MultiLabelDataModule

__all__ = ["VOCDataModule"]


class VOCDataModule(MultiLabelDataModule):
    """PASCAL VOC multi-label classification (20 labels).

    Defaults follow the VOC2007 protocol of the multi-label papers: train on ``trainval``,
    evaluate on ``test``. VOC2012's test labels are not public, so 2012 configs set
    ``train_split: train`` and ``val_split``/``test_split: val``.
    """

    dataset_name = "voc"

    def __init__(
        self,
        root: str,
        year: int = 2007,
        train_split: str = "trainval",
        val_split: str = "test",
        test_split: str = "test",
        **kwargs: Any,
    ):
        """``kwargs``: the shared options of :class:`MultiLabelDataModule` (batch size,
        workers, image size, transforms, limits, seed, cache)."""
        super().__init__(
            root=root, year=year, train_split=train_split, val_split=val_split, test_split=test_split,
            **kwargs,
        )
