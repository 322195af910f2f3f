"""How well attention maps find things, on the shapes world: the share of the shape word's map on the
shape's pixels, and of ``background``'s map off them, against the shape's share of the image.

The mask is read from the pixels (:func:`vitdream.datasets.reading.foreground_mask`), so it is the
shape the model actually drew. A map that knows nothing scores the area share (``area`` for the
shape, ``1 - area`` for the background); above it, the map points at the right pixels.
"""

from __future__ import annotations

import random
from typing import Any, Sequence

from vitdream.evaluation import MetricsTable


def world_prompts(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """``count`` prompts ``"a photo of a {colour} {shape} on a {bg} background"`` (shapes in turn,
    colour and background at random, never equal), with their shape word."""
    from vitdream.datasets.shapes import BACKGROUNDS, COLOURS, SHAPES

    rng = random.Random(seed)
    rows = []
    for i in range(count):
        shape, colour = SHAPES[i % len(SHAPES)], rng.choice(COLOURS)
        background = rng.choice([b for b in BACKGROUNDS if b != colour])
        rows.append((f"a photo of a {colour} {shape} on a {background} background", shape))
    return rows


def localisation(generator: Any, prompts: Sequence[tuple[str, str]], seeds: Sequence[int], **settings: Any) -> MetricsTable:
    """One row per (prompt, seed): ``area``, ``shape_inside``, ``background_outside``."""
    from vitdream.datasets.reading import foreground_mask

    rows = []
    for (prompt, shape), seed in zip(prompts, seeds):
        image = generator.generate(prompt, seed=seed, attention=True, **settings)[0]
        mask = foreground_mask(image)
        maps = image.attention
        rows.append({"prompt": prompt, "seed": seed, "area": float(mask.mean()),
                     "shape_inside": maps.share_inside(shape, mask),
                     "background_outside": maps.share_inside("background", ~mask)})
    return MetricsTable(rows)


def summary(table: MetricsTable) -> dict[str, float]:
    """Means over the rows, and each share divided by what a map that knows nothing would score."""
    mean = {k: sum(table[k]) / len(table) for k in ("area", "shape_inside", "background_outside")}
    return {**mean, "shape_lift": mean["shape_inside"] / mean["area"],
            "background_lift": mean["background_outside"] / (1 - mean["area"])}
