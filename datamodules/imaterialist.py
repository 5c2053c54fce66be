"""The iMaterialist (Fashion) FGVC5 LightningDataModule; the reader (files -> LabelIndex) is
``datamodules.readers.imaterialist``."""
from __future__ import annotations

from typing import Any

from datamodules.base import MultiLabelDataModule
from datamodules.readers.imaterialist import DEFAULT_HOLDOUT_FRACTION
from fashionbench.errors import InputError

__all__ = ["IMaterialistDataModule"]


class IMaterialistDataModule(MultiLabelDataModule):
    """iMaterialist (Fashion) FGVC5: 228 labels in 8 task groups, micro-F1 the metric.

    Defaults: train on ``train_minus_holdout``, validate on ``validation`` (where per-class
    thresholds are chosen), test on ``holdout``, a seeded ``holdout_fraction`` of
    ``train.json``: the competition's test labels were never released, so ``test.json``
    (no labels) cannot be a validation or test split here. Listed images missing on disk
    (dead URLs) are left out (``drop_missing_images``), their count in each split index's
    ``meta["missing_images"]``.

    Args:
        holdout_fraction / holdout_seed: the hold-out cut (see the reader's docstring).
        drop_missing_images: leave out listed images without a file (default True).
        kwargs: the shared options of :class:`MultiLabelDataModule`.
    """

    dataset_name = "imaterialist"

    def __init__(
        self,
        root: str,
        train_split: str = "train_minus_holdout",
        val_split: str = "validation",
        test_split: str = "holdout",
        holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION,
        holdout_seed: int = 0,
        drop_missing_images: bool = True,
        **kwargs: Any,
    ):
        named = [(f"{option}.{name}", (spec or {}).get("split")) for option in ("val_sets", "test_sets")
                 for name, spec in (kwargs.get(option) or {}).items()]
        for option, split in [("train_split", train_split), ("val_split", val_split), ("test_split", test_split)] + named:
            if split == "test":
                raise InputError(
                    f"{option}: iMaterialist test.json has no labels (the competition's test labels were never "
                    "released); evaluate on 'holdout' (a seeded part of train.json) or 'validation'")
        if train_split == "train" and "holdout" in {val_split, test_split, *(split for _, split in named)}:
            raise InputError("train_split 'train' contains the 'holdout' images; train on 'train_minus_holdout'")
        super().__init__(
            root=root, train_split=train_split, val_split=val_split, test_split=test_split,
            reader_options={"holdout_fraction": holdout_fraction, "holdout_seed": holdout_seed,
                            "drop_missing_images": drop_missing_images},
            **kwargs,
        )
