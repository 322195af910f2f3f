"""Result types: :class:`Prediction`; the shapes of batch calls, which behave like a list / an array
and carry ``failures``; :class:`ImageList`, what generators return.

- :class:`Classifications` -- a list with one entry per input, in input order: the top-k
  :class:`~vitdream.base.Prediction` list, or ``None`` for an input listed in ``failures``.
- :class:`Embeddings` -- a float32 ``(n_ok, dim)`` NumPy array with a row per input that loaded,
  in input order; ``indices[r]`` is the input position of row ``r`` and ``failures`` the rest.

Each failure is a :class:`~vitdream.images.BadImage` ``(index, source, reason)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from vitdream.images import BadImage


@dataclass(frozen=True)
class Prediction:
    """One class score."""

    label: str
    score: float


class Classifications(list):
    """``list[list[Prediction] | None]`` plus ``failures: list[BadImage]``."""

    def __init__(self, items: Any = (), failures: list[BadImage] | None = None):
        super().__init__(items)
        self.failures: list[BadImage] = list(failures or [])

    def to_dicts(self) -> list[Any]:
        """Pipeline-style output: ``[[{"label", "score"}, ...] or None, ...]``."""
        return [None if preds is None else [{"label": p.label, "score": p.score} for p in preds] for preds in self]

    def __repr__(self) -> str:
        return f"Classifications({list.__repr__(self)}, failures={self.failures!r})"


class Embeddings(np.ndarray):
    """A float32 ``(n_ok, dim)`` array with ``indices`` (input position of each row) and ``failures``."""

    indices: np.ndarray
    failures: list[BadImage]

    @classmethod
    def wrap(cls, array: np.ndarray, indices: Any, failures: list[BadImage]) -> "Embeddings":
        out = np.asarray(array, dtype=np.float32).view(cls)
        out.indices = np.asarray(indices, dtype=np.int64)
        out.failures = list(failures)
        return out

    def __array_finalize__(self, obj: Any) -> None:
        if obj is None:
            return
        self.indices = getattr(obj, "indices", np.arange(self.shape[0] if self.ndim else 0))
        self.failures = getattr(obj, "failures", [])


def top_k(scores: np.ndarray, labels: list[str], k: int) -> list[Prediction]:
    """The ``k`` best of one row of scores, best first (stable for ties, like the pipeline's sort)."""
    k = min(k, scores.shape[-1])
    order = np.argsort(-scores, kind="stable")[:k]
    return [Prediction(labels[i] if i < len(labels) else str(int(i)), float(scores[i])) for i in order]


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
