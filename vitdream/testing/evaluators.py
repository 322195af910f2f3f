"""A model-free evaluator for tests: instant scores and embeddings from the pixels themselves."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from vitdream.base import Evaluator


class Redness(Evaluator):
    """Prompt fidelity = the mean red channel (0-1); embeddings = the RGB pixels (+1, never all zero)."""

    id: ClassVar[str] = "redness"
    metrics: ClassVar[tuple[str, ...]] = ("red",)
    uses: ClassVar[frozenset[str]] = frozenset({"prompts"})
    provides: ClassVar[dict[str, str]] = {"prompt_fidelity": "red"}

    def _score(self, images: list[Any], prompts: Any, references: Any) -> dict[str, Any]:
        return {"red": [np.asarray(im.convert("RGB"), float)[..., 0].mean() / 255 for im in images]}

    def _embed(self, images: list[Any]) -> np.ndarray:
        return np.stack([np.asarray(im.convert("RGB"), float).ravel() + 1 for im in images])
