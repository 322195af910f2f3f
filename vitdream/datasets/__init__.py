"""Built-in datasets. ``shapes`` is the embedded "shapes world" (see ``docs/shapes_world.md``)."""

from __future__ import annotations

from vitdream.datasets.shapes import (
    BACKGROUNDS,
    CLASSES,
    COLOURS,
    PALETTE,
    SHAPES,
    HELD_OUT,
    PATTERNS,
    ShapeSpec,
    ShapesDataset,
    caption,
    render,
    shapes,
)
from vitdream.datasets.subject import Subject, dreambooth_subject  # noqa: F401 -- the DreamBooth demo subject

__all__ = ["BACKGROUNDS", "CLASSES", "COLOURS", "HELD_OUT", "PALETTE", "PATTERNS", "SHAPES", "ShapeSpec", "ShapesDataset",
           "caption", "render", "shapes"]
