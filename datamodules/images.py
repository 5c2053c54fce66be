"""The one image loader: a file on disk -> an RGB PIL image, the same way everywhere.

- EXIF orientation is applied (``ImageOps.exif_transpose``): phone photos come upright.
- Every mode becomes 8-bit RGB by one rule: grayscale (``1``/``L``/``I``/``I;16``/``F``)
  is replicated to three channels, 16-bit and 32-bit integer images are scaled to 8 bits
  (``I;16``: ``>> 8``; ``I``: by 257 when the values exceed 255), CMYK/YCbCr/LAB go through
  PIL's converter, palette images are expanded, and alpha (``RGBA``/``LA``/``PA``, a
  palette with transparency) is composited over white.
- JPEGs at least twice the size they will be used at are decoded in draft mode (libjpeg
  DCT scaling by 1/2, 1/4 or 1/8, never below ``target_size`` on the shorter side): a
  4000x3000 photo for a 448 input decodes at 1/4 of the pixels' cost.
- Decompression bombs are refused: PIL's ``DecompressionBombWarning`` (more than
  ``Image.MAX_IMAGE_PIXELS`` pixels) is an error here, not a warning.
- Every failure is an :class:`~fashionbench.errors.InputError` naming the file: missing,
  zero bytes, not an image, truncated, a bomb.

Free of torch and Lightning.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fashionbench.errors import InputError

__all__ = ["load_image", "to_rgb"]

_WHITE = (255, 255, 255)


def to_rgb(image: Image.Image) -> Image.Image:
    """The suite's one conversion of any PIL mode to 8-bit RGB (see module docstring)."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode.startswith("I;16") or mode in ("I", "F"):
        values = np.asarray(image)
        if mode.startswith("I;16"):
            values = values.astype(np.uint32) >> 8
        elif mode == "I" and values.size and values.max() > 255:
            values = values.astype(np.float64) / 257.0
        elif mode == "F":
            values = values * 255.0 if values.size and values.max() <= 1.0 else values
        gray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    return image.convert("RGB")  # 1, L, CMYK, YCbCr, LAB, HSV, RGBX ...


def _draft_request(size: tuple[int, int], target_size: int, box: Sequence[float] | None) -> tuple[int, int] | None:
    """The smallest ``(w, h)`` draft that keeps the used region's shorter side >= target."""
    width, height = size
    region = min(width, height) if box is None else min(box[2] - box[0], box[3] - box[1])
    if region <= 0 or region < 2 * target_size:
        return None
    factor = region / target_size  # how much smaller the decode may be
    return max(1, int(np.ceil(width / factor))), max(1, int(np.ceil(height / factor)))


def _crop(image: Image.Image, box: Sequence[float], upright: tuple[int, int]) -> Image.Image:
    """Crop to ``box`` given in the full-size upright image's pixels (the decode may be a draft)."""
    sx, sy = image.size[0] / upright[0], image.size[1] / upright[1]
    x1, y1, x2, y2 = (float(v) for v in box)
    left, top = max(0, int(x1 * sx)), max(0, int(y1 * sy))
    right, bottom = min(image.size[0], int(np.ceil(x2 * sx))), min(image.size[1], int(np.ceil(y2 * sy)))
    return image.crop((left, top, right, bottom)) if right > left and bottom > top else image


def load_image(path: str | os.PathLike, target_size: int | None = None,
               box: Sequence[float] | None = None) -> Image.Image:
    """An RGB image of ``path``; ``box`` (x1, y1, x2, y2 in pixels of the upright image, as
    the datasets' box lists give them) crops to a region; ``target_size`` (the side the
    image will be resized to) allows draft decoding of large JPEGs."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                orientation = image.getexif().get(0x0112, 1)
                upright = image.size[::-1] if orientation in (5, 6, 7, 8) else image.size
                if target_size and image.format == "JPEG":
                    request = _draft_request(upright, int(target_size), box)
                    if request is not None:
                        if orientation in (5, 6, 7, 8):
                            request = request[::-1]
                        image.draft("RGB" if image.mode in ("RGB", "YCbCr") else image.mode, request)
                image.load()
                image = ImageOps.exif_transpose(image)
                if box is not None:
                    image = _crop(image, box, upright)
                return to_rgb(image).copy()
    except FileNotFoundError:
        raise InputError("missing image file", path=path) from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as err:
        raise InputError(f"refused: decompression bomb ({err})", path=path) from None
    except UnidentifiedImageError:
        size = path.stat().st_size if path.exists() else 0
        raise InputError("empty file (0 bytes), not an image" if size == 0 else "not an image PIL can read", path=path) from None
    except (OSError, SyntaxError, ValueError) as err:  # truncated / corrupt data
        raise InputError(f"cannot decode image ({err})", path=path) from None
