"""The safe image loader (vitdream.images): every awkward kind of input, and every bad one."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from vitdream.errors import ImageLoadError
from vitdream.images import BadImage, expand_sources, load_image, load_images


def _rgb(image: Image.Image) -> np.ndarray:
    assert image.mode == "RGB"
    return np.asarray(image).astype(int)


def test_truncated_file_is_reported_as_such(tmp_path):
    path = tmp_path / "cut.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path, quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match=r"cut\.jpg: truncated JPEG file"):
        load_image(path)


def test_zero_byte_file_and_empty_bytes(tmp_path):
    (tmp_path / "zero.png").write_bytes(b"")
    with pytest.raises(ImageLoadError, match=r"zero\.png: empty file \(0 bytes\)"):
        load_image(tmp_path / "zero.png")
    with pytest.raises(ImageLoadError, match="empty input"):
        load_image(b"")


def test_non_image_with_an_image_extension(tmp_path):
    (tmp_path / "notes.jpg").write_text("these are my holiday notes, not a photo")
    with pytest.raises(ImageLoadError, match=r"notes\.jpg: not an image"):
        load_image(tmp_path / "notes.jpg")


def _png_claiming_size(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` (a decompression-bomb shape) with tiny data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


def test_decompression_bomb_refused_under_pillows_limit(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_claiming_size(40_000, 40_000))  # 1.6 G pixels > 2 x MAX_IMAGE_PIXELS
    with pytest.raises(ImageLoadError, match=r"bomb\.png: decompression bomb refused.*MAX_IMAGE_PIXELS"):
        load_image(path)
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # the loader keeps Pillow's limit


def test_image_just_over_the_warning_limit_is_refused_too(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # a 40x40 image is now between 1x and 2x the limit
    path = tmp_path / "big.png"
    Image.new("RGB", (40, 40)).save(path)
    with pytest.raises(ImageLoadError, match="decompression bomb"):
        load_image(path)


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, quality=100)  # pure red in CMYK
    pixel = _rgb(load_image(path))[8, 8]
    assert pixel[0] > 200 and pixel[1] < 60 and pixel[2] < 60


def test_16_bit_png_is_scaled_to_8_bit(tmp_path):
    path = tmp_path / "deep.png"
    arr = np.array([[0, 65535], [32896, 65535]], dtype=np.uint16)
    Image.fromarray(arr).save(path)
    out = _rgb(load_image(path))
    assert out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out[..., 0], [[0, 255], [128, 255]])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_16_bit_array_is_scaled_to_8_bit():
    out = _rgb(load_image(np.full((3, 3, 3), 65535, dtype=np.uint16)))
    assert (out == 255).all()


def test_palette_with_transparency_is_composited_on_white(tmp_path):
    path = tmp_path / "pal.png"
    image = Image.new("P", (4, 4), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.putpixel((0, 0), 1)
    image.save(path, transparency=0)  # palette index 0 (red) is transparent
    out = _rgb(load_image(path))
    assert tuple(out[0, 0]) == (0, 0, 255)
    assert tuple(out[2, 2]) == (255, 255, 255)


def test_grayscale_gives_equal_channels(tmp_path):
    path = tmp_path / "gray.png"
    Image.fromarray(np.arange(16, dtype=np.uint8).reshape(4, 4) * 16).save(path)
    out = _rgb(load_image(path))
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    assert out[3, 3, 0] == 240


def test_rgba_is_composited_on_white(tmp_path):
    path = tmp_path / "rgba.png"
    image = Image.new("RGBA", (2, 1), (0, 0, 0, 0))
    image.putpixel((1, 0), (0, 0, 0, 255))
    image.save(path)
    out = _rgb(load_image(path))
    assert tuple(out[0, 0]) == (255, 255, 255) and tuple(out[0, 1]) == (0, 0, 0)


def test_animated_gif_gives_its_first_frame(tmp_path):
    path = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    with Image.open(path) as check:
        assert check.n_frames == 2
    pixel = _rgb(load_image(path))[4, 4]
    assert pixel[0] > 200 and pixel[2] < 50


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    image = Image.new("RGB", (40, 20), (255, 255, 255))
    image.paste((255, 0, 0), (0, 0, 10, 20))  # red band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    image.save(path, exif=exif, quality=100)
    out = load_image(path)
    assert out.size == (20, 40)
    top = _rgb(out)[2, 10]
    assert top[0] > 200 and top[1] < 60  # the left band is now at the top


def test_arrays_of_every_common_layout():
    assert load_image(np.zeros((5, 6), np.uint8)).size == (6, 5)
    assert load_image(np.zeros((5, 6, 1), np.uint8)).size == (6, 5)
    assert load_image(np.zeros((3, 5, 6), np.uint8)).size == (6, 5)  # CHW
    assert _rgb(load_image(np.ones((4, 4, 3), np.float32)))[0, 0, 0] == 255
    with pytest.raises(ImageLoadError, match="NaN"):
        load_image(np.full((4, 4, 3), np.nan, np.float32))
    with pytest.raises(ImageLoadError, match="not an image"):
        load_image(np.zeros((5, 5, 7), np.uint8))


def test_missing_file_directory_and_wrong_type(tmp_path):
    with pytest.raises(ImageLoadError, match="no such file"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageLoadError, match="is a directory"):
        load_image(tmp_path)
    with pytest.raises(ImageLoadError, match="unsupported input type"):
        load_image(3.14)


def test_batch_goes_on_past_bad_items_and_reports_each(tmp_path):
    good = tmp_path / "good.png"
    Image.new("RGB", (4, 4), (1, 2, 3)).save(good)
    (tmp_path / "bad.jpg").write_text("nope")
    result = load_images([good, tmp_path / "bad.jpg", b"", Image.new("L", (2, 2))])
    assert [im is not None for im in result.images] == [True, False, False, True]
    assert result.failures == [
        BadImage(1, str(tmp_path / "bad.jpg"), "not an image, or a format Pillow cannot read"),
        BadImage(2, "input #2 (0 bytes)", "empty input (0 bytes)"),
    ]
    assert [i for i, _ in result.ok] == [0, 3]
    assert result.failures[0].to_dict()["index"] == 1


def test_expand_sources_folder_glob_and_list(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("b.png", "a.JPG", "sub/c.webp", "readme.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.rsplit("/", 1)[-1] for p in expand_sources(tmp_path)] == ["a.JPG", "b.png", "c.webp"]
    assert [p.rsplit("/", 1)[-1] for p in expand_sources(str(tmp_path / "*.png"))] == ["b.png"]
    assert expand_sources(["x", "y"]) == ["x", "y"]
