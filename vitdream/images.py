"""Safe image loading: every image in vitdream goes through :func:`load_image`.

It returns an 8-bit RGB ``PIL.Image`` whatever came in -- a path, bytes, a PIL image or a NumPy
array -- or raises :class:`~vitdream.errors.ImageLoadError` naming the file, the reason and its
``kind`` (:data:`FAILURE_KINDS`: truncated, corrupt, unsupported variant, needs-codec, bomb...).
Nothing else escapes for a bad file, and a failure keeps no decoded pixels alive. Batches go
through :func:`load_images`, which never raises: each bad input becomes a
``BadImage(index, source, reason, kind)`` in ``failures``.

The rules, one per case:

- the image as Pillow opens it: the first frame of an animation or multi-page file, the
  composite of a PSD, the largest size of an ICO/ICNS; a PIL image passed in: its current frame;
- EXIF orientation applied (a damaged EXIF block is ignored, not fatal);
- high bit depth by the sample's bit depth, never by the data's range: ``v * 255 / (2**bits - 1)``,
  with ``bits`` = 16 for ``I;16*`` modes (and the 16-bit PNG/PPM/PGM data Pillow keeps in mode
  ``I``), 32 for other ``I`` images, or fewer when a TIFF declares it (``BitsPerSample`` = 12:
  4095 is white); float (``F``) images: 0.0 is black, 1.0 white, clipped. So two exposures of one
  scene keep their relative brightness; a 12-bit camera frame stored as plain 16-bit looks dark;
- CMYK, YCbCr, HSV, LAB, 1-bit, palettes: converted to RGB;
- alpha is composited on white, except an alpha channel that is 0 everywhere: that is an unused
  channel (common in 32-bit BMPs and some TIFFs), so it is ignored and the colours are kept;
- Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``) is kept, its warning band too.

NumPy arrays: uint8 as is, uint16 by the 16-bit rule, bool as 0/255, other integers clipped to
0..255, floats as 0..1 when their maximum is at most 1 and as 0..255 otherwise (an array carries
no bit depth).
"""

from __future__ import annotations

import glob
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence, Union

from vitdream.errors import ImageLoadError
from vitdream.image_failures import FAILURE_KINDS, classify

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from PIL import Image

ImageSource = Union[str, os.PathLike, bytes, "Image.Image", "np.ndarray"]

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".jfif"}
)


def image_extensions() -> frozenset[str]:
    """Every extension of a format this Pillow can open (tga, ico, jp2, avif, pbm, mpo, dds, psd...),
    plus :data:`IMAGE_EXTENSIONS`. Folders are listed with these; an index decides by content."""
    from PIL import Image

    Image.init()
    readable = set(Image.OPEN) - {"MPEG", "BUFR", "GRIB", "HDF5"}  # stubs: identified, never decoded
    return IMAGE_EXTENSIONS | {ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in readable}


@dataclass(frozen=True)
class BadImage:
    """One input that could not be loaded: its position in the batch, what it was, and why."""

    index: int
    source: str
    reason: str
    kind: str = field(default="error", compare=False)  # one of FAILURE_KINDS (or "error")

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "source": self.source, "reason": self.reason, "kind": self.kind}


@dataclass
class LoadResult:
    """``images[i]`` is the RGB image of input ``i``, or ``None`` if it appears in ``failures``."""

    images: list[Any] = field(default_factory=list)
    failures: list[BadImage] = field(default_factory=list)

    @property
    def ok(self) -> list[tuple[int, Any]]:
        """(index, image) of every input that loaded."""
        return [(i, im) for i, im in enumerate(self.images) if im is not None]


def describe_source(source: Any, index: int | None = None) -> str:
    """A short name for an input, used in error messages."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    where = f"input #{index}" if index is not None else "input"
    kind = type(source).__name__
    shape = getattr(source, "shape", None)
    if shape is not None:
        return f"{where} ({kind} of shape {tuple(shape)}, dtype {source.dtype})"
    if isinstance(source, (bytes, bytearray)):
        return f"{where} ({len(source)} bytes)"
    return f"{where} ({kind})"


def load_image(source: ImageSource, name: str | None = None) -> "Image.Image":
    """Load one image as 8-bit RGB, or raise :class:`ImageLoadError` naming it and the reason."""
    from PIL import Image

    label = name or describe_source(source)
    if isinstance(source, Image.Image):
        return _checked(_to_rgb, source, label)
    if hasattr(source, "__array__") and not isinstance(source, (str, bytes, os.PathLike)):
        return _from_array(source, label)
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise ImageLoadError(label, "empty input (0 bytes)", "empty")
        return _open(io.BytesIO(source), label)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise ImageLoadError(label, "no such file", "missing")
        if path.is_dir():
            raise ImageLoadError(label, "is a directory, not an image file", "missing")
        try:
            if path.stat().st_size == 0:
                raise ImageLoadError(label, "empty file (0 bytes)", "empty")
            fh = open(path, "rb")
        except OSError as exc:
            reason = f"cannot read ({exc.strerror or exc})"
        else:
            with fh:
                return _open(fh, label)
        raise ImageLoadError(label, reason, "unreadable")
    raise ImageLoadError(
        label, f"unsupported input type {type(source).__name__} (expected a path, bytes, PIL image or array)", "bad-input"
    )


def load_images(sources: Iterable[ImageSource]) -> LoadResult:
    """Load many images; bad ones are reported in ``failures``, never raised."""
    result = LoadResult()
    for i, source in enumerate(sources):
        label = describe_source(source, i)
        try:
            result.images.append(load_image(source, name=label))
        except ImageLoadError as exc:
            result.images.append(None)
            result.failures.append(BadImage(i, exc.source, exc.reason, exc.kind))
        except Exception as exc:  # a bug, not a bad file; still never abort the batch
            result.images.append(None)
            result.failures.append(BadImage(i, label, f"unexpected {type(exc).__name__}: {exc}", "error"))
    return result


def expand_sources(spec: str | os.PathLike | Sequence[Any]) -> list[Any]:
    """A folder (recursive, files with an :func:`image_extensions` suffix, sorted), a glob pattern,
    or a list as is."""
    if isinstance(spec, (str, os.PathLike)):
        path = Path(spec)
        if path.is_dir():
            extensions = image_extensions()
            return sorted(str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in extensions)
        if any(ch in str(spec) for ch in "*?["):
            return sorted(p for p in glob.glob(str(spec), recursive=True) if os.path.isfile(p))
        return [str(spec)]
    return list(spec)


def folder_files(folder: str | os.PathLike) -> list[str]:
    """Every regular file under ``folder`` (recursive, sorted), whatever its extension; hidden
    files and folders (``.git``, ``.DS_Store``...) left out. For callers that decide by content."""
    out = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        out.extend(os.path.join(root, f) for f in files if not f.startswith(".") and os.path.isfile(os.path.join(root, f)))
    return sorted(out)


# -- internals --------------------------------------------------------------------------------
def _open(fh: Any, label: str) -> "Image.Image":
    image, failure = _decode(fh)
    if failure is not None:  # raised here, outside any except block: no traceback keeps pixels alive
        raise ImageLoadError(label, failure[1], failure[0])
    return image


def _decode(fh: Any) -> tuple[Any, tuple[str, str] | None]:
    """(RGB image, None) or (None, (kind, reason)). Decodes the image *as opened*: the first frame
    of an animation or a multi-page file, the composite of a PSD, the largest size of an ICO."""
    from PIL import Image

    head = fh.read(32)
    fh.seek(0)
    image = None
    failure = None
    try:  # no warnings.catch_warnings here: it swaps process-wide state, and decoding runs in threads
        image = Image.open(fh)
        limit = Image.MAX_IMAGE_PIXELS
        if limit and image.size[0] * image.size[1] > limit:  # Pillow only warns between 1x and 2x
            raise Image.DecompressionBombError(f"Image size ({image.size[0] * image.size[1]} pixels) exceeds limit of {limit} pixels")
        rgb = _to_rgb(image)
    except Exception as exc:  # every decoder error, classified; the exception dies with this block
        failure = classify(exc, getattr(image, "format", None), head)
    if failure is not None:
        if image is not None:
            image.close()  # drop the partly decoded pixels now
        return None, failure
    return rgb, None


def _checked(convert: Any, image: "Image.Image", label: str) -> "Image.Image":
    failure = None
    try:
        return convert(image)
    except Exception as exc:
        failure = classify(exc, image.format)
    raise ImageLoadError(label, f"cannot convert {image.mode} image to RGB: {failure[1]}", failure[0])


def sample_bits(image: "Image.Image") -> int:
    """Bits per sample of a single-channel high-bit-depth image, by its mode (``I;16*``: 16,
    ``I``: 32) unless its file format declares fewer (TIFF ``BitsPerSample``; PNG/PPM/PGM keep
    16-bit data in mode ``I``)."""
    if image.mode.startswith("I;16"):
        bits = 16
    elif image.mode == "I":
        bits = 16 if image.format in ("PNG", "PPM") else 32
    else:
        return 8
    tags = getattr(image, "tag_v2", None)
    declared = tags.get(258) if tags is not None else None
    if isinstance(declared, (tuple, list)):
        declared = declared[0] if declared else None
    if isinstance(declared, int) and 8 < declared < bits:
        bits = declared
    return bits


def _to_rgb(image: "Image.Image") -> "Image.Image":
    """The conversion rules (module docstring); raises whatever Pillow raises."""
    import numpy as np
    from PIL import Image, ImageOps

    image.load()
    try:
        if image.getexif().get(0x0112, 1) not in (1, None):
            image = ImageOps.exif_transpose(image)
    except Exception:  # damaged EXIF: keep the pixels as stored rather than refuse the picture
        pass
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        arr = np.asarray(image)
        if image.mode == "F":
            scaled = arr.astype(np.float64) * 255.0  # float images: 0.0 black .. 1.0 white
        else:
            scaled = arr.astype(np.float64) * (255.0 / (2 ** sample_bits(image) - 1))
        image = Image.fromarray(np.clip(np.nan_to_num(scaled), 0, 255).round().astype(np.uint8), mode="L")
    elif image.mode == "LAB":
        from PIL import ImageCms

        image = ImageCms.applyTransform(
            image, ImageCms.buildTransform(ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB")
        )
    if image.mode == "P" and image.has_transparency_data:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        if rgba.getchannel("A").getextrema() == (0, 0):
            image = rgba.convert("RGB")  # alpha 0 everywhere: an unused channel (e.g. 32-bit BMP), ignored
        else:
            image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    if image.mode != "RGB":
        image = image.convert("RGB")
    image.load()
    return image


def _from_array(array: Any, label: str) -> "Image.Image":
    import numpy as np
    from PIL import Image

    arr = np.asarray(array)
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # CHW -> HWC
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)) or 0 in arr.shape:
        raise ImageLoadError(label, f"array of shape {arr.shape} is not an image (expected HxW, HxWx3 or HxWx4)", "bad-input")
    if arr.dtype == np.uint8:
        pass
    elif arr.dtype == np.uint16:
        arr = (arr // 257).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ImageLoadError(label, "array contains NaN or infinite values", "bad-input")
        scale = 255.0 if arr.max() <= 1.0 else 1.0
        arr = np.clip(arr * scale, 0, 255).round().astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool:
        arr = np.clip(arr, 0, 255).astype(np.uint8) if arr.dtype != bool else arr.astype(np.uint8) * 255
    else:
        raise ImageLoadError(label, f"array dtype {arr.dtype} is not an image type", "bad-input")
    return _checked(_to_rgb, Image.fromarray(arr), label)
