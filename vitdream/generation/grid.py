"""Lay generated images out in one labelled row (guidance sweeps)."""

from __future__ import annotations

from typing import Any, Sequence


def image_row(images: Sequence[Any], labels: Sequence[str] | None = None, *, gap: int = 2, min_side: int = 64) -> Any:
    """One row of ``images`` (same size), each with its label in a strip underneath.

    Tiles smaller than ``min_side`` are enlarged by a whole factor (nearest neighbour) so labels fit.
    """
    from PIL import Image, ImageDraw, ImageFont

    if not images:
        raise ValueError("image_row: no images")
    factor = max(1, -(-min_side // min(images[0].size)))
    if factor > 1:
        images = [im.resize((im.width * factor, im.height * factor), Image.NEAREST) for im in images]
    w, h = images[0].size
    strip = 14 if labels else 0
    row = Image.new("RGB", (len(images) * w + (len(images) - 1) * gap, h + strip), "white")
    draw = ImageDraw.Draw(row)
    font = ImageFont.load_default()
    for i, image in enumerate(images):
        x = i * (w + gap)
        row.paste(image.convert("RGB"), (x, 0))
        if labels:
            draw.text((x + 1, h + 1), str(labels[i]), fill="black", font=font)
    return row


class ImageList(list):
    """A list of generated PIL images that Jupyter shows as a row of thumbnails captioned with their seeds."""

    def grid(self, labels: Sequence[str] | None = None) -> Any:
        """The images in one row (see :func:`image_row`)."""
        return image_row(self, labels)

    def _repr_html_(self) -> str:
        import base64
        import io
        import json

        cells = []
        for image in self:
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            data = base64.b64encode(buffer.getvalue()).decode("ascii")
            seed = json.loads(image.info.get("vitdream", "{}")).get("image_seed", "")
            cells.append(
                f"<figure style='display:inline-block;margin:2px;text-align:center'>"
                f"<img src='data:image/png;base64,{data}' style='width:{max(128, image.width)}px;"
                f"image-rendering:pixelated'/><figcaption style='font:11px monospace'>seed {seed}</figcaption></figure>"
            )
        return "<div>" + "".join(cells) + "</div>"
