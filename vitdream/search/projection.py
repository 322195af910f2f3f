"""2-D map of an image index: PCA (NumPy) or UMAP (if ``umap-learn`` is installed)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class IndexMap:
    """The drawn map: ``figure`` (matplotlib), 2-D ``points`` of ``ids``, the query's point and neighbours."""

    figure: Any
    method: str
    ids: np.ndarray
    points: np.ndarray
    query_point: np.ndarray | None = None
    neighbours: list[Any] = field(default_factory=list)

    def png(self, dpi: int = 100) -> bytes:
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
        return buffer.getvalue()

    def _repr_png_(self) -> bytes:
        return self.png()

    def save(self, path: str) -> None:
        self.figure.savefig(path, bbox_inches="tight")


class PCA2:
    """Two principal axes of a set of vectors (centred SVD)."""

    def fit(self, x: np.ndarray) -> "PCA2":
        self.mean = x.mean(axis=0)
        _, _, vt = np.linalg.svd(x - self.mean, full_matrices=False)
        self.axes = vt[:2].T if vt.shape[0] >= 2 else np.pad(vt.T, ((0, 0), (0, 2 - vt.shape[0])))
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (np.atleast_2d(x) - self.mean) @ self.axes


def _projector(method: str, n: int, seed: int) -> tuple[str, Any]:
    if method not in ("auto", "pca", "umap"):
        raise ValueError(f"method must be 'auto', 'pca' or 'umap' (got {method!r})")
    if method in ("auto", "umap") and n >= 16:
        try:
            import umap  # type: ignore[import-not-found]

            return "umap", umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), random_state=seed)
        except ImportError:
            if method == "umap":
                raise ImportError("method='umap' needs umap-learn: pip install umap-learn") from None
    return "pca", PCA2()


def draw_map(index: Any, query: Any = None, k: int = 10, method: str = "auto", max_points: int = 5000, seed: int = 0) -> IndexMap:
    """Project the index's embeddings to 2-D and draw them; the query (star) and its ``k``
    neighbours (ringed) stand out. Large indexes are subsampled to ``max_points`` (neighbours kept).
    The fitted projection is cached on the index until it changes."""
    from matplotlib.figure import Figure

    if not len(index):
        raise ValueError("the index is empty: nothing to map")
    hits, qvec = [], None
    if query is not None:
        qvec = index.query_vector(query)
        hits = index.search_vectors(qvec[None], k)[0]
    ids_all = index.table.ids
    cache = index._map_cache
    if cache is None or cache["method_asked"] != method or cache["max_points"] != max_points:
        rng = np.random.default_rng(seed)
        chosen = np.sort(rng.choice(len(ids_all), max_points, replace=False)) if len(ids_all) > max_points else np.arange(len(ids_all))
        name, projector = _projector(method, len(chosen), seed)
        vectors = index.table.vectors[chosen]
        points = projector.fit_transform(vectors) if name == "umap" else projector.fit(vectors).transform(vectors)
        cache = {"method_asked": method, "max_points": max_points, "method": name, "projector": projector, "ids": ids_all[chosen], "points": np.asarray(points)}
        index._map_cache = cache
    ids, points, projector = cache["ids"], cache["points"], cache["projector"]
    hit_ids = [h.id for h in hits]
    missing = [i for i in hit_ids if i not in set(ids.tolist())]
    if missing:  # neighbours left out by the subsample: project them too
        extra = projector.transform(np.vstack([index.table.vector(i) for i in missing]))
        ids, points = np.concatenate([ids, missing]), np.vstack([points, extra])

    figure = Figure(figsize=(6, 5))
    ax = figure.add_subplot()
    ax.scatter(points[:, 0], points[:, 1], s=6, c="#9aa5b1", alpha=0.6, linewidths=0, label=f"{len(index)} images")
    query_point = None
    if hits:
        where = {int(i): r for r, i in enumerate(ids.tolist())}
        nb = points[[where[i] for i in hit_ids]]
        ax.scatter(nb[:, 0], nb[:, 1], s=40, facecolors="none", edgecolors="#d9480f", linewidths=1.5, label=f"{len(hits)} nearest")
        query_point = np.asarray(projector.transform(qvec[None]))[0]
        ax.scatter([query_point[0]], [query_point[1]], marker="*", s=220, c="#1c7ed6", edgecolors="black", label="query", zorder=3)
    ax.set_title(f"{cache['method'].upper()} map of the index")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(loc="best", fontsize=8)
    figure.tight_layout()
    return IndexMap(figure, cache["method"], ids, points, query_point, hits)
