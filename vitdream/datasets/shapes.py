"""The shapes world: a procedural, deterministic dataset of coloured, patterned shapes on plain backgrounds.

Each item is one shape (``SHAPES``) in one of three looks (``PATTERNS``): ``plain`` (one colour),
``two-tone`` (upper half one colour, lower half another) or ``striped`` (three horizontal bands: outer,
middle, outer), in colours of ``COLOURS``, on a background (``BACKGROUNDS``, never one of the shape's
colours), at a random position, scale and rotation. So every class has many looks -- the prior a
DreamBooth subject is recontextualised from. The class label is ``"{colour} {shape}"`` (``CLASSES``)
with ``colour`` the shape's *top* colour, so ``f"a photo of a {label}"`` is always a valid prompt.
One look is held out (``HELD_OUT``): the red-over-green two-tone star is the DreamBooth demo subject.
Same ``seed`` and index -> same pixels, on every machine.

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

from vitdream.atomic import atomic_open, atomic_write_bytes

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")
COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow")
PATTERNS: tuple[str, ...] = ("plain", "two-tone", "striped")
BACKGROUNDS: tuple[str, ...] = ("white", "black", "grey", "purple", "red", "green", "blue", "yellow")
CLASSES: tuple[str, ...] = tuple(f"{colour} {shape}" for colour in COLOURS for shape in SHAPES)
#: looks never drawn by default, as ``(shape, pattern, colour, colour2)``: the DreamBooth demo subject
HELD_OUT: frozenset[tuple[str, str, str, str | None]] = frozenset({("star", "two-tone", "red", "green")})

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 210, 40),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
    "grey": (128, 128, 128),
    "purple": (130, 50, 160),
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
    with_colour: bool  # caption names the colour(s)
    with_context: bool  # caption names the background
    pattern: str = "plain"
    colour2: str | None = None  # the second colour of a two-tone or striped shape
    with_pattern: bool = True  # caption names the pattern

    @property
    def label(self) -> str:
        return f"{self.colour} {self.shape}"

    @property
    def look(self) -> tuple[str, str, str, str | None]:
        return (self.shape, self.pattern, self.colour, self.colour2)

    @property
    def caption(self) -> str:
        return caption(self.shape, self.colour if self.with_colour else None,
                       self.background if self.with_context else None,
                       pattern=self.pattern if self.with_pattern else None,
                       colour2=self.colour2 if self.with_colour else None)


def caption(shape: str, colour: str | None = None, background: str | None = None, *,
            pattern: str | None = None, colour2: str | None = None) -> str:
    """The world's caption grammar, each attribute optional:
    ``"a photo of a [colour [and colour2]] [pattern] shape[ on a <background> background]"``
    (``"a photo of a plain red star"`` for the plain look).

    >>> caption("star", "red", "blue", pattern="two-tone", colour2="green")
    'a photo of a red and green two-tone star on a blue background'
    """
    words = []
    if pattern == "plain":  # "a plain red star" reads better than "a red plain star"
        words.append(pattern)
    if colour:
        words.append(f"{colour} and {colour2}" if colour2 else colour)
    if pattern and pattern != "plain":
        words.append(pattern)
    text = f"a photo of a {' '.join([*words, shape])}"
    return f"{text} on a {background} background" if background else text


def _outline(shape: str, cx: float, cy: float, r: float, rotation: float) -> list[tuple[float, float]]:
    """The corners of a polygon shape (a circle: 64 points on it)."""
    if shape == "circle":
        r *= 0.85  # a circle of the full circumradius looks much bigger than the polygons
        points = [(r, 360 * k / 64) for k in range(64)]
    elif shape == "square":
        points = [(r, 45 + 90 * k) for k in range(4)]
    elif shape == "triangle":
        points = [(r, -90 + 120 * k) for k in range(3)]
    elif shape == "star":
        points = [(r if k % 2 == 0 else 0.45 * r, -90 + 36 * k) for k in range(10)]
    else:
        raise ValueError(f"shape {shape!r} is unknown; known shapes: {', '.join(SHAPES)}")
    return [(cx + rad * math.cos(math.radians(a + rotation)), cy + rad * math.sin(math.radians(a + rotation)))
            for rad, a in points]


def band_edges(pattern: str, top: float, bottom: float) -> list[float]:
    """Where the colour changes between ``top`` and ``bottom`` (rows): none for plain, the middle for
    two-tone, the thirds for striped. Bands are horizontal in the image, whatever the rotation."""
    if pattern == "plain":
        return []
    if pattern == "two-tone":
        return [(top + bottom) / 2]
    if pattern == "striped":
        return [top + (bottom - top) / 3, top + 2 * (bottom - top) / 3]
    raise ValueError(f"pattern {pattern!r} is unknown; known patterns: {', '.join(PATTERNS)}")


def render(spec: ShapeSpec, size: int = 32) -> Image.Image:
    """Draw ``spec`` as an RGB image of ``size`` x ``size`` pixels."""
    big = size * _SUPERSAMPLE
    points = _outline(spec.shape, spec.center[0] * big, spec.center[1] * big, spec.radius * big, spec.rotation)
    top, bottom = min(y for _, y in points), max(y for _, y in points)
    fill = Image.new("RGB", (big, big), PALETTE[spec.colour])
    edges = band_edges(spec.pattern, top, bottom)
    if edges:
        second = PALETTE[spec.colour2 or spec.colour]
        draw = ImageDraw.Draw(fill)
        # two-tone: everything below the middle; striped: the middle third only
        lower = bottom + 1 if spec.pattern == "striped" else big
        draw.rectangle((0, edges[0], big, edges[1] if len(edges) > 1 else lower), fill=second)
    mask = Image.new("L", (big, big), 0)
    ImageDraw.Draw(mask).polygon(points, fill=255)
    image = Image.new("RGB", (big, big), PALETTE[spec.background])
    image.paste(fill, (0, 0), mask)
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
    (index into ``CLASSES``), ``caption``, ``shape``, ``colour`` (the top colour), ``colour2`` (the
    second colour; the same as ``colour`` for plain shapes), ``pattern``, ``background``.
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
        patterns: Sequence[str] | None = None,
        colour_in_caption: float = 0.85,
        context_in_caption: float = 0.5,
        pattern_in_caption: float = 0.85,
        held_out: Sequence[tuple[str, str, str, str | None]] | None = HELD_OUT,
        transform: Callable[[Image.Image], Any] | None = None,
    ):
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"n: expected a non-negative integer number of images, got {n!r}")
        if not isinstance(size, int) or size < 8:
            raise ValueError(f"size: expected an image side of at least 8 pixels, got {size!r}")
        for name, p in (("colour_in_caption", colour_in_caption), ("context_in_caption", context_in_caption),
                        ("pattern_in_caption", pattern_in_caption)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name}: expected a probability in [0, 1], got {p!r}")
        self.n, self.seed, self.size = n, seed, size
        self.shapes = _check_subset("shapes", shapes, SHAPES)
        self.colours = _check_subset("colours", colours, COLOURS)
        self.backgrounds = _check_subset("backgrounds", backgrounds, BACKGROUNDS)
        self.patterns = _check_subset("patterns", patterns, PATTERNS)
        if len(self.colours) < 2 and set(self.patterns) - {"plain"}:
            if self.patterns != ("plain",) and patterns is not None:
                raise ValueError("patterns: two-tone and striped shapes need at least two colours")
            self.patterns = ("plain",)
        if all(b in self.colours and len(self.colours) == 1 for b in self.backgrounds):
            raise ValueError("backgrounds: every background equals the only shape colour; nothing to draw")
        self.colour_in_caption, self.context_in_caption = colour_in_caption, context_in_caption
        self.pattern_in_caption = pattern_in_caption
        self.held_out = frozenset(held_out or ())
        self.transform = transform

    def __len__(self) -> int:
        return self.n

    def spec(self, index: int) -> ShapeSpec:
        """The (deterministic) description of item ``index``."""
        if not -self.n <= index < self.n:
            raise IndexError(f"index {index} out of range for a shapes dataset of {self.n} images")
        index %= self.n
        rng = random.Random(f"vitdream-shapes/{self.seed}/{index}")
        for _ in range(100):  # redraw a held-out look
            shape, pattern, colour = rng.choice(self.shapes), rng.choice(self.patterns), rng.choice(self.colours)
            colour2 = None if pattern == "plain" else rng.choice([c for c in self.colours if c != colour])
            if (shape, pattern, colour, colour2) not in self.held_out:
                break
        else:
            raise ValueError("held_out: every look of this subset is held out; nothing to draw")
        used = {colour, colour2}
        background = rng.choice([b for b in self.backgrounds if b not in used] or list(self.backgrounds))
        radius = rng.uniform(*_RADIUS)
        center = (rng.uniform(radius, 1 - radius), rng.uniform(radius, 1 - radius))
        return ShapeSpec(shape, colour, background, center, radius, rng.uniform(0, 360),
                         rng.random() < self.colour_in_caption, rng.random() < self.context_in_caption,
                         pattern, colour2, rng.random() < self.pattern_in_caption)

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
            "colour2": spec.colour2 or spec.colour,  # plain: the same colour (never None: torch collates items)
            "pattern": spec.pattern,
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
                             backgrounds=self.backgrounds, patterns=self.patterns,
                             colour_in_caption=self.colour_in_caption, context_in_caption=self.context_in_caption,
                             pattern_in_caption=self.pattern_in_caption, held_out=self.held_out,
                             transform=to_tensor)

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
            with atomic_open(path, durable=False) as fh:
                render(spec, self.size).save(fh, format="PNG")
            paths.append(path)
            records.append({"file_name": rel.as_posix(), "text": spec.caption, "label": spec.label,
                            "shape": spec.shape, "colour": spec.colour, "colour2": spec.colour2 or spec.colour,
                            "pattern": spec.pattern, "background": spec.background})
        lines = "".join(json.dumps(r) + "\n" for r in records)
        atomic_write_bytes(root / "metadata.jsonl", lines.encode())
        return paths

    def __repr__(self) -> str:
        return f"ShapesDataset(n={self.n}, seed={self.seed}, size={self.size}, classes={len(CLASSES)})"


def shapes(n: int = 1000, seed: int = 0, size: int = 32, **options: Any) -> ShapesDataset:
    """``n`` deterministic images of the shapes world at ``size`` pixels (see :class:`ShapesDataset`).

    >>> ds = shapes(8, seed=0)
    >>> ds[0]["label"] in CLASSES
    True
    """
    return ShapesDataset(n, seed, size, **options)
