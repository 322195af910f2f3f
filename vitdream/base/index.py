"""Base class of vector indexes.

A vector index maps int64 ids to float32 vectors and answers cosine top-k queries. The surface
every kind offers (only :meth:`search` is abstract; the others raise a clear error until a
subclass implements them):

- ``__init__(dim=None, **options)`` -- options are validated by the class's ``Options``;
- ``add(vectors, ids)`` -- ids are unique int64 chosen by the caller (never -1);
- ``remove(ids) -> int`` -- how many were present and are now gone;
- ``search(queries, k) -> (scores, ids)`` -- arrays of shape ``(n, k)``, best first; missing
  neighbours have id -1 and score ``-inf``;
- ``__len__`` -- live vectors;
- ``save(directory)`` / ``classmethod load(directory)`` -- write/read everything (options
  included) inside ``directory``. Durability and atomicity are the caller's job:
  :class:`vitdream.search.ImageIndex` saves into a fresh directory, fsyncs it and swaps it in.

Knobs (efSearch, nprobe, ...) are fields of ``Options``; ``index.options.nprobe = 32`` is
validated and applies to the next search.
"""

from __future__ import annotations

import os
from abc import abstractmethod
from typing import Any

from vitdream.base.options import Component


class VectorIndex(Component):
    """A vector index over integer ids. Implement :meth:`search`; see the module docstring."""

    def __init__(self, dim: int | None = None, **options: Any) -> None:
        super().__init__(**options)
        if dim is not None:
            self.dim = int(dim)

    @abstractmethod
    def search(self, queries: Any, k: int) -> tuple[Any, Any]:
        """(scores, ids) arrays of shape (n_queries, k); missing neighbours have id -1."""

    def add(self, vectors: Any, ids: Any) -> None:
        """Add ``vectors`` (n, dim) under ``ids`` (n,)."""
        raise self._missing("add")

    def remove(self, ids: Any) -> int:
        """Remove ``ids``; return how many were present."""
        raise self._missing("remove")

    def __len__(self) -> int:
        raise self._missing("__len__")

    def save(self, directory: str | os.PathLike) -> None:
        """Write the index (and its options) into ``directory``."""
        raise self._missing("save")

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "VectorIndex":
        """Read an index written by :meth:`save`."""
        raise NotImplementedError(f"index kind {cls.id or cls.__name__!r} cannot be loaded (no load())")

    def _missing(self, method: str) -> NotImplementedError:
        return NotImplementedError(f"index kind {self.id or type(self).__name__!r} does not support {method}()")
