"""The one image transform builder (PIL image -> normalised float tensor ``[3, H, W]``).

Train: resize (``squash`` to ``image_size``² as ML-GCN/ASL do for multi-label, or
``shorter_side_crop``: shorter side to ``image_size`` then a random square crop), or a
``RandomResizedCrop`` when ``scale != (1, 1)``; horizontal flip; ASL's ``CutoutPIL``; timm
RandAugment; ``ToTensor``; ``Normalize``. Eval: the deterministic resize only (squash, or
shorter side + centre crop), ``ToTensor``, ``Normalize``; augmentation arguments are
ignored for ``train=False``.

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

__all__ = ["build_transform", "CutoutPIL", "IMAGENET_MEAN", "IMAGENET_STD", "RESIZE_MODES"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_MODES = ("squash", "shorter_side_crop")


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


def build_transform(
    image_size: int,
    train: bool,
    *,
    resize: str = "squash",
    scale: Sequence[float] = (1.0, 1.0),
    hflip: float = 0.5,
    randaugment: str | None = None,
    cutout: float = 0.0,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> Callable[[Image.Image], torch.Tensor]:
    """A ``torchvision.transforms.Compose`` for training (``train=True``) or evaluation.

    Args:
        image_size: output side length (square output).
        resize: ``"squash"`` (resize to ``image_size``², aspect not kept) or
            ``"shorter_side_crop"`` (shorter side to ``image_size``, then a square crop:
            random when training, centre when evaluating).
        scale: ``RandomResizedCrop`` area range; ``(1, 1)`` means the plain ``resize``.
        hflip: probability of a horizontal flip.
        randaugment: timm ``rand_augment_transform`` config string, e.g. ``"rand-m9-mstd0.5"``.
        cutout: ASL CutoutPIL patch size as a fraction of the side (0 = off).
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
    elif resize == "squash":
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
