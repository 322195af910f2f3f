"""Reading a shapes-world picture from its pixels alone: background, colours, pattern.

A judge that uses no model, so it can score any model's pictures (generated or real). The world's
backgrounds are plain and its patterns are horizontal bands, so:

- the **background** is the palette colour nearest to the median of the image's border;
- the **foreground** is every pixel farther than ``tolerance`` (RGB distance) from that colour;
- the foreground's rows are read in three bands (its top 28%, middle 20%, bottom 28%); each band's
  colour is the shape colour most of its pixels are nearest to;
- the **pattern** follows: one colour -> ``plain``; top and bottom differ -> ``two-tone``; top and
  bottom equal, middle different -> ``striped``.

Only numpy and PIL; no torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vitdream.datasets.shapes import COLOURS, PALETTE


@dataclass(frozen=True)
class Look:
    """What a picture shows, read from its pixels (None where nothing could be read)."""

    background: str
    pattern: str | None = None
    colour: str | None = None  # the top colour (the class label's colour)
    colour2: str | None = None  # the second colour of a two-tone or striped shape
    coverage: float = 0.0  # share of pixels that are foreground

    def matches(self, pattern: str | None = None, colour: str | None = None, colour2: str | None = None,
                background: str | None = None) -> bool:
        """Whether every attribute given equals what was read."""
        wanted = {"pattern": pattern, "colour": colour, "colour2": colour2, "background": background}
        return all(value is None or getattr(self, key) == value for key, value in wanted.items())


def _array(image: Any) -> np.ndarray:
    from PIL import Image

    return np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.float64)


def border_pixels(array: np.ndarray, border: int | None = None) -> np.ndarray:
    """The pixels of the image's frame, ``border`` wide (default: 1/16 of the side), as (n, 3)."""
    h, w = array.shape[:2]
    b = border or max(1, min(h, w) // 16)
    return np.concatenate([array[:b].reshape(-1, 3), array[-b:].reshape(-1, 3),
                           array[:, :b].reshape(-1, 3), array[:, -b:].reshape(-1, 3)])


def nearest_colour(rgb: Sequence[float], palette: Mapping[str, Sequence[int]] | None = None) -> str:
    """The name of the palette colour nearest to ``rgb``."""
    palette = PALETTE if palette is None else palette
    names = list(palette)
    colours = np.asarray([palette[n] for n in names], dtype=np.float64)
    return names[int(np.argmin(((colours - np.asarray(rgb, dtype=np.float64)) ** 2).sum(axis=1)))]


def background_of(image: Any, palette: Mapping[str, Sequence[int]] | None = None, border: int | None = None) -> str:
    """The name of the palette colour nearest to the median colour of the image's border.

    Shapes of the world never cover the whole border, so on shapes-world images this is the background.
    """
    return nearest_colour(np.median(border_pixels(_array(image), border), axis=0), palette)


def foreground_mask(image: Any, tolerance: float = 80.0, background: str | None = None) -> np.ndarray:
    """Boolean ``(height, width)``: the pixels farther than ``tolerance`` from the background colour."""
    array = _array(image)
    background = background or background_of(array)
    return np.linalg.norm(array - np.asarray(PALETTE[background], dtype=np.float64), axis=-1) > tolerance


def read_look(image: Any, tolerance: float = 80.0, min_coverage: float = 0.04) -> Look:
    """Background, pattern and colours of a shapes-world picture (see the module docstring)."""
    array = _array(image)
    background = background_of(array)
    foreground = foreground_mask(array, tolerance, background)
    coverage = float(foreground.mean())
    if coverage < min_coverage:
        return Look(background, coverage=coverage)
    rows = np.nonzero(foreground.any(axis=1))[0]
    top, bottom = rows[0], rows[-1] + 1
    height = bottom - top
    shape_colours = [c for c in COLOURS if c != background]
    ref = np.asarray([PALETTE[c] for c in shape_colours], dtype=np.float64)
    nearest = np.argmin(((array[:, :, None, :] - ref[None, None]) ** 2).sum(axis=-1), axis=-1)

    def band(lo: float, hi: float) -> str | None:
        r0, r1 = int(round(top + lo * height)), max(int(round(top + hi * height)), int(round(top + lo * height)) + 1)
        votes = nearest[r0:r1][foreground[r0:r1]]
        return shape_colours[int(np.bincount(votes, minlength=len(shape_colours)).argmax())] if votes.size else None

    upper, middle, lower = band(0.0, 0.28), band(0.40, 0.60), band(0.72, 1.0)
    if upper is None or lower is None:
        return Look(background, coverage=coverage)
    if upper != lower:
        return Look(background, "two-tone", upper, lower, coverage)
    if middle is not None and middle != upper:
        return Look(background, "striped", upper, middle, coverage)
    return Look(background, "plain", upper, None, coverage)


def parse_caption(text: str) -> dict[str, str]:
    """The attributes a world caption names (the inverse of :func:`vitdream.datasets.shapes.caption`):
    any of ``shape``, ``colour``, ``colour2``, ``pattern``, ``background``. Words outside the world's
    grammar (an identifier such as ``sks``) are ignored.

    >>> parse_caption("a photo of a red and green two-tone star on a blue background")["colour2"]
    'green'
    """
    import re

    from vitdream.datasets.shapes import BACKGROUNDS, PATTERNS, SHAPES

    found: dict[str, str] = {}
    text = text.lower()
    context = re.search(r"\bon an? (\w+) background\b", text)
    if context and context.group(1) in BACKGROUNDS:
        found["background"] = context.group(1)
        text = text[:context.start()]
    words = re.findall(r"[a-z]+(?:-[a-z]+)?", text)
    shapes = [w for w in words if w in SHAPES]
    if shapes:
        found["shape"] = shapes[-1]
    patterns = [w for w in words if w in PATTERNS]
    if patterns:
        found["pattern"] = patterns[-1]
    colours = [w for w in words if w in COLOURS]
    if colours:
        found["colour"] = colours[0]
        if len(colours) > 1:
            found["colour2"] = colours[1]
    return found
