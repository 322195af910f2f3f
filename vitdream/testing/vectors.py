"""Vector data sets with structure, for testing and benchmarking approximate indexes.

Uniform random unit vectors are the worst case for every approximate index (all points nearly
equidistant). Real embeddings are clustered and live near a low-dimensional manifold;
:func:`clustered` imitates that with a documented generator.
"""

from __future__ import annotations

import numpy as np


def clustered(
    n: int,
    dim: int = 768,
    *,
    intrinsic: int = 24,
    clusters: int = 1000,
    spread: float = 1.0,
    noise: float = 0.05,
    seed: int = 0,
    basis_seed: int = 0,
) -> np.ndarray:
    """``n`` L2-normalised float32 vectors of dimension ``dim`` with intrinsic dimension ~``intrinsic``.

    Generator: a fixed random orthonormal basis ``B`` (dim x intrinsic) and ``clusters`` centres
    ``c_j ~ N(0, I_intrinsic)`` (both from ``basis_seed``, so queries drawn with another ``seed``
    come from the same distribution); each vector picks a centre ``j`` with Zipf-like weights
    (``1 / sqrt(rank)``: some clusters much larger than others), then
    ``x = B (c_j + spread * z) + noise * e`` with ``z ~ N(0, I_intrinsic)``, ``e ~ N(0, I_dim)``,
    and is normalised. With the defaults about 96% of the variance lies in the 24-d subspace and
    the clusters overlap (their radius, ~sqrt(intrinsic) * spread, is close to their spacing).
    """
    structure = np.random.default_rng(basis_seed)
    basis, _ = np.linalg.qr(structure.standard_normal((dim, intrinsic)))
    centres = structure.standard_normal((clusters, intrinsic))
    weights = 1.0 / np.sqrt(np.arange(1, clusters + 1))
    weights = structure.permutation(weights / weights.sum())
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 65536):  # in blocks: 1M x 768 never needs a float64 copy
        m = min(65536, n - start)
        latent = centres[rng.choice(clusters, m, p=weights)] + spread * rng.standard_normal((m, intrinsic))
        block = latent @ basis.T + noise * rng.standard_normal((m, dim))
        out[start : start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out
