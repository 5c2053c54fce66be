"""The one image loader: every mode becomes RGB the same way, EXIF orientation, draft
decoding of large JPEGs, bombs refused, bad files named; ``on_bad_image`` skip/raise."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from datamodules.base import LabelIndexDataset, collate_items
from datamodules.images import load_image
from datamodules.index import LabelIndex
from fashionbench.errors import InputError


def pixel(image, xy=(0, 0)):
    return tuple(int(v) for v in image.getpixel(xy))


def test_exif_orientation_is_applied(tmp_path):
    # stored 40 wide x 20 high: left half red, right half blue; EXIF 6 = "rotate 90 degrees
    # clockwise to display", so the upright image is 20 wide x 40 high with red on top
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = (255, 0, 0)
    stored[:, 20:] = (0, 0, 255)
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(tmp_path / "rot.jpg", quality=95, exif=exif.tobytes())
    loaded = load_image(tmp_path / "rot.jpg")
    assert loaded.size == (20, 40) and loaded.mode == "RGB"
    top, bottom = pixel(loaded, (10, 5)), pixel(loaded, (10, 35))
    assert top[0] > 200 and top[2] < 60 and bottom[2] > 200 and bottom[0] < 60


@pytest.mark.parametrize("mode, value, expected", [
    ("L", 77, (77, 77, 77)),
    ("1", 1, (255, 255, 255)),
    ("RGBA", (255, 0, 0, 128), (255, 127, 127)),   # over white: 255 a + 255 (1 - a), a = 128/255
    ("LA", (0, 51), (204, 204, 204)),               # 0 a + 255 (1 - a), a = 51/255 -> 204
    ("I;16", 65535, (255, 255, 255)),               # 16 bit -> 8 bit: >> 8
    ("I;16", 32768, (128, 128, 128)),
    ("I", 257 * 100, (100, 100, 100)),              # 16-bit PNG opened as I: / 257
    ("CMYK", (0, 255, 255, 0), (255, 0, 0)),        # PIL: R = 255 - C - K ...
])
def test_every_mode_becomes_rgb(tmp_path, mode, value, expected):
    image = Image.new(mode, (4, 3), value)
    path = tmp_path / ("x.tif" if mode in ("CMYK", "I", "I;16", "1") else "x.png")
    image.save(path)
    loaded = load_image(path)
    assert loaded.mode == "RGB" and loaded.size == (4, 3)
    assert pixel(loaded) == pytest.approx(expected, abs=1)


def test_palette_with_and_without_transparency(tmp_path):
    image = Image.new("P", (2, 1))
    image.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    image.putpixel((0, 0), 0)
    image.putpixel((1, 0), 1)
    image.save(tmp_path / "p.png")
    assert [pixel(load_image(tmp_path / "p.png"), (x, 0)) for x in (0, 1)] == [(10, 20, 30), (200, 100, 50)]
    image.save(tmp_path / "pt.png", transparency=0)  # colour 0 is transparent -> white
    assert [pixel(load_image(tmp_path / "pt.png"), (x, 0)) for x in (0, 1)] == [(255, 255, 255), (200, 100, 50)]


def test_cmyk_and_grayscale_jpegs_load(tmp_path):
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg", quality=95)
    Image.new("L", (16, 16), 90).save(tmp_path / "gray.jpg", quality=95)
    red = pixel(load_image(tmp_path / "cmyk.jpg"), (8, 8))
    assert red[0] > 230 and red[1] < 25 and red[2] < 25
    assert pixel(load_image(tmp_path / "gray.jpg"), (8, 8)) == pytest.approx((90, 90, 90), abs=2)


def test_large_jpeg_is_decoded_in_draft_mode(tmp_path):
    Image.new("RGB", (4000, 3000), (40, 120, 200)).save(tmp_path / "big.jpg", quality=80)
    # libjpeg scales by 1/2, 1/4, 1/8: 1/4 keeps the shorter side (750) >= 448, 1/8 (375) would not
    assert load_image(tmp_path / "big.jpg", target_size=448).size == (1000, 750)
    assert load_image(tmp_path / "big.jpg").size == (4000, 3000)
    assert load_image(tmp_path / "big.jpg", target_size=2000).size == (4000, 3000)  # not twice the target
    # a box (in full-size pixels) is cropped from the draft at the right place
    crop = load_image(tmp_path / "big.jpg", target_size=100, box=(0, 0, 2000, 1500))
    assert crop.size[0] >= 100 and abs(crop.size[0] / crop.size[1] - 4 / 3) < 0.02


def test_box_crop_in_upright_pixels(tmp_path):
    array = np.zeros((10, 20, 3), np.uint8)
    array[2:6, 5:15] = 255
    Image.fromarray(array).save(tmp_path / "b.png")
    crop = load_image(tmp_path / "b.png", box=(5, 2, 15, 6))
    assert crop.size == (10, 4) and np.asarray(crop).min() == 255


def test_bad_files_are_named(tmp_path, monkeypatch):
    good = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(good, format="JPEG")
    (tmp_path / "cut.jpg").write_bytes(good.getvalue()[:300])
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "page.jpg").write_text("<html>not found</html>")
    for name, problem in (("cut.jpg", "cannot decode"), ("empty.jpg", "0 bytes"), ("page.jpg", "not an image"),
                          ("absent.jpg", "missing")):
        with pytest.raises(InputError, match=problem) as err:
            load_image(tmp_path / name)
        assert str(err.value).startswith(str(tmp_path / name))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    Image.new("RGB", (40, 30)).save(tmp_path / "bomb.png")  # 1,200 pixels > 1,000
    with pytest.raises(InputError, match="decompression bomb"):
        load_image(tmp_path / "bomb.png")


def test_skip_drops_bad_items_and_names_them(tmp_path):
    (tmp_path / "img").mkdir()
    Image.new("RGB", (8, 8), (255, 0, 0)).save(tmp_path / "img/a.png")
    (tmp_path / "img/b.jpg").write_bytes(b"")
    Image.new("RGB", (8, 8), (0, 255, 0)).save(tmp_path / "img/c.png")
    index = LabelIndex.from_pairs("t", "s", ["x"], ["img/a.png", "img/b.jpg", "img/c.png"], ["a", "b", "c"],
                                  np.array([0, 2]), np.array([0, 0]))
    dataset = LabelIndexDataset(index, tmp_path, on_bad_image="skip")
    batch = collate_items([dataset[i] for i in range(3)])
    assert batch["skipped"] == ["img/b.jpg"] and batch["index"].tolist() == [0, 2]
    assert batch["image"].shape == (2, 3, 8, 8)
    with pytest.raises(InputError, match="img/b.jpg"):
        LabelIndexDataset(index, tmp_path)[1]
