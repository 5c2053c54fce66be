"""The COCO LightningDataModule; the reader (files -> LabelIndex) is ``datamodules.readers.coco``."""
from __future__ import annotations

from typing import Any

from datamodules.base import MultiLabelDataModule

__all__ = ["COCODataModule"]


class COCODataModule(MultiLabelDataModule):
    """MS-COCO multi-label classification (80 labels, crowd annotations counted).

    Defaults follow the COCO-2014 protocol of ML-GCN/ASL: train on ``train2014`` (82,081
    labelled images), evaluate on ``val2014`` (40,137).
    """

    dataset_name = "coco"

    def __init__(
        self,
        root: str,
        year: int = 2014,
        train_split: str = "train",
        val_split: str = "val",
        test_split: str = "val",
        include_empty: bool = False,
        **kwargs: Any,
    ):
        """``kwargs``: the shared options of :class:`MultiLabelDataModule` (batch size,
        workers, image size, transforms, limits, seed, cache)."""
        super().__init__(
            root=root, year=year, train_split=train_split, val_split=val_split, test_split=test_split,
            reader_options={"include_empty": include_empty},
            **kwargs,
        )
