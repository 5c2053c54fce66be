"""The NUS-WIDE LightningDataModule; the reader (files -> LabelIndex) is ``datamodules.readers.nus_wide``."""
from __future__ import annotations

from typing import Any

from datamodules.base import MultiLabelDataModule

__all__ = ["NUSWideDataModule"]


class NUSWideDataModule(MultiLabelDataModule):
    """NUS-WIDE: the 81 concepts (``task: concepts81``) or the zero-shot protocol of
    Fast0Tag/LESA/SDL (SDL paper §4.1): ``task: zsl`` trains on the 925 seen tags and
    tests on the 81 concepts; ``gzsl`` tests on all 1,006 (see the reader's docstring).

    Defaults: train on ``train`` (TrainImagelist, 161,789 images), validate and test on
    ``test`` (107,859): NUS-WIDE has no official validation split. For SDL's Table 1 a
    config sets ``task: zsl`` and ``test_sets: {zsl: {split: test, task: zsl}, gzsl:
    {split: test, task: gzsl}}``. Listed images missing on disk (dead Flickr URLs) are left
    out (``drop_missing_images``), their count in each split index's
    ``meta["missing_images"]``.

    Args:
        drop_missing_images: leave out listed images without a file (default True).
        kwargs: the shared options of :class:`MultiLabelDataModule` (batch size, workers,
            image size, transforms, limits, seed, cache, evaluation sets, embeddings, ...).
    """

    dataset_name = "nus-wide"

    def __init__(
        self,
        root: str,
        task: str = "concepts81",
        train_split: str = "train",
        val_split: str = "test",
        test_split: str = "test",
        drop_missing_images: bool = True,
        **kwargs: Any,
    ):
        super().__init__(
            root=root, task=task, train_split=train_split, val_split=val_split, test_split=test_split,
            reader_options={"drop_missing_images": drop_missing_images},
            **kwargs,
        )
