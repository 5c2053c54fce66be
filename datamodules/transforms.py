"""The one image transform builder (PIL image -> normalised float tensor ``[3, H, W]``).

Train: resize (``squash`` to ``image_size``² as ML-GCN/ASL do for multi-label,
``shorter_side_crop``: shorter side to ``image_size`` then a random square crop, or
``multiscale_crop``: ML-GCN's multi-scale crop, :class:`MultiScaleCrop`), or a
``RandomResizedCrop`` when ``scale != (1, 1)``; horizontal flip; ASL's ``CutoutPIL``; timm
RandAugment; ``ToTensor``; ``Normalize``. Eval: the deterministic resize only (squash, or
shorter side + centre crop; ``multiscale_crop`` evaluates squashed, as ML-GCN's ``Warp``),
``ToTensor``, ``Normalize``; augmentation arguments are ignored for ``train=False``.

Configs pass these keyword arguments as the datamodule's ``train_transform`` /
``eval_transform`` dicts.
"""
from __future__ import annotations

import random
from typing import TYPE_CHECKING, Callable, Sequence

from PIL import Image, ImageDraw
from torchvision import transforms as T

from fashionbench.errors import InputError

if TYPE_CHECKING:
    import torch

__all__ = ["build_transform", "CutoutPIL", "MultiScaleCrop", "IMAGENET_MEAN", "IMAGENET_STD", "RESIZE_MODES"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_MODES = ("squash", "shorter_side_crop", "multiscale_crop")
# ML-GCN (Chen et al., CVPR 2019), official code engine.py ``init_learning``: the scales and
# ``max_distort=2`` it passes to its MultiScaleCrop; util.py defaults: fixed crop positions,
# the 13-position grid (``more_fix_crop=True``).
MLGCN_CROP_SCALES = (1.0, 0.875, 0.75, 0.66, 0.5)
MLGCN_MAX_DISTORT = 2
MLGCN_CROP_POSITIONS = 13


class CutoutPIL:
    """ASL's ``CutoutPIL`` (Ridnik et al. 2021, code ``src/helper_functions``): one patch of
    ``cutout_factor`` x the image side, centred at a uniform random point (clipped at the
    border), filled with a uniform random RGB colour. Draws on a copy of the image."""

    def __init__(self, cutout_factor: float = 0.5):
        self.cutout_factor = cutout_factor

    def __call__(self, image: Image.Image) -> Image.Image:
        image = image.copy()
        width, height = image.size
        cut_w = int(self.cutout_factor * width + 0.5)
        cut_h = int(self.cutout_factor * height + 0.5)
        cx, cy = random.randrange(width), random.randrange(height)
        x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
        y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
        fill = (random.randint(0, 255), random.randint(0, 255), random.randint(0, 255))
        ImageDraw.Draw(image).rectangle([x0, y0, x1, y1], fill=fill)
        return image

    def __repr__(self) -> str:
        return f"{type(self).__name__}(cutout_factor={self.cutout_factor})"


class MultiScaleCrop:
    """ML-GCN's multi-scale crop (Chen et al., CVPR 2019, official code ``util.MultiScaleCrop``,
    itself from the TSN video code): crop a box whose sides are drawn from a few fractions of
    the image's shorter side, at one of a fixed grid of positions, then resize the box to
    ``size`` x ``size`` (bilinear).

    - Candidate sides: ``int(min(W, H) * s)`` for each ``s`` in ``scales``; a side within 3 px
      of ``size`` becomes ``size``. Width index ``j`` and height index ``i`` pair when
      ``|i - j| <= max_distort`` (the aspect ratio varies by at most that many scale steps);
      one pair is drawn uniformly.
    - Positions: with steps ``dx = (W - w) // 4``, ``dy = (H - h) // 4``, the box's top-left
      corner is ``(gx * dx, gy * dy)`` for a grid point drawn uniformly: 5 positions (the four
      corners and the centre) or 13 (plus the four edge midpoints and the four quarter points).
    - Randomness from :mod:`random` (seeded per DataLoader worker by the datamodule).
    """

    GRID_5 = ((0, 0), (4, 0), (0, 4), (4, 4), (2, 2))
    GRID_13 = GRID_5 + ((0, 2), (4, 2), (2, 4), (2, 0), (1, 1), (3, 1), (1, 3), (3, 3))

    def __init__(self, size: int, scales: Sequence[float] = MLGCN_CROP_SCALES,
                 max_distort: int = MLGCN_MAX_DISTORT, positions: int = MLGCN_CROP_POSITIONS):
        if positions not in (5, 13):
            raise InputError(f"crop_positions must be 5 or 13, got {positions}")
        if not scales or any(not 0 < float(s) <= 1 for s in scales):
            raise InputError(f"crop_scales must be fractions in (0, 1], got {list(scales)}")
        if max_distort < 0:
            raise InputError(f"max_distort must be >= 0, got {max_distort}")
        self.size = int(size)
        self.scales = tuple(float(s) for s in scales)
        self.max_distort = int(max_distort)
        self.positions = positions

    def crop_sizes(self, width: int, height: int) -> list[tuple[int, int]]:
        """The (crop width, crop height) pairs one draw chooses from."""
        sides = [int(min(width, height) * s) for s in self.scales]
        sides = [self.size if abs(side - self.size) < 3 else side for side in sides]
        return [(sides[j], sides[i]) for i in range(len(sides)) for j in range(len(sides))
                if abs(i - j) <= self.max_distort]

    def offsets(self, width: int, height: int, crop_w: int, crop_h: int) -> list[tuple[int, int]]:
        """The top-left corners a box of that size may take."""
        dx, dy = (width - crop_w) // 4, (height - crop_h) // 4
        grid = self.GRID_13 if self.positions == 13 else self.GRID_5
        return [(gx * dx, gy * dy) for gx, gy in grid]

    def sample_box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """One random crop box ``(x0, y0, x1, y1)`` of an image of that size."""
        crop_w, crop_h = random.choice(self.crop_sizes(width, height))
        x0, y0 = random.choice(self.offsets(width, height, crop_w, crop_h))
        return x0, y0, x0 + crop_w, y0 + crop_h

    def __call__(self, image: Image.Image) -> Image.Image:
        box = self.sample_box(*image.size)
        return image.crop(box).resize((self.size, self.size), Image.BILINEAR)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(size={self.size}, scales={self.scales}, "
                f"max_distort={self.max_distort}, positions={self.positions})")


def build_transform(
    image_size: int,
    train: bool,
    *,
    resize: str = "squash",
    scale: Sequence[float] = (1.0, 1.0),
    hflip: float = 0.5,
    randaugment: str | None = None,
    cutout: float = 0.0,
    crop_scales: Sequence[float] = MLGCN_CROP_SCALES,
    max_distort: int = MLGCN_MAX_DISTORT,
    crop_positions: int = MLGCN_CROP_POSITIONS,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> Callable[[Image.Image], torch.Tensor]:
    """A ``torchvision.transforms.Compose`` for training (``train=True``) or evaluation.

    Args:
        image_size: output side length (square output).
        resize: ``"squash"`` (resize to ``image_size``², aspect not kept),
            ``"shorter_side_crop"`` (shorter side to ``image_size``, then a square crop:
            random when training, centre when evaluating) or ``"multiscale_crop"``
            (training: :class:`MultiScaleCrop`; evaluation: squash, ML-GCN's ``Warp``).
        scale: ``RandomResizedCrop`` area range; ``(1, 1)`` means the plain ``resize``.
        hflip: probability of a horizontal flip.
        randaugment: timm ``rand_augment_transform`` config string, e.g. ``"rand-m9-mstd0.5"``.
        cutout: ASL CutoutPIL patch size as a fraction of the side (0 = off).
        crop_scales, max_distort, crop_positions: :class:`MultiScaleCrop`'s ``scales``,
            ``max_distort`` and ``positions`` (5 or 13); ML-GCN's values by default.
        mean, std: normalisation (ImageNet by default).
    """
    if resize not in RESIZE_MODES:
        raise InputError(f"unknown resize '{resize}'; known: {', '.join(RESIZE_MODES)}")
    scale = tuple(float(s) for s in scale)
    if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
        raise InputError(f"scale must be (low, high) with 0 < low <= high <= 1, got {scale}")
    steps: list[Callable] = []
    if train and scale != (1.0, 1.0):
        steps.append(T.RandomResizedCrop(image_size, scale=scale))
    elif train and resize == "multiscale_crop":
        steps.append(MultiScaleCrop(image_size, crop_scales, max_distort, crop_positions))
    elif resize in ("squash", "multiscale_crop"):
        steps.append(T.Resize((image_size, image_size)))
    else:
        steps += [T.Resize(image_size), (T.RandomCrop if train else T.CenterCrop)(image_size)]
    if train:
        if hflip > 0:
            steps.append(T.RandomHorizontalFlip(hflip))
        if cutout > 0:
            steps.append(CutoutPIL(cutout))
        if randaugment:
            from timm.data.auto_augment import rand_augment_transform

            hparams = {"translate_const": int(image_size * 0.45),
                       "img_mean": tuple(round(255 * m) for m in mean)}
            try:
                steps.append(rand_augment_transform(randaugment, hparams))
            except (AssertionError, ValueError, KeyError) as err:
                raise InputError(f"bad randaugment config '{randaugment}': {err}") from None
    steps += [T.ToTensor(), T.Normalize(mean, std)]
    return T.Compose(steps)
