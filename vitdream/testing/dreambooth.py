"""A tiny DreamBooth setup for tests and demos: a tiny SD base on disk and a few instance images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TINY_SD_SIZES: dict[str, Any] = dict(unet_channels=(8, 16), vae_channels=(8, 16), sample_size=8, text_hidden=16, max_length=12)


def make_tiny_dreambooth(root: str | Path, num_instance: int = 3) -> dict[str, str]:
    """Write ``root/base`` (a tiny SD pipeline, 16x16 native) and ``root/instance`` (coloured images);
    return the matching ``base``/``instance_images`` options."""
    from PIL import Image, ImageDraw

    from vitdream.testing.sd import make_tiny_sd

    root = Path(root)
    base = make_tiny_sd(root / "base", **TINY_SD_SIZES)
    instance = root / "instance"
    instance.mkdir(parents=True, exist_ok=True)
    colours = ["red", "green", "blue", "yellow", "white"]
    for i in range(num_instance):
        image = Image.new("RGB", (20, 24), colours[i % len(colours)])
        ImageDraw.Draw(image).ellipse((4, 4, 14, 16), fill="black")
        image.save(instance / f"{i}.png")
    return {"base": str(base), "instance_images": str(instance)}
