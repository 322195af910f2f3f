"""Base class of vector indexes."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from vitdream.base.options import Component


class VectorIndex(Component):
    """A vector index over integer ids. Implement :meth:`search`; see the methods below."""

    @abstractmethod
    def search(self, queries: Any, k: int) -> tuple[Any, Any]:
        """(scores, ids) arrays of shape (n_queries, k); missing neighbours have id -1."""
