"""FAISS vector indexes: exact (``faiss-flat``), graph (``faiss-hnsw``) and inverted lists (``faiss-ivf``).

All three use inner product on L2-normalised vectors, i.e. cosine similarity, and int64 ids.

Removal costs:

- flat: native ``remove_ids``, O(n).
- HNSW: a graph node cannot be deleted, so removed ids become *tombstones*: they are filtered
  out during the graph walk (a FAISS ``IDSelector``, so results stay full) and still used as
  stepping stones. When tombstones exceed ``rebuild_fraction`` of the stored vectors the graph
  is rebuilt from the live vectors -- the cost of building an index of that size again.
- IVF: native ``remove_ids`` (hash-table direct map), O(n / nlist) per id.
"""

from __future__ import annotations

import json
import math
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import faiss
import numpy as np
import pydantic

from vitdream.base import Options, VectorIndex

_META = "index.json"
_FAISS = "index.faiss"


class FaissIndex(VectorIndex):
    """Shared plumbing: input checks, id bookkeeping, save/load. Subclasses build ``self.index``."""

    def __init__(self, dim: int, **options: Any) -> None:
        super().__init__(dim=dim, **options)
        if self.dim < 1:
            raise ValueError(f"{self.id}: dimension must be positive, got {self.dim}")
        self.index = self._new_index()

    # -- to implement ------------------------------------------------------------------
    def _new_index(self) -> Any:
        raise NotImplementedError

    def _search_params(self) -> Any:
        return None

    # -- public surface ------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.index.ntotal)

    def ids(self) -> np.ndarray:
        """Every live id (int64), in storage order."""
        return faiss.vector_to_array(self.index.id_map).astype(np.int64)

    def add(self, vectors: Any, ids: Any) -> None:
        x, ids = self._check_add(vectors, ids)
        if len(x):
            self.index.add_with_ids(x, ids)

    def remove(self, ids: Any) -> int:
        return int(self.index.remove_ids(_as_ids(ids)))

    def search(self, queries: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = self.prepare(queries)
        k = int(k)
        if k < 1:
            raise ValueError(f"{self.id}: k must be at least 1, got {k}")
        if len(self) == 0 or len(q) == 0:
            return np.full((len(q), k), -np.inf, np.float32), np.full((len(q), k), -1, np.int64)
        params = self._search_params()
        with _few_threads(len(q)):
            scores, ids = self.index.search(q, k, params=params) if params is not None else self.index.search(q, k)
        scores[ids < 0] = -np.inf
        return scores, ids

    def prepare(self, vectors: Any) -> np.ndarray:
        """(n, dim) float32, C-contiguous, finite, L2-normalised; a clear error otherwise."""
        x = np.asarray(vectors, dtype=np.float32)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"{self.id}: vectors have shape {x.shape}, expected (n, {self.dim}) -- dimension {self.dim}")
        if not np.isfinite(x).all():
            raise ValueError(f"{self.id}: vectors contain NaN or infinite values")
        x = np.ascontiguousarray(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12))
        return x

    def save(self, directory: str | os.PathLike) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self._index_to_save(), str(directory / _FAISS))
        meta = {"kind": self.id, "dim": self.dim, "options": self.options.model_dump(), **self._extra_meta(directory)}
        (directory / _META).write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "FaissIndex":
        directory = Path(directory)
        try:
            meta = json.loads((directory / _META).read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{directory}: not a saved {cls.id} index (no {_META})") from None
        if meta.get("kind") != cls.id:
            raise ValueError(f"{directory}: holds a {meta.get('kind')!r} index, not {cls.id!r}")
        self = cls(dim=meta["dim"], **meta["options"])
        self.index = self._restore(faiss.read_index(str(directory / _FAISS)), meta, directory)
        return self

    # -- helpers -------------------------------------------------------------------------
    def _index_to_save(self) -> Any:
        return self.index

    def _extra_meta(self, directory: Path) -> dict[str, Any]:
        return {}

    def _restore(self, index: Any, meta: dict[str, Any], directory: Path) -> Any:
        return index

    def _check_add(self, vectors: Any, ids: Any) -> tuple[np.ndarray, np.ndarray]:
        x, ids = self.prepare(vectors), _as_ids(ids)
        if len(ids) != len(x):
            raise ValueError(f"{self.id}: {len(x)} vectors but {len(ids)} ids")
        if (ids < 0).any():
            raise ValueError(f"{self.id}: ids must be non-negative")
        if len(np.unique(ids)) != len(ids):
            raise ValueError(f"{self.id}: duplicate ids in one add()")
        clash = ids[np.isin(ids, self.ids())]
        if len(clash):
            raise ValueError(f"{self.id}: ids already in the index: {clash[:5].tolist()}")
        return x, ids


@contextmanager
def _few_threads(n_queries: int) -> Iterator[None]:
    """Run a handful of queries on one OpenMP thread: the parallel region's start-up and
    barrier cost more than the search itself, and on a busy CPU a second thread waits for a
    time slice (tens of ms). Batches keep every thread."""
    if n_queries >= 16:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _as_ids(ids: Any) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))


# ---------------------------------------------------------------------------------------------
class FlatOptions(Options):
    pass


class FlatIndex(FaissIndex):
    """Exact cosine search (inner product on L2-normalised vectors)."""

    id = "faiss-flat"
    Options = FlatOptions

    def _new_index(self) -> Any:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))


# ---------------------------------------------------------------------------------------------
class HNSWOptions(Options):
    m: int = pydantic.Field(32, ge=4, le=256, description="graph degree (memory and build time grow with it)")
    ef_construction: int = pydantic.Field(80, ge=8, description="build-time search width")
    ef_search: int = pydantic.Field(128, ge=1, description="query-time search width: recall vs speed")
    rebuild_fraction: float = pydantic.Field(0.2, gt=0, le=1, description="rebuild when this share is tombstoned")


class HNSWIndex(FaissIndex):
    """Approximate graph search (HNSW); removals are tombstones with an automatic rebuild."""

    id = "faiss-hnsw"
    Options = HNSWOptions

    def __init__(self, dim: int, **options: Any) -> None:
        super().__init__(dim, **options)
        self.tombstones: set[int] = set()
        self.rebuilds = 0

    def _new_index(self) -> Any:
        hnsw = faiss.IndexHNSWFlat(self.dim, self.options.m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = self.options.ef_construction
        return faiss.IndexIDMap2(hnsw)

    def __len__(self) -> int:
        return int(self.index.ntotal) - len(self.tombstones)

    def ids(self) -> np.ndarray:
        stored = super().ids()
        return stored[~np.isin(stored, self._tombstone_array())] if self.tombstones else stored

    def add(self, vectors: Any, ids: Any) -> None:
        if self.tombstones and np.isin(_as_ids(ids), self._tombstone_array()).any():
            self.rebuild()  # a removed id is coming back: drop its old node first
        super().add(vectors, ids)

    def remove(self, ids: Any) -> int:
        stored = faiss.vector_to_array(self.index.id_map)
        wanted = np.unique(_as_ids(ids))
        hit = wanted[np.isin(wanted, stored)]
        new = [i for i in hit.tolist() if i not in self.tombstones]
        self.tombstones.update(new)
        if self.index.ntotal and len(self.tombstones) > self.options.rebuild_fraction * self.index.ntotal:
            self.rebuild()
        return len(new)

    def rebuild(self) -> None:
        """Rebuild the graph from the live vectors, dropping tombstones (costs a full build)."""
        stored_ids = faiss.vector_to_array(self.index.id_map).astype(np.int64)
        vectors = faiss.downcast_index(self.index.index).reconstruct_n(0, self.index.ntotal)
        keep = ~np.isin(stored_ids, self._tombstone_array())
        self.index = self._new_index()
        if keep.any():
            self.index.add_with_ids(np.ascontiguousarray(vectors[keep]), stored_ids[keep])
        self.tombstones.clear()
        self.rebuilds += 1

    def _search_params(self) -> Any:
        params = faiss.SearchParametersHNSW()
        params.efSearch = self.options.ef_search
        if self.tombstones:
            self._selector = faiss.IDSelectorNot(faiss.IDSelectorBatch(self._tombstone_array()))
            params.sel = self._selector  # keep a reference: FAISS does not own it
        return params

    def _tombstone_array(self) -> np.ndarray:
        return np.fromiter(self.tombstones, dtype=np.int64, count=len(self.tombstones))

    def _extra_meta(self, directory: Path) -> dict[str, Any]:
        return {"tombstones": sorted(self.tombstones)}

    def _restore(self, index: Any, meta: dict[str, Any], directory: Path) -> Any:
        self.tombstones = set(meta.get("tombstones", []))
        return index


# ---------------------------------------------------------------------------------------------
def auto_nlist(n: int) -> int | None:
    """Inverted lists for ``n`` vectors, autofaiss-style: ~4*sqrt(n), a power of two, with at
    least 39 training vectors per list; None (stay exact) below 39*16 = 624 vectors."""
    if n < 39 * 16:
        return None
    nlist = 2 ** int(math.log2(4 * math.sqrt(n)))
    while nlist > 16 and 39 * nlist > n:
        nlist //= 2
    return max(nlist, 16)


class IVFOptions(Options):
    nlist: int | None = pydantic.Field(None, ge=1, description="inverted lists; None = chosen by size (auto_nlist)")
    nprobe: int | None = pydantic.Field(None, ge=1, description="lists visited per query; None = nlist/8")
    retrain_growth: float = pydantic.Field(
        4.0, ge=1.5, description="with auto nlist, retrain when the size-based nlist reaches this multiple of the trained one"
    )


class IVFIndex(FaissIndex):
    """Approximate inverted-list search (IVF-Flat), trained automatically once there are enough vectors.

    Below the training threshold (``auto_nlist``, or 39 x ``nlist``) it searches exactly; the first
    ``add`` that crosses it trains k-means on everything stored and moves the vectors into
    inverted lists. With auto ``nlist`` it retrains as the collection grows (see ``retrain_growth``).
    """

    id = "faiss-ivf"
    Options = IVFOptions

    def _new_index(self) -> Any:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))  # exact until trained

    @property
    def trained(self) -> bool:
        return isinstance(self.index, faiss.IndexIVF)

    @property
    def nlist(self) -> int | None:
        return int(self.index.nlist) if self.trained else None

    def ids(self) -> np.ndarray:
        if not self.trained:
            return super().ids()
        return np.concatenate([self._list_ids(i) for i in range(self.index.nlist)] or [np.zeros(0, np.int64)])

    def add(self, vectors: Any, ids: Any) -> None:
        super().add(vectors, ids)
        want = self._wanted_nlist(len(self))
        if want is not None and (not self.trained or (self.options.nlist is None and want >= self.options.retrain_growth * self.nlist)):
            self.train(want)

    def train(self, nlist: int | None = None) -> None:
        """(Re)train k-means on every stored vector with ``nlist`` lists and move the vectors over."""
        ids, vectors = self._all()
        nlist = nlist or self._wanted_nlist(len(ids)) or 16
        if len(ids) < nlist:
            raise ValueError(f"{self.id}: {len(ids)} vectors cannot train {nlist} lists")
        quantizer = faiss.IndexFlatIP(self.dim)
        ivf = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.cp.seed = 1234
        ivf.train(vectors)
        ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
        ivf.add_with_ids(vectors, ids)
        self.index = ivf

    def _wanted_nlist(self, n: int) -> int | None:
        if self.options.nlist is not None:
            return self.options.nlist if n >= 39 * self.options.nlist else None
        return auto_nlist(n)

    def _search_params(self) -> Any:
        if not self.trained:
            return None
        params = faiss.SearchParametersIVF()
        params.nprobe = min(self.options.nprobe or max(1, self.index.nlist // 8), self.index.nlist)
        return params

    def _all(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.trained:
            ids = super().ids()
            return ids, faiss.downcast_index(self.index.index).reconstruct_n(0, self.index.ntotal)
        id_parts, vec_parts = [], []
        invlists = self.index.invlists
        for i in range(self.index.nlist):
            size = invlists.list_size(i)
            if size:
                id_parts.append(self._list_ids(i))
                codes = faiss.rev_swig_ptr(invlists.get_codes(i), size * self.index.code_size)
                vec_parts.append(np.frombuffer(bytes(codes), dtype=np.float32).reshape(size, self.dim))
        if not id_parts:
            return np.zeros(0, np.int64), np.zeros((0, self.dim), np.float32)
        return np.concatenate(id_parts), np.ascontiguousarray(np.concatenate(vec_parts))

    def _list_ids(self, i: int) -> np.ndarray:
        size = self.index.invlists.list_size(i)
        if not size:
            return np.zeros(0, np.int64)
        return faiss.rev_swig_ptr(self.index.invlists.get_ids(i), size).astype(np.int64).copy()

    def _restore(self, index: Any, meta: dict[str, Any], directory: Path) -> Any:
        if isinstance(index, faiss.IndexIVF):  # read_index returns the concrete class
            index.set_direct_map_type(faiss.DirectMap.Hashtable)
        return index
