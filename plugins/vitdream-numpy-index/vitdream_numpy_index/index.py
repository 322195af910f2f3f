"""The index itself: a float32 matrix, an id vector, one matrix product per search."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from vitdream.base import Options, VectorIndex


class NumpyExactOptions(Options):
    normalize: bool = True  # L2-normalise vectors so inner product = cosine similarity


class NumpyExactIndex(VectorIndex):
    """Exact cosine search in NumPy: O(n*d) per query, no training, exact removal."""

    id = "numpy-exact"
    Options = NumpyExactOptions

    def __init__(self, dim: int, **options: Any) -> None:
        super().__init__(**options)
        self.dim = int(dim)
        self._vectors = np.zeros((0, self.dim), dtype=np.float32)
        self._ids = np.zeros((0,), dtype=np.int64)

    def __len__(self) -> int:
        return len(self._ids)

    def _prepare(self, vectors: Any) -> np.ndarray:
        x = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        if x.shape[1] != self.dim:
            raise ValueError(f"numpy-exact index: vectors have dimension {x.shape[1]}, the index has {self.dim}")
        if self.options.normalize:
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        return x

    def add(self, vectors: Any, ids: Any) -> None:
        x, ids = self._prepare(vectors), np.asarray(ids, dtype=np.int64).reshape(-1)
        if len(ids) != len(x):
            raise ValueError(f"numpy-exact index: {len(x)} vectors but {len(ids)} ids")
        if np.isin(ids, self._ids).any():
            raise ValueError("numpy-exact index: some ids are already in the index")
        self._vectors = np.concatenate([self._vectors, x])
        self._ids = np.concatenate([self._ids, ids])

    def remove(self, ids: Any) -> int:
        keep = ~np.isin(self._ids, np.asarray(ids, dtype=np.int64))
        removed = int((~keep).sum())
        self._vectors, self._ids = self._vectors[keep], self._ids[keep]
        return removed

    def search(self, queries: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = self._prepare(queries)
        scores = np.full((len(q), k), -np.inf, dtype=np.float32)
        ids = np.full((len(q), k), -1, dtype=np.int64)
        n = min(k, len(self._ids))
        if n == 0:
            return scores, ids
        sims = q @ self._vectors.T
        top = np.argpartition(-sims, n - 1, axis=1)[:, :n]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        scores[:, :n] = np.take_along_axis(sims, top, axis=1)
        ids[:, :n] = self._ids[top]
        return scores, ids

    def save(self, path: str | os.PathLike) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        np.save(path / "vectors.npy", self._vectors)
        np.save(path / "ids.npy", self._ids)
        (path / "numpy_index.json").write_text(json.dumps({"dim": self.dim, **self.options.model_dump()}))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "NumpyExactIndex":
        path = Path(path)
        meta = json.loads((path / "numpy_index.json").read_text())
        index = cls(**meta)
        index._vectors = np.load(path / "vectors.npy", allow_pickle=False)
        index._ids = np.load(path / "ids.npy", allow_pickle=False)
        return index
