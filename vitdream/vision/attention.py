"""Attention rollout (Abnar & Zuidema, 2020): where the CLS token "looks", for teaching.

Attention maps need the eager attention kernel; the model is switched to it only for the call
that asks for maps (:func:`eager_attention`) and back to SDPA afterwards.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Iterator, Sequence

import numpy as np


@contextlib.contextmanager
def eager_attention(model: Any) -> Iterator[None]:
    """Run ``model`` with eager attention (which can return attention weights) inside the block."""
    before = getattr(model.config, "_attn_implementation", None)
    switch = before not in (None, "eager") and hasattr(model, "set_attn_implementation")
    if switch:
        model.set_attn_implementation("eager")
    try:
        yield
    finally:
        if switch:
            model.set_attn_implementation(before)


def rollout(attentions: Sequence[Any], head_fusion: str = "mean", residual: float = 0.5) -> np.ndarray:
    """CLS-to-token relevance over all layers: the product of head-fused, residual-mixed attention.

    ``attentions``: one (batch, heads, tokens, tokens) tensor per layer. Returns (batch, tokens)
    rows (the CLS row of the rolled-out matrix), each summing to 1.
    """
    fuse = {"mean": lambda a: a.mean(axis=1), "max": lambda a: a.max(axis=1), "min": lambda a: a.min(axis=1)}
    if head_fusion not in fuse:
        raise ValueError(f"head_fusion must be one of {', '.join(fuse)} (got {head_fusion!r})")
    result = None
    for layer in attentions:
        a = fuse[head_fusion](np.asarray(layer, dtype=np.float64))
        eye = np.eye(a.shape[-1])[None]
        a = residual * eye + (1 - residual) * a
        a = a / a.sum(axis=-1, keepdims=True)
        result = a if result is None else a @ result
    if result is None:
        raise ValueError("no attention layers given")
    return result[:, 0]


def token_grid(relevance: np.ndarray, num_patches: int) -> np.ndarray:
    """The patch-token part of one rollout row as a square grid, scaled to [0, 1]."""
    side = int(math.isqrt(num_patches))
    if side * side != num_patches:
        raise ValueError(f"{num_patches} patches do not form a square grid")
    grid = relevance[-num_patches:].reshape(side, side)
    low, high = grid.min(), grid.max()
    return ((grid - low) / (high - low) if high > low else np.zeros_like(grid)).astype(np.float32)


def overlay(image: Any, heat: np.ndarray, alpha: float = 0.5, colormap: str = "inferno", size: int | None = None) -> Any:
    """``image`` (PIL or HxWx3 uint8) blended with ``heat`` ([0, 1] grid) through a colormap."""
    from matplotlib import colormaps
    from PIL import Image

    base = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
    base = base.convert("RGB")
    if size:
        base = base.resize((size, size), Image.BICUBIC)
    heat_img = Image.fromarray((np.clip(heat, 0, 1) * 255).astype(np.uint8)).resize(base.size, Image.BILINEAR)
    colored = colormaps[colormap](np.asarray(heat_img) / 255.0)[..., :3]
    blended = (1 - alpha) * np.asarray(base, dtype=np.float32) / 255.0 + alpha * colored
    return Image.fromarray((np.clip(blended, 0, 1) * 255).astype(np.uint8))
