"""The FAISS vector-index kinds: recall against exact search, add/remove, knobs, persistence."""

from __future__ import annotations

import numpy as np
import pytest

from vitdream.components import create, get_entry
from vitdream.errors import OptionsError

KINDS = ("faiss-flat", "faiss-hnsw", "faiss-ivf", "faiss-ivfpq")


@pytest.fixture(autouse=True, scope="module")
def one_faiss_thread():
    """OpenMP spin-waits badly on a shared, oversubscribed CPU: one thread is faster here."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def unit(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / truth.shape[1] for a, b in zip(found, truth)]))


@pytest.fixture(scope="module")
def data():
    base, queries = unit(3000, 32, 0), unit(200, 32, 1)
    ids = np.arange(10_000, 13_000)
    flat = create("indexes", "faiss-flat", dim=32)
    flat.add(base, ids)
    _, truth = flat.search(queries, 10)
    return base, queries, ids, truth


def test_flat_is_exact_cosine(data):
    base, queries, ids, truth = data
    sims = queries @ base.T
    expected = ids[np.argsort(-sims, axis=1)[:, :10]]
    assert (truth == expected).all()


def test_hnsw_recall_and_ef_search_knob(data):
    base, queries, ids, truth = data
    index = create("indexes", "faiss-hnsw", dim=32)
    index.add(base, ids)
    assert recall_at(index.search(queries, 10)[1], truth) >= 0.95  # default ef_search
    index.options.ef_search = 10
    low = recall_at(index.search(queries, 10)[1], truth)
    index.options.ef_search = 256
    assert recall_at(index.search(queries, 10)[1], truth) >= 0.99 > low


def test_ivf_trains_itself_and_nprobe_trades_recall(data):
    base, queries, ids, truth = data
    index = create("indexes", "faiss-ivf", dim=32)
    index.add(base[:500], ids[:500])  # below 39 x 16: stays exact, untrained
    assert not index.trained
    index.add(base[500:], ids[500:])
    assert index.trained and index.nlist == 64  # 3000 vectors: 4*sqrt(n) -> 253 -> capped so 39*nlist <= n
    index.options.nprobe = 1
    low = recall_at(index.search(queries, 10)[1], truth)
    index.options.nprobe = 32
    assert recall_at(index.search(queries, 10)[1], truth) >= 0.95 > low


def test_ivfpq_is_small_in_memory_and_exact_after_re_ranking():
    from vitdream.testing.vectors import clustered

    base, queries = clustered(4000, 64, intrinsic=8, clusters=50, seed=0), clustered(100, 64, intrinsic=8, clusters=50, seed=1)
    flat = create("indexes", "faiss-flat", dim=64)
    flat.add(base, np.arange(4000))
    true_scores, truth = flat.search(queries, 10)
    index = create("indexes", "faiss-ivfpq", dim=64, nprobe=8)
    index.add(base[:2000], np.arange(2000))
    index.add(base[2000:], np.arange(2000, 4000))
    assert index.trained and index.nlist == 32 and index.code_bytes == 8 and len(index) == 4000  # trained at 2000
    assert index.memory_bytes() <= 4000 * 64 * 4 / 4  # 8-byte codes + ids + table vs 256 bytes a vector
    scores, found = index.search(queries, 10)
    assert recall_at(found, truth) >= 0.9
    hit = found == truth  # where the same neighbour is found, its score is the exact cosine
    np.testing.assert_allclose(scores[hit], true_scores[hit], rtol=1e-5, atol=1e-6)
    index.options.rerank = 0  # PQ scores only: approximate scores, lower recall
    pq_scores, pq_found = index.search(queries, 10)
    assert recall_at(pq_found, truth) < recall_at(found, truth)
    assert np.abs(pq_scores[:, 0] - true_scores[:, 0]).max() > 1e-3


def test_ivfpq_retrains_from_its_exact_vectors_as_it_grows():
    x = unit(11_000, 16, 3)
    index = create("indexes", "faiss-ivfpq", dim=16)
    index.add(x[:700], np.arange(700))
    assert index.nlist == 16
    index.add(x[700:], np.arange(700, 11_000))
    assert index.nlist == 256 and len(index) == 11_000 and set(index.ids().tolist()) == set(range(11_000))
    assert (index.search(x[:50], 1)[1][:, 0] == np.arange(50)).mean() >= 0.9


def test_ivf_auto_nlist_follows_size():
    from vitdream.search.faiss_index import auto_nlist

    assert auto_nlist(600) is None
    assert auto_nlist(624) == 16
    assert auto_nlist(100_000) == 1024
    assert auto_nlist(10_000_000) == 8192


def test_ivf_retrains_as_it_grows():
    x = unit(11_000, 16, 3)
    index = create("indexes", "faiss-ivf", dim=16)
    index.add(x[:700], np.arange(700))
    assert index.nlist == 16
    index.add(x[700:], np.arange(700, 11_000))  # auto nlist now 256 >= 4 x 16: retrained
    assert index.nlist == 256 and len(index) == 11_000
    assert set(index.ids().tolist()) == set(range(11_000))


@pytest.mark.parametrize("kind", KINDS)
def test_add_remove_for_every_kind(kind):
    x = unit(1000, 16, 4)
    index = create("indexes", kind, dim=16)
    index.add(x, np.arange(1000))
    assert index.remove([3, 4, 5, 99_999]) == 3
    assert index.remove([3]) == 0  # already gone
    assert len(index) == 997
    _, ids = index.search(x[:10], 10)
    assert not np.isin(ids, [3, 4, 5]).any()
    assert (ids[:, 0] == [0, 1, 2, -1, -1, -1, 6, 7, 8, 9]).sum() >= 6  # the rest find themselves
    index.add(x[3:5], [3, 4])  # a removed id may come back
    assert len(index) == 999
    assert index.search(x[3], 1)[1][0, 0] == 3
    with pytest.raises(ValueError, match="already in the index"):
        index.add(x[:1], [0])


def test_hnsw_tombstones_are_filtered_then_rebuilt():
    x = unit(500, 16, 5)
    index = create("indexes", "faiss-hnsw", dim=16, rebuild_fraction=0.2)
    index.add(x, np.arange(500))
    index.remove(np.arange(75))
    assert len(index.tombstones) == 75 and index.rebuilds == 0 and len(index) == 425
    scores, ids = index.search(x[:75], 10)
    assert (ids >= 75).all() and np.isfinite(scores).all()  # full result lists despite tombstones
    index.remove(np.arange(75, 125))  # 125 > 20% of 500: rebuilt from live vectors
    assert index.rebuilds == 1 and not index.tombstones and index.index.ntotal == 375 == len(index)
    assert index.search(x[300], 1)[1][0, 0] == 300


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip_is_identical(kind, tmp_path):
    x, q = unit(1000, 24, 6), unit(50, 24, 7)
    index = create("indexes", kind, dim=24)
    index.add(x, np.arange(1000) * 7)
    index.remove([0, 7, 14])
    index.save(tmp_path / "idx")
    again = get_entry("indexes", kind).load().load(tmp_path / "idx")
    s1, i1 = index.search(q, 10)
    s2, i2 = again.search(q, 10)
    assert (i1 == i2).all() and np.array_equal(s1, s2) and len(again) == len(index) == 997 and (kind not in ("faiss-ivf", "faiss-ivfpq") or again.trained)
    assert again.options == index.options


def test_missing_neighbours_are_minus_one(tmp_path):
    index = create("indexes", "faiss-flat", dim=4)
    index.add(unit(3, 4, 8), [1, 2, 3])
    scores, ids = index.search(unit(1, 4, 9), 5)
    assert ids[0, 3:].tolist() == [-1, -1] and np.isneginf(scores[0, 3:]).all()


@pytest.mark.parametrize("kind", KINDS)
def test_bad_vectors_and_options_are_clear_errors(kind):
    index = create("indexes", kind, dim=8)
    with pytest.raises(ValueError, match=r"expected \(n, 8\)"):
        index.add(np.zeros((2, 5), np.float32), [0, 1])
    with pytest.raises(ValueError, match="NaN"):
        index.search(np.full((1, 8), np.nan, np.float32), 3)
    with pytest.raises(ValueError, match="2 vectors but 1 ids"):
        index.add(unit(2, 8, 0), [0])
    with pytest.raises(OptionsError, match="unknown option 'metric'"):
        create("indexes", kind, dim=8, metric="l2")


def test_knob_values_are_validated():
    index = create("indexes", "faiss-hnsw", dim=8)
    with pytest.raises(Exception, match="ef_search"):
        index.options.ef_search = 0
