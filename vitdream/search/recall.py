"""What an approximate index's knob buys: recall@k against exact search on a sample of its own images."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

KNOBS = {"faiss-hnsw": "ef_search", "faiss-ivf": "nprobe", "faiss-ivfpq": "nprobe"}


@dataclass(frozen=True)
class RecallSample:
    """recall@k of the index as configured now, over ``queries`` stored images (each query's own
    image left out), and the median single-query time in ms."""

    recall: float
    k: int
    queries: int
    p50_ms: float


def knob_of(index: Any) -> tuple[str | None, list[int]]:
    """The search knob of ``index``'s kind and sensible values for it (None, [] for exact kinds)."""
    name = KNOBS.get(index.kind)
    if name is None:
        return None, []
    if name == "nprobe":
        nlist = getattr(index.vectors, "nlist", None) or 1
        values = [v for v in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048) if v < nlist] + [nlist]
        return name, values
    return name, [8, 16, 32, 64, 128, 256, 512]


def sample_recall(index: Any, k: int = 10, queries: int = 50, seed: int = 0) -> RecallSample:
    """recall@k of ``index`` (an ImageIndex) on ``queries`` of its stored images vs exact cosine search."""
    vectors, ids = index.table.vectors, index.table.ids
    n = len(ids)
    if n < 2:
        return RecallSample(1.0, k, 0, 0.0)
    k = min(k, n - 1)
    pick = np.random.default_rng(seed).choice(n, min(queries, n), replace=False)
    row_of = {int(i): r for r, i in enumerate(ids.tolist())}
    hits, times = 0, []
    for row in pick.tolist():
        exact = vectors @ vectors[row]
        exact[row] = -np.inf
        truth_bar = np.partition(exact, -k)[-k]  # k-th best exact score: ties count as hits
        start = time.perf_counter()
        _, found = index.vectors.search(vectors[row][None], k + 1)
        times.append(time.perf_counter() - start)
        found = [i for i in found[0].tolist() if i >= 0 and i != ids[row]][:k]
        rows = [row_of.get(i) for i in found]
        hits += sum(1 for r in rows if r is not None and exact[r] >= truth_bar - 1e-5)
    return RecallSample(hits / (k * len(pick)), k, len(pick), float(np.median(times) * 1e3))
