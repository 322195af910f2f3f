"""``image.attention``: one image's per-token cross-attention heat maps, looked up by word.

``maps["star"]`` is the map of every token of the word ``star`` (summed), upsampled to the image
size, as a float32 array; ``maps.plot()`` draws the image and one overlay per word;
``maps.overlay("star")`` is a PIL image of the map over the picture. Only numpy/PIL until plotting.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from vitdream.errors import VitdreamError


def word_tokens(tokenizer: Any, prompt: str) -> list[tuple[str, list[int]]]:
    """``[(word, token positions), ...]`` for the whitespace-separated words of ``prompt``.

    Position 0 is the start token; words past the tokenizer's length limit are left out.
    """
    limit = int(getattr(tokenizer, "model_max_length", 77)) - 1
    words, position = [], 1
    for word in prompt.split():
        count = len(tokenizer.tokenize(word))
        positions = [p for p in range(position, position + count) if p < limit]
        if positions:
            words.append((word, positions))
        position += count
    return words


def _bare(word: str) -> str:
    return word.strip(".,;:!?\"'()").lower()


class AttentionMaps:
    """The cross-attention maps of one generated image (see the module docstring)."""

    def __init__(self, heat: np.ndarray, words: Sequence[tuple[str, Sequence[int]]], size: tuple[int, int],
                 image: Any = None) -> None:
        self.heat = np.asarray(heat, dtype=np.float32)  # (tokens, latent_h, latent_w)
        self.tokens = [(w, list(p)) for w, p in words]
        self.size = size  # (width, height) of the image
        self.image = image

    @property
    def words(self) -> list[str]:
        """The words of the prompt, in order (repeats included)."""
        return [w for w, _ in self.tokens]

    def positions(self, key: str | int) -> list[int]:
        """Token positions of a word (every occurrence; punctuation and case ignored) or of word number ``key``."""
        if isinstance(key, int):
            if not -len(self.tokens) <= key < len(self.tokens):
                raise VitdreamError(f"attention: word index {key} out of range; the prompt has {len(self.tokens)} words")
            return self.tokens[key][1]
        found = [p for w, ps in self.tokens if _bare(w) == _bare(key) for p in ps]
        if not found:
            raise VitdreamError(f"attention: {key!r} is not a word of the prompt; its words are {self.words}")
        return found

    def latent(self, key: str | int) -> np.ndarray:
        """The map at the latent grid's resolution."""
        return self.heat[self.positions(key)].sum(axis=0)

    def __getitem__(self, key: str | int) -> np.ndarray:
        """The map of word ``key``, upsampled (bilinear) to the image size: float32 ``(height, width)``."""
        from PIL import Image

        small = self.latent(key)
        width, height = self.size
        return np.asarray(Image.fromarray(small.astype(np.float32), mode="F").resize((width, height), Image.BILINEAR),
                          dtype=np.float32)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and any(_bare(w) == _bare(key) for w in self.words)

    def share_inside(self, key: str | int, mask: np.ndarray) -> float:
        """The share of word ``key``'s map that falls on ``mask`` (a boolean ``(height, width)`` array)."""
        heat = np.clip(self[key], 0, None)
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != heat.shape:
            raise VitdreamError(f"attention: mask shape {mask.shape} is not the image's {heat.shape}")
        total = float(heat.sum())
        return float(heat[mask].sum()) / total if total > 0 else 0.0

    def overlay(self, key: str | int, image: Any = None, alpha: float = 0.65, scale: int = 1) -> Any:
        """A PIL image: word ``key``'s map (scaled to its own min..max, "hot" colours: black, red, yellow,
        white) over ``image`` (default: the generated one) in grey."""
        from PIL import Image

        base = image if image is not None else self.image
        heat = self[key]
        heat = (heat - heat.min()) / (np.ptp(heat) or 1.0)
        hot = np.stack([np.clip(3 * heat, 0, 1), np.clip(3 * heat - 1, 0, 1), np.clip(3 * heat - 2, 0, 1)], axis=-1) * 255
        if base is None:
            out = hot
        else:
            grey = np.asarray(base.convert("L").resize(self.size), dtype=np.float32)[..., None]
            out = (1 - alpha) * grey + alpha * hot
        picture = Image.fromarray(out.clip(0, 255).astype(np.uint8))
        return picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST) if scale > 1 else picture

    def plot(self, words: Sequence[str | int] | None = None, ax: Any = None) -> Any:
        """The image, then one heat map per word (default: every word); returns the matplotlib figure."""
        import matplotlib.pyplot as plt

        keys = list(words) if words is not None else list(range(len(self.tokens)))
        panels = len(keys) + (self.image is not None)
        if ax is None:
            fig, axes = plt.subplots(1, panels, figsize=(1.6 * panels, 1.9), squeeze=False)
            axes = list(axes[0])
        else:
            axes, fig = list(np.ravel(ax)), np.ravel(ax)[0].figure
        if self.image is not None:
            axes[0].imshow(self.image)
            axes[0].set_title("image", fontsize=8)
            axes = axes[1:]
        for axis, key in zip(axes, keys):
            axis.imshow(self.overlay(key))
            axis.set_title(self.tokens[key][0] if isinstance(key, int) else key, fontsize=8)
        for axis in fig.axes:
            axis.axis("off")
        fig.tight_layout()
        return fig

    def __repr__(self) -> str:
        return f"<AttentionMaps {len(self.tokens)} words {self.words} at {self.size[0]}x{self.size[1]}>"
