"""``faiss-ivfpq``: inverted lists of product-quantised codes, re-ranked exactly from disk.

Memory holds only the compressed codes (``m`` bytes per vector; 768-d float32 is 3,072), the
ids and the coarse centroids. The full vectors live in an append-only float32 file that is
memory-mapped, not loaded: each query takes the ``rerank`` best PQ candidates of its ``nprobe``
lists and re-scores them with their exact vectors (a few hundred rows read per query), so the
returned scores are exact cosines and recall is close to IVF-Flat's at a fraction of the memory.

Below the training threshold (as ``faiss-ivf``: ``auto_nlist`` or 39 x ``nlist`` vectors) it
searches exactly. Training and retraining read the vectors back from the file, so retraining as
the collection grows loses nothing. Removal: ``remove_ids`` scans the lists (no direct map: it
would cost ~48 bytes a vector); the file rows of removed ids are dropped at the next save.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pydantic

from vitdream.search.faiss_index import IVFIndex, IVFOptions, _as_ids, _few_threads

_RAW = "vectors.f32"
_RAW_IDS = "vector_ids.npy"


class RawVectors:
    """float32 rows appended to a private temporary file, read through a memory map; the
    row -> id table and a live mask are NumPy arrays (9 bytes a vector, no per-item objects)."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.folder = tempfile.mkdtemp(prefix="vitdream-ivfpq-")
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.folder, True)
        self.path = os.path.join(self.folder, _RAW)
        open(self.path, "wb").close()
        self.row_ids = np.zeros(0, np.int64)
        self.alive = np.zeros(0, bool)
        self._map: np.memmap | None = None
        self._lookup: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def rows(self) -> int:
        return len(self.row_ids)

    def append(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        with open(self.path, "ab") as fh:
            fh.write(np.ascontiguousarray(vectors, np.float32).tobytes())
        self.row_ids = np.concatenate([self.row_ids, ids.astype(np.int64)])
        self.alive = np.concatenate([self.alive, np.ones(len(ids), bool)])
        self._map = self._lookup = None

    def forget(self, ids: np.ndarray) -> None:
        rows = self.rows_for(ids)
        self.alive[rows[rows >= 0]] = False
        self._lookup = None

    def live(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, rows) of every live vector, in file order."""
        rows = np.flatnonzero(self.alive)
        return self.row_ids[rows], rows

    def rows_for(self, ids: np.ndarray) -> np.ndarray:
        """File row of each id, -1 where absent."""
        if self._lookup is None:
            live_ids, rows = self.live()
            order = np.argsort(live_ids, kind="stable")
            self._lookup = (live_ids[order], rows[order])
        sorted_ids, sorted_rows = self._lookup
        ids = np.asarray(ids, np.int64)
        if not len(sorted_ids):
            return np.full(len(ids), -1, np.int64)
        pos = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
        return np.where(sorted_ids[pos] == ids, sorted_rows[pos], -1)

    def take(self, rows: np.ndarray) -> np.ndarray:
        if self._map is None:
            self._map = np.memmap(self.path, np.float32, "r", shape=(self.rows, self.dim)) if self.rows else np.zeros((0, self.dim), np.float32)
        return np.asarray(self._map[rows])

    def save(self, directory: Path, chunk: int = 65536) -> None:
        ids, rows = self.live()
        with open(directory / _RAW, "wb") as fh:
            for start in range(0, len(rows), chunk):
                fh.write(self.take(rows[start : start + chunk]).tobytes())
        np.save(directory / _RAW_IDS, ids)

    @classmethod
    def load(cls, directory: Path, dim: int) -> "RawVectors":
        self = cls(dim)
        shutil.copyfile(directory / _RAW, self.path)  # a private copy: saved snapshots stay read-only
        self.row_ids = np.load(directory / _RAW_IDS).astype(np.int64)
        self.alive = np.ones(len(self.row_ids), bool)
        return self


class IVFPQOptions(IVFOptions):
    m: int | None = pydantic.Field(None, ge=1, description="PQ bytes per vector (a divisor of dim); None = dim/8, e.g. 96 for 768-d")
    rerank: int = pydantic.Field(100, ge=0, description="PQ candidates re-scored with their exact vectors (0: PQ scores only)")


class IVFPQIndex(IVFIndex):
    """Approximate, compressed (IVF-PQ) with exact re-ranking from a memory-mapped file; knobs
    ``nprobe`` and ``rerank``. About ``m + 16`` bytes of memory per vector."""

    id = "faiss-ivfpq"
    Options = IVFPQOptions

    def __init__(self, dim: int, **options: Any) -> None:
        super().__init__(dim, **options)
        self.raw = RawVectors(self.dim)

    @property
    def code_bytes(self) -> int:
        """PQ bytes per vector: ``m``, or the largest divisor of dim not above dim/8."""
        want = self.options.m or max(1, self.dim // 8)
        return max(d for d in range(1, min(want, self.dim) + 1) if self.dim % d == 0)

    def add(self, vectors: Any, ids: Any) -> None:
        x, ids = self._check_add(vectors, ids)
        if not len(x):
            return
        self.raw.append(x, ids)
        self.index.add_with_ids(x, ids)
        want = self._wanted_nlist(len(self))
        if want is not None and (not self.trained or (self.options.nlist is None and want >= self.options.retrain_growth * self.nlist)):
            self.train(want)

    def remove(self, ids: Any) -> int:
        ids = _as_ids(ids)
        gone = int(self.index.remove_ids(ids))
        self.raw.forget(ids)
        return gone

    def ids(self) -> np.ndarray:
        return self.raw.live()[0]

    def train(self, nlist: int | None = None, chunk: int = 65536) -> None:
        """(Re)train the coarse lists and the PQ codebooks on the stored vectors and re-encode them."""
        ids, rows = self.raw.live()
        nlist = nlist or self._wanted_nlist(len(ids)) or 16
        if len(ids) < nlist:
            raise ValueError(f"{self.id}: {len(ids)} vectors cannot train {nlist} lists")
        # 40 points a list for k-means, at least 20k for the 256-centroid PQ codebooks (more costs
        # minutes: each of the m sub-quantisers is a k-means of its own)
        sample = np.sort(np.random.default_rng(1234).choice(rows, min(len(rows), max(40 * nlist, 20_000)), replace=False))
        quantizer = faiss.IndexFlatIP(self.dim)
        ivf = faiss.IndexIVFPQ(quantizer, self.dim, nlist, self.code_bytes, 8, faiss.METRIC_INNER_PRODUCT)
        ivf.cp.seed = 1234
        ivf.pq.cp.niter = 15  # of 25: codebooks converge early, and exact re-ranking absorbs the rest
        ivf.cp.verbose = ivf.verbose = False
        ivf.train(np.ascontiguousarray(self.raw.take(sample)))
        for start in range(0, len(rows), chunk):
            ivf.add_with_ids(np.ascontiguousarray(self.raw.take(rows[start : start + chunk])), ids[start : start + chunk])
        self.index = ivf

    def search(self, queries: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        if not self.trained or self.options.rerank == 0:
            return super().search(queries, k)
        q = self.prepare(queries)
        k = int(k)
        if k < 1:
            raise ValueError(f"{self.id}: k must be at least 1, got {k}")
        depth = max(k, self.options.rerank)
        with _few_threads(len(q)):
            _, candidates = self.index.search(q, depth, params=self._search_params())
        scores = np.full((len(q), k), -np.inf, np.float32)
        out = np.full((len(q), k), -1, np.int64)
        for i, row_ids in enumerate(candidates):
            row_ids = row_ids[row_ids >= 0]
            if not len(row_ids):
                continue
            rows = self.raw.rows_for(row_ids)
            order = np.argsort(rows)  # read the file forwards
            exact = np.empty(len(rows), np.float32)
            exact[order] = self.raw.take(rows[order]) @ q[i]
            top = np.argsort(-exact, kind="stable")[:k]
            scores[i, : len(top)], out[i, : len(top)] = exact[top], row_ids[top]
        return scores, out

    def memory_bytes(self) -> int:
        """Bytes this index keeps in memory (the exact vectors stay on disk): PQ codes and ids in the
        lists, coarse centroids, PQ codebooks, and the row table (id + live flag, plus its sorted
        lookup copy: 25 bytes a vector)."""
        n = len(self)
        table = 25 * self.raw.rows
        if not self.trained:
            return n * (4 * self.dim + 8) + table
        return n * (self.index.code_size + 8) + self.index.nlist * self.dim * 4 + self.dim * 256 * 4 + table

    def save(self, directory: str | os.PathLike) -> None:
        super().save(directory)
        self.raw.save(Path(directory))

    def _restore(self, index: Any, meta: dict[str, Any], directory: Path) -> Any:
        self.raw = RawVectors.load(directory, self.dim)
        return index  # no direct map: remove_ids scans the lists (rare), saving ~48 bytes a vector
