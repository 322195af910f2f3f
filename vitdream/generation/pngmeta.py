"""Generation settings in PNG metadata: written atomically, read back to reproduce an image.

Two text chunks: ``vitdream`` (JSON with every setting, used by ``reproduce``) and
``parameters`` (the AUTOMATIC1111 web UI's human-readable line, for other tools).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from vitdream.atomic import atomic_open
from vitdream.errors import ImageLoadError

KEY = "vitdream"
FORMAT_VERSION = 1


def save_image(image: Any, path: str | os.PathLike, settings: dict[str, Any] | None = None) -> Path:
    """Save ``image`` as PNG with its settings (``settings`` or those attached by ``generate``), atomically."""
    from PIL.PngImagePlugin import PngInfo

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: settings are kept in PNG metadata; save as .png")
    settings = settings if settings is not None else image_settings(image)
    info = PngInfo()
    if settings:
        info.add_text(KEY, json.dumps({"format": FORMAT_VERSION, **settings}, sort_keys=True))
        parameters = image.info.get("parameters") if hasattr(image, "info") else None
        if parameters:
            info.add_text("parameters", parameters)
    with atomic_open(path) as fh:
        image.save(fh, format="PNG", pnginfo=info)
    return path


def image_settings(image: Any) -> dict[str, Any]:
    """The settings attached to an image made by ``generate`` (or read from its PNG); {} if none."""
    raw = getattr(image, "info", {}).get(KEY)
    if not raw:
        return {}
    return json.loads(raw) if isinstance(raw, str) else dict(raw)


def read_settings(source: Any) -> dict[str, Any]:
    """The generation settings stored in a PNG file (path) or PIL image; a clear error if there are none."""
    if hasattr(source, "info"):
        settings, name = image_settings(source), "image"
    else:
        from PIL import Image

        name = str(source)
        try:
            with Image.open(source) as im:
                settings = image_settings(im)
        except (OSError, ValueError) as exc:
            raise ImageLoadError(name, f"cannot read ({exc})") from None
    if not settings:
        raise ImageLoadError(name, "no vitdream generation settings in this image's metadata")
    version = settings.pop("format", FORMAT_VERSION)
    if version > FORMAT_VERSION:
        raise ImageLoadError(name, f"settings format {version} is newer than this vitdream understands")
    return settings
