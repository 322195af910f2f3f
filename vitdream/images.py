"""Safe image loading: every image in vitdream goes through :func:`load_image`.

It returns an 8-bit RGB ``PIL.Image`` whatever came in -- a path, bytes, a PIL image or a NumPy
array; CMYK, 16-bit, palette with transparency, grayscale, RGBA or animated -- with EXIF
orientation applied. Bad input raises :class:`~vitdream.errors.ImageLoadError` naming the file
and the reason. Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``) is kept.

Batches go through :func:`load_images`, which never raises for a bad image: it returns a
:class:`LoadResult` whose ``failures`` lists each bad input as ``BadImage(index, source, reason)``.
"""

from __future__ import annotations

import glob
import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence, Union

from vitdream.errors import ImageLoadError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from PIL import Image

ImageSource = Union[str, os.PathLike, bytes, "Image.Image", "np.ndarray"]

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".jfif"}
)


@dataclass(frozen=True)
class BadImage:
    """One input that could not be loaded: its position in the batch, what it was, and why."""

    index: int
    source: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "source": self.source, "reason": self.reason}


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
        return _to_rgb(source, label)
    if hasattr(source, "__array__") and not isinstance(source, (str, bytes, os.PathLike)):
        return _from_array(source, label)
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise ImageLoadError(label, "empty input (0 bytes)")
        return _open(io.BytesIO(source), label)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise ImageLoadError(label, "no such file")
        if path.is_dir():
            raise ImageLoadError(label, "is a directory, not an image file")
        if path.stat().st_size == 0:
            raise ImageLoadError(label, "empty file (0 bytes)")
        with open(path, "rb") as fh:
            return _open(fh, label)
    raise ImageLoadError(label, f"unsupported input type {type(source).__name__} (expected a path, bytes, PIL image or array)")


def load_images(sources: Iterable[ImageSource]) -> LoadResult:
    """Load many images; bad ones are reported in ``failures``, never raised."""
    result = LoadResult()
    for i, source in enumerate(sources):
        try:
            result.images.append(load_image(source, name=describe_source(source, i)))
        except ImageLoadError as exc:
            result.images.append(None)
            result.failures.append(BadImage(i, exc.source, exc.reason))
    return result


def expand_sources(spec: str | os.PathLike | Sequence[Any]) -> list[Any]:
    """A folder (recursive, image extensions only, sorted), a glob pattern, or a list as is."""
    if isinstance(spec, (str, os.PathLike)):
        path = Path(spec)
        if path.is_dir():
            return sorted(str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if any(ch in str(spec) for ch in "*?["):
            return sorted(p for p in glob.glob(str(spec), recursive=True) if os.path.isfile(p))
        return [str(spec)]
    return list(spec)


# -- internals --------------------------------------------------------------------------------
def _open(fh: Any, label: str) -> "Image.Image":
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(fh)
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(
            label, f"decompression bomb refused: {exc} (raise PIL.Image.MAX_IMAGE_PIXELS only for files you trust)"
        ) from None
    except UnidentifiedImageError:
        raise ImageLoadError(label, "not an image, or a format Pillow cannot read") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(label, f"truncated or corrupt image ({exc})") from None
    return _to_rgb(image, label)


def _to_rgb(image: "Image.Image", label: str) -> "Image.Image":
    import numpy as np
    from PIL import Image, ImageOps

    try:
        if getattr(image, "n_frames", 1) > 1:
            image.seek(0)  # animated: first frame
        image = ImageOps.exif_transpose(image)
        if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            arr = np.asarray(image)
            if image.mode == "F":
                top = float(arr.max()) if arr.size and arr.max() > 1.0 else 1.0
                arr = np.clip(arr / top * 255.0, 0, 255)
            else:
                arr = np.clip(arr.astype(np.float64) / 257.0 if arr.max() > 255 else arr, 0, 255)
            image = Image.fromarray(arr.astype(np.uint8), mode="L")
        if image.mode == "P" and "transparency" in image.info:
            image = image.convert("RGBA")
        if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            image = Image.alpha_composite(background, rgba)
        if image.mode != "RGB":
            image = image.convert("RGB")
        image.load()
        return image
    except ImageLoadError:
        raise
    except Exception as exc:
        raise ImageLoadError(label, f"cannot convert {image.mode} image to RGB ({exc})") from None


def _from_array(array: Any, label: str) -> "Image.Image":
    import numpy as np
    from PIL import Image

    arr = np.asarray(array)
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # CHW -> HWC
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)) or 0 in arr.shape:
        raise ImageLoadError(label, f"array of shape {arr.shape} is not an image (expected HxW, HxWx3 or HxWx4)")
    if arr.dtype == np.uint8:
        pass
    elif arr.dtype == np.uint16:
        arr = (arr // 257).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ImageLoadError(label, "array contains NaN or infinite values")
        scale = 255.0 if arr.max() <= 1.0 else 1.0
        arr = np.clip(arr * scale, 0, 255).round().astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool:
        arr = np.clip(arr, 0, 255).astype(np.uint8) if arr.dtype != bool else arr.astype(np.uint8) * 255
    else:
        raise ImageLoadError(label, f"array dtype {arr.dtype} is not an image type")
    return _to_rgb(Image.fromarray(arr), label)
