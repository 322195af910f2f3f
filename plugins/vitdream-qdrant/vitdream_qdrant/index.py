"""``QdrantIndex``: a :class:`vitdream.base.VectorIndex` backed by a Qdrant collection.

``location`` picks where the vectors live:

- ``":memory:"`` (default): Qdrant's local mode, in this process -- exact search, nothing to run;
- a folder: local mode persisted on disk;
- ``"http://host:6333"``: a Qdrant server (approximate HNSW search, ``hnsw_ef`` knob), for
  collections that outgrow one notebook. ``save()`` then records only where the data lives.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pydantic
from qdrant_client import QdrantClient, models

from vitdream.base import Options, VectorIndex

_BATCH = 1024


class QdrantOptions(Options):
    location: str = ":memory:"  # ":memory:", a folder (local mode), or an http(s) URL of a server
    collection: Optional[str] = None  # default: a fresh "vitdream-<uuid>" collection
    api_key: Optional[str] = None
    hnsw_ef: Optional[int] = pydantic.Field(None, ge=1)  # server search width (local mode is exact)


def _is_server(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def _client(location: str, api_key: str | None = None) -> QdrantClient:
    if _is_server(location):
        return QdrantClient(url=location, api_key=api_key)
    if location == ":memory:":
        return QdrantClient(location=":memory:")
    return QdrantClient(path=location)


class QdrantIndex(VectorIndex):
    """Cosine search in a Qdrant collection; ids are the point ids."""

    id = "qdrant"
    Options = QdrantOptions

    def __init__(self, dim: int | None = None, **options: Any) -> None:
        super().__init__(dim, **options)
        if not getattr(self, "dim", None):
            raise ValueError("qdrant index: dim is required")
        if self.options.collection is None:
            self.options.collection = f"vitdream-{uuid.uuid4().hex[:12]}"
        self.client = _client(self.options.location, self.options.api_key)
        if not self.client.collection_exists(self.options.collection):
            self.client.create_collection(
                self.options.collection, vectors_config=models.VectorParams(size=self.dim, distance=models.Distance.COSINE)
            )

    @property
    def collection(self) -> str:
        return self.options.collection  # type: ignore[return-value]

    def _vectors(self, vectors: Any) -> np.ndarray:
        x = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        if x.shape[1] != self.dim:
            raise ValueError(f"qdrant index: vectors have dimension {x.shape[1]}, the index has {self.dim}")
        return x

    def add(self, vectors: Any, ids: Any) -> None:
        x, ids = self._vectors(vectors), np.asarray(ids, dtype=np.int64).reshape(-1)
        if len(ids) != len(x):
            raise ValueError(f"qdrant index: {len(x)} vectors but {len(ids)} ids")
        for start in range(0, len(ids), _BATCH):
            batch = models.Batch(ids=ids[start : start + _BATCH].tolist(), vectors=x[start : start + _BATCH].tolist())
            self.client.upsert(self.collection, points=batch, wait=True)

    def remove(self, ids: Any) -> int:
        ids = [int(i) for i in np.unique(np.asarray(ids, dtype=np.int64)) if i >= 0]
        present = [p.id for p in self.client.retrieve(self.collection, ids, with_vectors=False, with_payload=False)] if ids else []
        if present:
            self.client.delete(self.collection, points_selector=models.PointIdsList(points=present), wait=True)
        return len(present)

    def __len__(self) -> int:
        return int(self.client.count(self.collection, exact=True).count)

    def search(self, queries: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = self._vectors(queries)
        scores = np.full((len(q), k), -np.inf, dtype=np.float32)
        ids = np.full((len(q), k), -1, dtype=np.int64)
        params = None
        if _is_server(self.options.location) and self.options.hnsw_ef:
            params = models.SearchParams(hnsw_ef=self.options.hnsw_ef)
        requests = [models.QueryRequest(query=row.tolist(), limit=k, params=params) for row in q]
        for r, response in enumerate(self.client.query_batch_points(self.collection, requests)):
            for c, point in enumerate(response.points):
                scores[r, c], ids[r, c] = point.score, int(point.id)
        return scores, ids

    def _points(self):
        offset = None
        while True:
            points, offset = self.client.scroll(self.collection, limit=_BATCH, offset=offset, with_vectors=True)
            yield from points
            if offset is None:
                return

    def save(self, directory: str | os.PathLike) -> None:
        """Write a local copy of the collection into ``directory`` (a server keeps its own data)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"dim": self.dim, "options": self.options.model_dump(exclude={"api_key"})}
        if not _is_server(self.options.location):
            copy = QdrantClient(path=str(directory / "qdrant"))
            try:
                copy.create_collection(self.collection, vectors_config=models.VectorParams(size=self.dim, distance=models.Distance.COSINE))
                points = list(self._points())
                for start in range(0, len(points), _BATCH):
                    chunk = points[start : start + _BATCH]
                    copy.upsert(self.collection, points=models.Batch(ids=[p.id for p in chunk], vectors=[p.vector for p in chunk]))
            finally:
                copy.close()
        (directory / "qdrant_index.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "QdrantIndex":
        """Reconnect to the server, or read the saved local copy into an in-process collection."""
        directory = Path(directory)
        meta = json.loads((directory / "qdrant_index.json").read_text())
        options = meta["options"]
        if _is_server(options["location"]):
            options["api_key"] = os.environ.get("QDRANT_API_KEY")
            return cls(meta["dim"], **options)
        index = cls(meta["dim"], **{**options, "location": ":memory:"})
        saved = QdrantClient(path=str(directory / "qdrant"))
        try:
            offset = None
            while True:
                points, offset = saved.scroll(index.collection, limit=_BATCH, offset=offset, with_vectors=True)
                if points:
                    index.client.upsert(index.collection, points=models.Batch(ids=[p.id for p in points], vectors=[p.vector for p in points]))
                if offset is None:
                    break
        finally:
            saved.close()
        return index
