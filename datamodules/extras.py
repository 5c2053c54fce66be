"""Per-item extras (named features computed in the data workers, next to the image) and
train sampling weights.

A datamodule's ``extras`` option maps batch keys to :class:`ItemExtra` objects (configured
in YAML with ``class_path``/``init_args``). For every item the dataset calls each extra
with the decoded RGB image (EXIF applied, cropped to the box when ``crop_to_box``, before
the transform) and the item's row in the split's :class:`~datamodules.index.LabelIndex`;
the returned array (fixed shape for every item) arrives in the batch as a float tensor
``batch[name]`` of shape ``[B, ...]``. Examples: HOG and colour histograms (the wide part
of WDR), cached backbone features looked up by image id (HMCN-F, WDR "fixed all").

An extra that needs no pixels sets ``needs_image = False`` and is called with
``image=None``; with the datamodule option ``load_images: false`` images are then not
decoded at all.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from datamodules.index import LabelIndex

__all__ = ["ItemExtra", "IndexArray", "SampleWeighting"]


class ItemExtra:
    """Base of a per-item feature: ``extra(image, row, index) -> np.ndarray``."""

    #: False when the feature comes from the index alone (no image is decoded for it).
    needs_image: bool = True

    def __call__(self, image: "Image.Image | None", row: int, index: "LabelIndex") -> np.ndarray:  # pragma: no cover
        raise NotImplementedError


class IndexArray(ItemExtra):
    """A per-image array the reader stored in ``index.item_arrays`` (e.g. ``bbox``)."""

    needs_image = False

    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self, image: "Image.Image | None", row: int, index: "LabelIndex") -> np.ndarray:
        return np.asarray(index.item_arrays[self.key][row], dtype=np.float32)


class SampleWeighting:
    """Base of a datamodule's ``train_sampling`` option: per-image sampling weights.

    ``weights(index) -> float [N]`` (non-negative, not all zero); the train loader then
    draws ``N`` images a epoch with replacement, image ``i`` with probability
    ``w_i / sum(w)`` (``torch.utils.data.WeightedRandomSampler``, seeded like the shuffle).
    """

    def __call__(self, index: "LabelIndex") -> np.ndarray:  # pragma: no cover
        raise NotImplementedError
