"""Base classes of image classification and embedding backends."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from vitdream.base.options import Component


@dataclass(frozen=True)
class Prediction:
    """One class score."""

    label: str
    score: float


class Classifier(Component):
    """An image classifier. Implement :meth:`classify`."""

    tasks: ClassVar[frozenset[str]] = frozenset({"classify"})

    @classmethod
    def accepts(cls, model: str | None) -> bool:
        """Whether this backend can load ``model`` (a hub id, directory or None = default)."""
        return True

    @abstractmethod
    def classify(self, images: Any, top_k: int = 5) -> Any:
        """Top-k :class:`Prediction` lists, one per image."""


class Embedder(Component):
    """An image embedder. Implement :meth:`embed`."""

    tasks: ClassVar[frozenset[str]] = frozenset({"embed"})

    @classmethod
    def accepts(cls, model: str | None) -> bool:
        return True

    @abstractmethod
    def embed(self, images: Any, layer: int = -1, pool: str = "cls", normalize: bool = False) -> Any:
        """A float32 array of shape (n, dim)."""

    def describe(self) -> dict[str, Any]:
        """What identifies the embedding space (stored in index manifests)."""
        return {"backend": self.id}
