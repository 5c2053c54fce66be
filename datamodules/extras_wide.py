"""The "Wide" features of Wide, Deep and Recurrent (Xiong & Wang, FGVC5 poster, "Wide"):
HOG and a colour histogram per image, computed in the data workers as per-item extras
(``datamodules.extras.ItemExtra``) and concatenated with the deep features by the model.

The poster names the features (after Wide & Deep, Cheng et al. 2016: shallow, wide inputs
for memorisation; "some labels are just colors") but gives none of their settings, so:

- :class:`HOGFeatures`: scikit-image's ``skimage.feature.hog`` on the grey image resized to
  ``size`` x ``size`` (default 64), with Dalal & Triggs' (CVPR 2005) R-HOG settings: 9
  unsigned orientation bins, 8 x 8-pixel cells, 2 x 2-cell blocks, L2-Hys block
  normalisation. 64 px gives 7 x 7 blocks x 2 x 2 cells x 9 bins = 1,764 values.
- :class:`ColorHistogram`: the joint RGB histogram with ``bins`` levels per channel
  (default 8: 512 values) of the image resized to ``size`` x ``size``, normalised to sum 1
  (the colour-histogram features of Swain & Ballard 1991).

Both resize to a fixed side first, so every image gives the same shape whatever its size
(1 x 1 to tens of megapixels) and mode: any PIL mode is first made 8-bit RGB by the suite's
one rule (:func:`datamodules.images.to_rgb`: alpha over white, 16-bit scaled, CMYK/palette
converted), which the loader has already applied to the images it hands to extras.
Config::

    data:
      init_args:
        extras:
          hog: {class_path: datamodules.extras_wide.HOGFeatures}
          color_hist: {class_path: datamodules.extras_wide.ColorHistogram}
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from datamodules.extras import ItemExtra
from datamodules.images import to_rgb

if TYPE_CHECKING:  # pragma: no cover
    from datamodules.index import LabelIndex

__all__ = ["HOGFeatures", "ColorHistogram", "resized_rgb"]


def resized_rgb(image: Image.Image, size: int) -> Image.Image:
    """``image`` as 8-bit RGB of exactly ``size`` x ``size`` (aspect not kept)."""
    if image is None:
        raise ValueError("this extra needs the image (needs_image = True)")
    rgb = to_rgb(image)
    if rgb.size != (size, size):
        # reducing_gap: a cheap box reduction first, so a huge image costs little
        rgb = rgb.resize((size, size), Image.BILINEAR, reducing_gap=3.0)
    return rgb


class HOGFeatures(ItemExtra):
    """HOG of the grey image at ``size`` x ``size`` (``skimage.feature.hog``), ``float32 [dim]``.

    Args:
        size: side the image is resized to first (a multiple of ``pixels_per_cell`` is best).
        orientations / pixels_per_cell / cells_per_block / block_norm: as ``skimage.feature.hog``
            (defaults: Dalal & Triggs 2005).
    """

    needs_image = True

    def __init__(self, size: int = 64, orientations: int = 9, pixels_per_cell: int = 8,
                 cells_per_block: int = 2, block_norm: str = "L2-Hys") -> None:
        if size < pixels_per_cell * cells_per_block:
            raise ValueError(f"size {size} is smaller than one block ({pixels_per_cell * cells_per_block} px)")
        self.size = int(size)
        self.orientations = int(orientations)
        self.pixels_per_cell = int(pixels_per_cell)
        self.cells_per_block = int(cells_per_block)
        self.block_norm = block_norm

    @property
    def dim(self) -> int:
        """Length of the feature vector."""
        cells = self.size // self.pixels_per_cell
        blocks = cells - self.cells_per_block + 1
        return blocks * blocks * self.cells_per_block ** 2 * self.orientations

    def __call__(self, image: Image.Image | None, row: int = 0, index: "LabelIndex | None" = None) -> np.ndarray:
        from skimage.feature import hog

        grey = np.asarray(resized_rgb(image, self.size).convert("L"), dtype=np.float64) / 255.0
        features = hog(grey, orientations=self.orientations,
                       pixels_per_cell=(self.pixels_per_cell, self.pixels_per_cell),
                       cells_per_block=(self.cells_per_block, self.cells_per_block),
                       block_norm=self.block_norm, feature_vector=True)
        return features.astype(np.float32)

    def __repr__(self) -> str:
        return (f"HOGFeatures(size={self.size}, orientations={self.orientations}, pixels_per_cell={self.pixels_per_cell}, "
                f"cells_per_block={self.cells_per_block}, block_norm={self.block_norm!r})")


class ColorHistogram(ItemExtra):
    """Joint RGB histogram, ``bins`` levels per channel, normalised: ``float32 [bins**3]``.

    Args:
        bins: levels per channel (each covers ``256 / bins`` intensity values).
        size: side the image is resized to first (the histogram is of its pixels).
    """

    needs_image = True

    def __init__(self, bins: int = 8, size: int = 64) -> None:
        if not 1 <= bins <= 256:
            raise ValueError(f"bins must be in 1..256, got {bins}")
        self.bins = int(bins)
        self.size = int(size)

    @property
    def dim(self) -> int:
        return self.bins ** 3

    def __call__(self, image: Image.Image | None, row: int = 0, index: "LabelIndex | None" = None) -> np.ndarray:
        pixels = np.asarray(resized_rgb(image, self.size), dtype=np.int64).reshape(-1, 3)
        levels = pixels * self.bins // 256  # 0 .. bins-1 per channel
        flat = (levels[:, 0] * self.bins + levels[:, 1]) * self.bins + levels[:, 2]
        counts = np.bincount(flat, minlength=self.dim).astype(np.float64)
        return (counts / counts.sum()).astype(np.float32)

    def __repr__(self) -> str:
        return f"ColorHistogram(bins={self.bins}, size={self.size})"
