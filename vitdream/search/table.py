"""The id -> (path, mtime, size, embedding) table of an image index, kept in input order."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np


@dataclass(frozen=True)
class Item:
    """One indexed file: its id, absolute path, and the (mtime_ns, size) it had when embedded."""

    id: int
    path: str
    mtime_ns: int
    size: int

    def unchanged(self, stat: os.stat_result) -> bool:
        return (self.mtime_ns, self.size) == (stat.st_mtime_ns, stat.st_size)


class ItemTable:
    """Items plus their float32 embeddings (rows in insertion order), with O(1) lookups."""

    def __init__(self, dim: int | None = None) -> None:
        self.dim = dim
        self._vectors = np.zeros((0, dim or 0), np.float32)
        self._n = 0
        self._items: list[Item] = []
        self._row: dict[int, int] = {}
        self._by_path: dict[str, int] = {}

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[Item]:
        return iter(self._items)

    @property
    def vectors(self) -> np.ndarray:
        return self._vectors[: self._n]

    @property
    def ids(self) -> np.ndarray:
        return np.fromiter((it.id for it in self._items), np.int64, count=self._n)

    def get(self, id: int) -> Item | None:
        row = self._row.get(int(id))
        return None if row is None else self._items[row]

    def by_path(self, path: str) -> Item | None:
        id = self._by_path.get(path)
        return None if id is None else self.get(id)

    def vector(self, id: int) -> np.ndarray:
        return self._vectors[self._row[int(id)]]

    def add(self, items: list[Item], vectors: np.ndarray) -> None:
        if self.dim is None:
            self.dim = int(vectors.shape[1])
            self._vectors = np.zeros((0, self.dim), np.float32)
        need = self._n + len(items)
        if need > len(self._vectors):  # amortised growth: adds stay O(batch)
            grown = np.zeros((max(need, 2 * len(self._vectors), 256), self.dim), np.float32)
            grown[: self._n] = self.vectors
            self._vectors = grown
        self._vectors[self._n : need] = vectors
        for offset, item in enumerate(items):
            self._row[item.id] = self._n + offset
            self._by_path[item.path] = item.id
        self._items.extend(items)
        self._n = need

    def remove(self, ids: list[int]) -> None:
        gone = {int(i) for i in ids} & self._row.keys()
        if not gone:
            return
        keep = [r for r, it in enumerate(self._items) if it.id not in gone]
        self._vectors = np.ascontiguousarray(self._vectors[keep]) if keep else np.zeros((0, self.dim), np.float32)
        self._items = [self._items[r] for r in keep]
        self._n = len(self._items)
        self._row = {it.id: r for r, it in enumerate(self._items)}
        self._by_path = {it.path: it.id for it in self._items}

    # -- files ----------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        columns = {"id": [], "path": [], "mtime_ns": [], "size": []}
        for it in self._items:
            for key in columns:
                columns[key].append(getattr(it, key))
        (folder / "items.json").write_text(json.dumps(columns))
        np.save(folder / "embeddings.npy", self.vectors, allow_pickle=False)

    @classmethod
    def load(cls, folder: Path, dim: int) -> "ItemTable":
        columns: dict[str, Any] = json.loads((folder / "items.json").read_text())
        vectors = np.load(folder / "embeddings.npy", allow_pickle=False)
        items = [Item(int(i), p, int(m), int(s)) for i, p, m, s in zip(columns["id"], columns["path"], columns["mtime_ns"], columns["size"])]
        if vectors.shape != (len(items), dim):
            raise ValueError(f"{folder}: embeddings.npy has shape {vectors.shape}, expected ({len(items)}, {dim})")
        table = cls(dim)
        table.add(items, vectors)
        return table
