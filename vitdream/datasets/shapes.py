"""The shapes world: a procedural, deterministic dataset of coloured shapes on coloured backgrounds.

Each item is one shape (``SHAPES``) of one colour (``COLOURS``) on a background (``BACKGROUNDS``,
never the shape's own colour), at a random position, scale and rotation. The class label is
``"{colour} {shape}"`` (``CLASSES``), so ``f"a photo of a {label}"`` is always a valid prompt for the
embedded mini Stable Diffusion. Same ``seed`` and index -> same pixels, on every machine.

Only PIL is imported here; torch is imported lazily by :meth:`ShapesDataset.as_tensors`.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from PIL import Image, ImageDraw

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")
COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow")
BACKGROUNDS: tuple[str, ...] = ("white", "black", "red", "green", "blue", "yellow")
CLASSES: tuple[str, ...] = tuple(f"{colour} {shape}" for colour in COLOURS for shape in SHAPES)

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 210, 40),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}

_SUPERSAMPLE = 4  # draw 4x larger, then downsample: anti-aliased edges
_RADIUS = (0.30, 0.44)  # circumradius as a fraction of the image side


@dataclass(frozen=True)
class ShapeSpec:
    """Everything that determines one image (and its caption)."""

    shape: str
    colour: str
    background: str
    center: tuple[float, float]  # in [0, 1] image coordinates
    radius: float  # fraction of the image side
    rotation: float  # degrees
    with_colour: bool  # caption names the colour
    with_context: bool  # caption names the background

    @property
    def label(self) -> str:
        return f"{self.colour} {self.shape}"

    @property
    def caption(self) -> str:
        return caption(self.shape, self.colour if self.with_colour else None,
                       self.background if self.with_context else None)


def caption(shape: str, colour: str | None = None, background: str | None = None) -> str:
    """``"a photo of a [colour] shape[ on a <background> background]"``."""
    subject = f"{colour} {shape}" if colour else shape
    text = f"a photo of a {subject}"
    return f"{text} on a {background} background" if background else text


def _polygon(shape: str, cx: float, cy: float, r: float, rotation: float) -> list[tuple[float, float]]:
    if shape == "square":
        points = [(r, 45 + 90 * k) for k in range(4)]
    elif shape == "triangle":
        points = [(r, -90 + 120 * k) for k in range(3)]
    elif shape == "star":
        points = [(r if k % 2 == 0 else 0.45 * r, -90 + 36 * k) for k in range(10)]
    else:
        raise ValueError(f"shape {shape!r} is not a polygon; known shapes: {', '.join(SHAPES)}")
    return [(cx + rad * math.cos(math.radians(a + rotation)), cy + rad * math.sin(math.radians(a + rotation)))
            for rad, a in points]


def render(spec: ShapeSpec, size: int = 32) -> Image.Image:
    """Draw ``spec`` as an RGB image of ``size`` x ``size`` pixels."""
    big = size * _SUPERSAMPLE
    image = Image.new("RGB", (big, big), PALETTE[spec.background])
    draw = ImageDraw.Draw(image)
    cx, cy, r = spec.center[0] * big, spec.center[1] * big, spec.radius * big
    fill = PALETTE[spec.colour]
    if spec.shape == "circle":
        r *= 0.85  # a circle of the full circumradius looks much bigger than the polygons
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    else:
        draw.polygon(_polygon(spec.shape, cx, cy, r, spec.rotation), fill=fill)
    return image.resize((size, size), Image.Resampling.LANCZOS)


def _check_subset(name: str, chosen: Sequence[str] | None, known: tuple[str, ...]) -> tuple[str, ...]:
    if chosen is None:
        return known
    chosen = (chosen,) if isinstance(chosen, str) else tuple(chosen)
    unknown = [c for c in chosen if c not in known]
    if unknown or not chosen:
        raise ValueError(f"{name}: unknown value(s) {unknown or chosen!r}; choose from {', '.join(known)}")
    return chosen


class ShapesDataset(Sequence):
    """``n`` images of the shapes world, rendered on access; usable as a map-style torch Dataset.

    Items are dicts: ``image`` (PIL, or whatever ``transform`` returns), ``label``, ``label_id``
    (index into ``CLASSES``), ``caption``, ``shape``, ``colour``, ``background``.
    """

    classes = CLASSES

    def __init__(
        self,
        n: int,
        seed: int = 0,
        size: int = 32,
        *,
        shapes: Sequence[str] | None = None,
        colours: Sequence[str] | None = None,
        backgrounds: Sequence[str] | None = None,
        colour_in_caption: float = 0.85,
        context_in_caption: float = 0.5,
        transform: Callable[[Image.Image], Any] | None = None,
    ):
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"n: expected a non-negative integer number of images, got {n!r}")
        if not isinstance(size, int) or size < 8:
            raise ValueError(f"size: expected an image side of at least 8 pixels, got {size!r}")
        for name, p in (("colour_in_caption", colour_in_caption), ("context_in_caption", context_in_caption)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name}: expected a probability in [0, 1], got {p!r}")
        self.n, self.seed, self.size = n, seed, size
        self.shapes = _check_subset("shapes", shapes, SHAPES)
        self.colours = _check_subset("colours", colours, COLOURS)
        self.backgrounds = _check_subset("backgrounds", backgrounds, BACKGROUNDS)
        if all(b in self.colours and len(self.colours) == 1 for b in self.backgrounds):
            raise ValueError("backgrounds: every background equals the only shape colour; nothing to draw")
        self.colour_in_caption, self.context_in_caption = colour_in_caption, context_in_caption
        self.transform = transform

    def __len__(self) -> int:
        return self.n

    def spec(self, index: int) -> ShapeSpec:
        """The (deterministic) description of item ``index``."""
        if not -self.n <= index < self.n:
            raise IndexError(f"index {index} out of range for a shapes dataset of {self.n} images")
        index %= self.n
        rng = random.Random(f"vitdream-shapes/{self.seed}/{index}")
        shape, colour = rng.choice(self.shapes), rng.choice(self.colours)
        background = rng.choice([b for b in self.backgrounds if b != colour] or list(self.backgrounds))
        radius = rng.uniform(*_RADIUS)
        center = (rng.uniform(radius, 1 - radius), rng.uniform(radius, 1 - radius))
        return ShapeSpec(shape, colour, background, center, radius, rng.uniform(0, 360),
                         rng.random() < self.colour_in_caption, rng.random() < self.context_in_caption)

    def __getitem__(self, index: int) -> dict[str, Any]:  # type: ignore[override]
        spec = self.spec(index)
        image = render(spec, self.size)
        return {
            "image": self.transform(image) if self.transform else image,
            "label": spec.label,
            "label_id": CLASSES.index(spec.label),
            "caption": spec.caption,
            "shape": spec.shape,
            "colour": spec.colour,
            "background": spec.background,
        }

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (self[i] for i in range(self.n))

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(CLASSES))

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(CLASSES)}

    def as_tensors(self) -> ShapesDataset:
        """The same items with ``image`` as a float tensor (3, size, size) in [0, 1] (imports torch)."""
        import numpy as np
        import torch

        def to_tensor(image: Image.Image) -> torch.Tensor:
            return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()

        return ShapesDataset(self.n, self.seed, self.size, shapes=self.shapes, colours=self.colours,
                             backgrounds=self.backgrounds, colour_in_caption=self.colour_in_caption,
                             context_in_caption=self.context_in_caption, transform=to_tensor)

    def save(self, folder: str | os.PathLike, layout: Literal["flat", "by_label"] = "flat") -> list[Path]:
        """Write every image as PNG into ``folder`` and return the paths.

        ``layout="flat"``: ``folder/00000.png``...; ``"by_label"``: ``folder/<label>/00000.png`` (the
        image-folder layout of fine-tuning demos). Either way ``folder/metadata.jsonl`` gives each
        file's caption and labels (the Hugging Face imagefolder format).
        """
        if layout not in ("flat", "by_label"):
            raise ValueError(f"layout: expected 'flat' or 'by_label', got {layout!r}")
        root = Path(folder)
        root.mkdir(parents=True, exist_ok=True)
        width = max(5, len(str(self.n - 1)))
        paths, records = [], []
        for i in range(self.n):
            spec = self.spec(i)
            name = f"{i:0{width}d}.png"
            rel = Path(spec.label) / name if layout == "by_label" else Path(name)
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(path, lambda f, s=spec: render(s, self.size).save(f, format="PNG"), sync=False)
            paths.append(path)
            records.append({"file_name": rel.as_posix(), "text": spec.caption, "label": spec.label,
                            "shape": spec.shape, "colour": spec.colour, "background": spec.background})
        lines = "".join(json.dumps(r) + "\n" for r in records)
        _atomic_write(root / "metadata.jsonl", lambda f: f.write(lines.encode()), sync=True)
        return paths

    def __repr__(self) -> str:
        return f"ShapesDataset(n={self.n}, seed={self.seed}, size={self.size}, classes={len(CLASSES)})"


def _atomic_write(path: Path, write: Callable[[Any], Any], sync: bool) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        write(f)
        if sync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


def shapes(n: int = 1000, seed: int = 0, size: int = 32, **options: Any) -> ShapesDataset:
    """``n`` deterministic images of the shapes world at ``size`` pixels (see :class:`ShapesDataset`).

    >>> ds = shapes(8, seed=0)
    >>> ds[0]["label"] in CLASSES
    True
    """
    return ShapesDataset(n, seed, size, **options)
