"""Result types of the image backends: :class:`Prediction`, and the shapes of batch calls, which
behave like a list / an array and carry ``failures``.

- :class:`Classifications` -- a list with one entry per input, in input order: the top-k
  :class:`~vitdream.base.Prediction` list, or ``None`` for an input listed in ``failures``.
- :class:`Embeddings` -- a float32 ``(n_ok, dim)`` NumPy array with a row per input that loaded,
  in input order; ``indices[r]`` is the input position of row ``r`` and ``failures`` the rest.

Each failure is a :class:`~vitdream.images.BadImage` ``(index, source, reason)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
