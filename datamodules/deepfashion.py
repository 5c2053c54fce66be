"""The DeepFashion LightningDataModule; the reader (lists -> LabelIndex) is
``datamodules.readers.deepfashion``."""
from __future__ import annotations

from typing import Any

from datamodules.base import MultiLabelDataModule

__all__ = ["DeepFashionDataModule"]


class DeepFashionDataModule(MultiLabelDataModule):
    """DeepFashion Category and Attribute Prediction (``Eval/list_eval_partition.txt``:
    209,222 train / 40,000 val / 40,000 test images).

    ``task``: ``category`` (50 classes, single-label; HMCN-F, shared/papers/001 §4),
    ``attributes`` (1,000, 0 = masked) or ``patterns`` (the 11 pattern groups of the
    semantic-embedding paper, shared/papers/000 §IV-A). HMCN-F cuts every image to its
    region of interest (§4): pass ``crop_to_box: true`` (the boxes of ``Anno/list_bbox.txt``).
    """

    dataset_name = "deepfashion"

    def __init__(
        self,
        root: str,
        train_split: str = "train",
        val_split: str = "val",
        test_split: str = "test",
        task: str = "category",
        **kwargs: Any,
    ):
        """``kwargs``: the shared options of :class:`MultiLabelDataModule` (batch size,
        workers, image size, transforms, limits, seed, cache, ``crop_to_box``, ...)."""
        super().__init__(root=root, train_split=train_split, val_split=val_split, test_split=test_split,
                         task=task, **kwargs)
