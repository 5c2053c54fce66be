"""The Open Images v4 LightningDataModule; the reader (files -> LabelIndex) is
``datamodules.readers.open_images``."""
from __future__ import annotations

from typing import Any

from datamodules.base import MultiLabelDataModule

__all__ = ["OpenImagesDataModule"]


class OpenImagesDataModule(MultiLabelDataModule):
    """Open Images v4 human-verified image-level labels: 7,186 trainable labels
    (``task: multilabel``), the 400 unseen (``zsl``) or both (``gzsl``); unverified pairs
    are masked (see the reader's docstring).

    Defaults: train on ``train`` (the 9M-image split; its index is memory-mapped and made
    dense one batch at a time), validate on ``validation``, test on ``test``. For SDL's
    Table 1 a config trains on ``task: multilabel`` and sets ``test_sets: {zsl: {split:
    test, task: zsl}, gzsl: {split: test, task: gzsl}}``. Listed images missing on disk are
    left out (``drop_missing_images``), their count in ``meta["missing_images"]``.

    Args:
        drop_missing_images: leave out images without a file (default True).
        kwargs: the shared options of :class:`MultiLabelDataModule`.
    """

    dataset_name = "open-images"

    def __init__(
        self,
        root: str,
        task: str = "multilabel",
        train_split: str = "train",
        val_split: str = "validation",
        test_split: str = "test",
        drop_missing_images: bool = True,
        **kwargs: Any,
    ):
        super().__init__(
            root=root, task=task, train_split=train_split, val_split=val_split, test_split=test_split,
            reader_options={"drop_missing_images": drop_missing_images},
            **kwargs,
        )
