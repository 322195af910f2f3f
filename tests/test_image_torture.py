"""The loader contract on a torture corpus made in code.

Every file either loads as 8-bit RGB or raises ImageLoadError naming the file, a reason and a kind
from FAILURE_KINDS; batches never raise; failures keep no pixels alive. The corpus: every mode
Pillow can write x every format that can hold it, truncations at several offsets, flipped bytes,
lying extensions, huge declared sizes, animated and multi-frame files, alpha edge cases, 1x1 and
1x20000.
"""

from __future__ import annotations

import gc
import io
import shutil
import struct
import warnings

import numpy as np
import pytest
from PIL import Image

from vitdream.errors import ImageLoadError
from vitdream.image_failures import FAILURE_KINDS
from vitdream.images import load_image, load_images

# the corpus is broken on purpose: Pillow's own warnings about it ("Truncated File Read", "Corrupt EXIF ...", IM deprecated) are expected
pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")]

MODES = ["1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV",
         "I", "I;16", "I;16L", "I;16B", "I;16N", "F"]
SIZE = (13, 9)
# Pillow writes these but cannot read them back (or needs a tool this machine may lack).
KNOWN_UNREADABLE = {
    ("EPS", "needs-codec"),  # Ghostscript
    ("PDF", "not-image"),  # save-only
    ("PALM", "not-image"),  # save-only
    ("ICNS", "corrupt"),  # Pillow's own palette ICNS does not read back (Pillow 13)
}
LOSSLESS_RGB = {"PNG", "BMP", "DIB", "TIFF", "TGA", "PPM", "QOI", "SGI", "IM", "PCX", "WEBP_LOSSLESS", "ICO", "DDS"}


def _sample(mode: str, rng: np.random.Generator) -> Image.Image:
    arr = rng.integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
    base = Image.fromarray(arr).convert("RGBA" if mode in ("LA", "La", "PA", "RGBA", "RGBa") else "RGB")
    try:
        return base.convert(mode)
    except ValueError:
        return Image.new(mode, SIZE)


@pytest.fixture(scope="module")
def corpus() -> dict[tuple[str, str], tuple[bytes, Image.Image]]:
    """(format, mode) -> (file bytes, the image that was saved), for every pair Pillow can write."""
    Image.init()
    rng = np.random.default_rng(0)
    out = {}
    for fmt in sorted(Image.SAVE):
        for mode in MODES:
            image = _sample(mode, rng)
            buf = io.BytesIO()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    image.save(buf, format=fmt)
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                continue  # this format cannot hold this mode
            out[(fmt, mode)] = (buf.getvalue(), image)
    assert len(out) > 150 and len({fmt for fmt, _ in out}) >= 20
    return out


def _assert_contract(result, names):
    """Every input loaded as RGB or failed with its own name, a reason and a known kind."""
    assert len(result.images) == len(names)
    failed = {bad.index: bad for bad in result.failures}
    for i, image in enumerate(result.images):
        if i in failed:
            bad = failed[i]
            assert image is None and bad.source == names[i] and bad.reason and bad.kind in FAILURE_KINDS, bad
        else:
            assert image.mode == "RGB" and np.asarray(image).dtype == np.uint8 and min(image.size) >= 1


def test_every_mode_in_every_format_loads_or_fails_for_a_known_reason(corpus, tmp_path):
    # written with a lying extension (.png for everything): the loader goes by content
    paths = []
    for i, (fmt, mode) in enumerate(corpus):
        path = tmp_path / f"{i:03d}_{fmt}_{mode.replace(';', '')}.png"
        path.write_bytes(corpus[(fmt, mode)][0])
        paths.append(str(path))
    result = load_images(paths)
    _assert_contract(result, paths)
    keys = list(corpus)
    assert {(keys[b.index][0], b.kind) for b in result.failures} <= KNOWN_UNREADABLE
    assert len(result.failures) <= 13  # 3 EPS (no Ghostscript), 7 PDF, 2 PALM, 1 ICNS
    for (fmt, mode), image in zip(keys, result.images):
        if image is None:
            continue
        assert image.size == SIZE or fmt in ("ICNS", "ICO", "SPIDER"), (fmt, mode, image.size)
        if mode == "RGB" and fmt in LOSSLESS_RGB:  # exact pixels where the format keeps them
            np.testing.assert_array_equal(np.asarray(image), np.asarray(corpus[(fmt, mode)][1]), err_msg=fmt)


def test_truncated_and_bit_flipped_files_never_escape_the_contract(corpus, tmp_path):
    rng = np.random.default_rng(1)
    names, blobs, cuts = [], [], []
    for (fmt, mode), (data, _) in corpus.items():
        for frac in (0.05, 0.5, 0.9):
            blobs.append(data[: max(1, int(len(data) * frac))])
            cuts.append((fmt, frac))
        for _ in range(3):
            damaged = bytearray(data)
            for pos in rng.integers(0, len(damaged), 6):
                damaged[pos] ^= int(rng.integers(1, 256))
            blobs.append(bytes(damaged))
            cuts.append((fmt, "flip"))
    for i, blob in enumerate(blobs):
        path = tmp_path / f"{i:04d}.jpg"  # lying extension again
        path.write_bytes(blob)
        names.append(str(path))
    result = load_images(names)
    _assert_contract(result, names)
    kinds = {b.kind for b in result.failures}
    assert {"truncated", "corrupt"} <= kinds
    half_cut = [b for b in result.failures if cuts[b.index][1] == 0.5 and cuts[b.index][0] in ("PNG", "JPEG", "TIFF", "BMP", "TGA")]
    assert half_cut and all(b.kind in ("truncated", "corrupt") for b in half_cut), [b for b in half_cut if b.kind not in ("truncated", "corrupt")]


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        import zlib

        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


def _bmp_header(width: int, height: int) -> bytes:
    return b"BM" + struct.pack("<IHHI", 54, 0, 0, 54) + struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 0, 0, 0, 0)


def _gif_header(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0) + b",\0\0\0\0" + struct.pack("<HH", width, height) + b"\0\x02\x02L\x01\0;"


@pytest.mark.parametrize("make", [_png_header, _bmp_header, _gif_header])
def test_huge_declared_sizes_are_refused_as_bombs(make):
    with pytest.raises(ImageLoadError, match="decompression bomb refused") as info:
        load_image(make(50_000, 50_000))
    assert info.value.kind == "bomb"


def test_1x1_and_1x20000_and_20000x1(tmp_path):
    for fmt in ("PNG", "JPEG", "GIF", "TIFF", "WEBP", "BMP"):
        for size in ((1, 1), (1, 20000), (20000, 1)):
            if fmt == "WEBP" and max(size) > 16383:
                continue  # WebP's own limit
            buf = io.BytesIO()
            Image.new("RGB", size, (10, 200, 30)).save(buf, format=fmt)
            out = load_image(buf.getvalue())
            assert out.size == size and out.mode == "RGB", (fmt, size)


def _frames(colours, mode="RGB"):
    return [Image.new(mode, (8, 6), c) for c in colours]


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP", "TIFF", "MPO"])
def test_animated_and_multi_page_files_give_their_first_frame(fmt):
    buf = io.BytesIO()
    first, *rest = _frames([(250, 0, 0), (0, 0, 250), (0, 250, 0)])
    first.save(buf, format=fmt, save_all=True, append_images=rest, **({"lossless": True} if fmt == "WEBP" else {}))
    with Image.open(io.BytesIO(buf.getvalue())) as check:
        assert check.n_frames == 3
    red = np.asarray(load_image(buf.getvalue())).astype(int)[3, 4]
    assert red[0] > 200 and red[1] < 50 and red[2] < 50, (fmt, red)


def test_ico_gives_its_largest_size():
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (0, 0, 255)).save(buf, format="ICO", sizes=[(16, 16), (32, 32), (64, 64)])
    assert load_image(buf.getvalue()).size == (64, 64)


def _psd(composite: np.ndarray, layers: list[np.ndarray]) -> bytes:
    """A minimal RGB PSD: a composite image plus layers (Pillow numbers them 1..n, not from 0)."""
    h, w, _ = composite.shape
    out = b"8BPS" + struct.pack(">H6sHIIHH", 1, b"\0" * 6, 3, h, w, 8, 3) + struct.pack(">II", 0, 0)
    records, channels = b"", b""
    for layer in layers:
        records += struct.pack(">iiiiH", 0, 0, h, w, 3) + b"".join(struct.pack(">hI", c, 2 + h * w) for c in range(3))
        extra = struct.pack(">II", 0, 0) + b"\x03abc"
        records += b"8BIMnorm" + bytes([255, 0, 0, 0]) + struct.pack(">I", len(extra)) + extra
        channels += b"".join(struct.pack(">H", 0) + layer[..., c].tobytes() for c in range(3))
    info = struct.pack(">h", len(layers)) + records + channels
    info += b"\0" * (len(info) % 2)
    section = struct.pack(">I", len(info)) + info + struct.pack(">I", 0)
    return out + struct.pack(">I", len(section)) + section + struct.pack(">H", 0) + b"".join(composite[..., c].tobytes() for c in range(3))


def test_psd_gives_its_composite_although_its_frames_start_at_1():
    composite, green, blue = (np.zeros((4, 6, 3), np.uint8) for _ in range(3))
    composite[..., 0], green[..., 1], blue[..., 2] = 200, 200, 200
    data = _psd(composite, [green, blue])
    with Image.open(io.BytesIO(data)) as check:
        assert check.format == "PSD" and check.n_frames == 2 and check.tell() == 1
    np.testing.assert_array_equal(np.asarray(load_image(data)), composite)


def _rgba_png(alpha: np.ndarray, mode: str = "RGBA") -> bytes:
    rgb = np.zeros(alpha.shape + (3,), np.uint8)
    rgb[..., 2] = 180  # blue picture
    image = Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    buf = io.BytesIO()
    (image.convert(mode) if mode != "RGBA" else image).save(buf, format="PNG" if mode != "RGBa" else "TIFF")
    return buf.getvalue()


def test_alpha_rules():
    zero, half, full = (np.full((4, 4), v, np.uint8) for v in (0, 128, 255))
    # alpha 0 everywhere: an unused channel, the colours are kept (not a white page)
    assert tuple(np.asarray(load_image(_rgba_png(zero)))[1, 1]) == (0, 0, 180)
    assert tuple(np.asarray(load_image(_rgba_png(full)))[1, 1]) == (0, 0, 180)
    assert tuple(np.asarray(load_image(_rgba_png(half)))[1, 1]) == (127, 127, 217)  # on white
    mixed = zero.copy()
    mixed[0, 0] = 255  # some pixels opaque: composite on white, transparent ones are white
    out = np.asarray(load_image(_rgba_png(mixed)))
    assert tuple(out[0, 0]) == (0, 0, 180) and tuple(out[2, 2]) == (255, 255, 255)
    la = Image.fromarray(np.dstack([np.full((4, 4), 90, np.uint8), zero]), "LA")
    assert tuple(np.asarray(load_image(la))[0, 0]) == (90, 90, 90)
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([0, 120, 0] + [0] * 765)
    buf = io.BytesIO()
    palette.save(buf, format="PNG", transparency=0)  # every pixel transparent
    assert tuple(np.asarray(load_image(buf.getvalue()))[0, 0]) == (0, 120, 0)


def _save(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "PPM"])
def test_16_bit_rule_is_by_bit_depth_not_data_range(fmt):
    # two exposures of one scene: the darker one stays darker by the same factor
    scene = np.array([[0, 40, 80, 120]], np.int64)
    outs = []
    for gain in (1, 500):  # a dim exposure whose values all fit in 8 bits, and a bright one
        data = _save(Image.fromarray((scene * gain).astype(np.uint16)), fmt)
        outs.append(np.asarray(load_image(data))[..., 0].astype(int))
        np.testing.assert_array_equal(outs[-1], np.round(scene * gain * 255 / 65535).astype(int))
    assert outs[0].max() == 0 and outs[1].max() == 233  # 120 and 60000 of 65535


def test_float_and_32_bit_images_by_mode():
    floats = np.array([[0.0, 0.25, 1.0, 7.0, -1.0]], np.float32)
    out = np.asarray(load_image(_save(Image.fromarray(floats, "F"), "TIFF")))[..., 0]
    np.testing.assert_array_equal(out, [[0, 64, 255, 255, 0]])
    ints = np.array([[0, 2**16, 2**31 - 1]], np.int32)
    out = np.asarray(load_image(_save(Image.fromarray(ints, "I"), "TIFF")))[..., 0]
    np.testing.assert_array_equal(out, np.round(ints.astype(np.int64) * 255 / (2**32 - 1)))


def test_missing_codec_is_not_called_corrupt(monkeypatch):
    jp2 = _save(Image.new("RGB", (8, 8), (1, 2, 3)), "JPEG2000")
    monkeypatch.delattr(Image.core, "jpeg2k_decoder")  # a Pillow built without OpenJPEG
    with pytest.raises(ImageLoadError, match=r"needs the jpeg2k codec") as info:
        load_image(jp2, name="scan.jp2")
    assert info.value.kind == "needs-codec" and str(info.value).startswith("scan.jp2: ")
    heic = b"\0\0\0\x18ftypheic" + b"\0" * 40
    with pytest.raises(ImageLoadError, match="pillow-heif") as info:
        load_image(heic)
    assert info.value.kind == "needs-codec"


def test_avif_without_its_codec_says_so(monkeypatch):
    from PIL import AvifImagePlugin

    avif = _save(Image.new("RGB", (8, 8), (1, 2, 3)), "AVIF")
    monkeypatch.setattr(AvifImagePlugin, "SUPPORTED", False)  # a Pillow without libavif
    with pytest.raises(ImageLoadError, match="needs a codec this Pillow lacks.*AVIF support not installed") as info:
        load_image(avif, name="phone.avif")
    assert info.value.kind == "needs-codec"


def test_threaded_loading_leaves_the_warning_filters_alone(tmp_path):
    import warnings

    from vitdream.base.batching import iter_batches

    paths = []
    for i in range(40):
        path = tmp_path / f"{i}.png"
        path.write_bytes(_save(Image.new("RGB", (8, 8), (i, 0, 0)), "PNG") if i % 2 else b"not an image")
        paths.append(str(path))
    before = list(warnings.filters)
    failures: list = []
    batches = list(iter_batches(paths, lambda im: np.asarray(im), 4, failures, workers=4))
    assert warnings.filters == before
    assert sum(len(b.indices) for b in batches) == 20 and {f.kind for f in failures} == {"not-image"}


def test_eps_needs_ghostscript_unless_installed():
    eps = _save(Image.new("RGB", (8, 8), (1, 2, 3)), "EPS")
    if shutil.which("gs"):
        assert load_image(eps).mode == "RGB"
    else:
        with pytest.raises(ImageLoadError, match="needs Ghostscript") as info:
            load_image(eps, name="figure.eps")
        assert info.value.kind == "needs-codec"


def test_unsupported_variant_names_the_file_and_batches_go_on(tmp_path):
    dds = bytearray(_save(Image.new("RGB", (8, 8)), "DDS"))
    dds[80:84] = struct.pack("<I", 0x4)  # DDPF_FOURCC ...
    dds[84:88] = b"ZZZZ"  # ... of a compression nobody implements: Pillow raises NotImplementedError
    path = tmp_path / "texture.dds"
    path.write_bytes(bytes(dds))
    with pytest.raises(ImageLoadError, match=r"texture\.dds: unsupported DDS variant") as info:
        load_image(path)
    assert info.value.kind == "unsupported"
    good = tmp_path / "good.png"
    Image.new("RGB", (4, 4)).save(good)
    result = load_images([path, good])
    assert result.images[0] is None and result.images[1] is not None
    assert [(b.index, b.kind) for b in result.failures] == [(0, "unsupported")]


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096 / 2**20


def test_failures_keep_no_decoded_pixels_alive():
    rng = np.random.default_rng(0)
    data = _save(Image.fromarray(rng.integers(0, 256, (900, 1600, 3), dtype=np.uint8)), "PNG")  # 4.3 MB decoded
    cut = data[: int(len(data) * 0.95)]
    load_images([cut])  # warm up allocator and caches
    gc.collect()
    images_before = sum(isinstance(o, Image.Image) for o in gc.get_objects())
    rss_before = _rss_mb()
    kept = []
    for _ in range(20):  # keep the errors, as a caller collecting them would
        try:
            load_image(cut)
        except ImageLoadError as exc:
            kept.append(exc)
    kept.append(load_images([cut] * 20))
    gc.collect()
    assert all(isinstance(e, ImageLoadError) and e.kind == "truncated" for e in kept[:20])
    assert sum(isinstance(o, Image.Image) for o in gc.get_objects()) == images_before
    assert _rss_mb() - rss_before < 30  # 40 kept failures of a 4.3 MB image held ~170 MB before
