"""The Qdrant plugin, tested as its author would: through vitdream's plugin machinery."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image


@pytest.fixture
def host(monkeypatch):
    from vitdream import plugins

    monkeypatch.setenv("VITDREAM_LOAD_PLUGINS", "qdrant")
    plugins.reset()
    yield plugins.get_host()
    plugins.reset()


def unit(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_discovered_through_its_entry_point(host):
    info = {i.name: i for i in host.report()}["qdrant"]
    assert info.source == "entry point" and info.error is None
    assert info.registered["indexes"] == ["qdrant"]


def test_same_answers_as_exact_faiss(host):
    from vitdream.components import create

    x, q = unit(300, 16, 0), unit(5, 16, 1)
    ids = np.arange(300) * 3
    qdrant, flat = create("indexes", "qdrant", dim=16), create("indexes", "faiss-flat", dim=16)
    qdrant.add(x, ids)
    flat.add(x, ids)
    (s1, i1), (s2, i2) = qdrant.search(q, 7), flat.search(q, 7)
    assert (i1 == i2).all() and np.allclose(s1, s2, atol=1e-5)
    assert len(qdrant) == 300


def test_remove_save_load(host, tmp_path):
    from vitdream.components import create, get_entry

    x = unit(40, 8, 2)
    index = create("indexes", "qdrant", dim=8)
    index.add(x, np.arange(40))
    assert index.remove([3, 4, 999]) == 2 and len(index) == 38
    scores, ids = index.search(x[3], 40)
    assert 3 not in ids and ids[0, -2:].tolist() == [-1, -1] and np.isneginf(scores[0, -1])
    index.save(tmp_path / "q")
    again = get_entry("indexes", "qdrant").load().load(tmp_path / "q")
    assert len(again) == 38
    (s1, i1), (s2, i2) = index.search(x[:5], 6), again.search(x[:5], 6)
    assert (i1 == i2).all() and np.allclose(s1, s2)


def test_swapped_in_without_changing_notebook_code(host, monkeypatch, tmp_path):
    """The same two notebook lines, a different backend: chosen by the environment."""
    import vitdream as vd
    from vitdream.testing.vit import tiny_vit

    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    paths = []
    for i in range(6):
        paths.append(str(folder / f"{i}.png"))
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(paths[-1])
    embedder = vd.load_embedder(tiny_vit(tmp_path / "vit"))

    def notebook(out):
        idx = vd.build_index(folder, embedder=embedder, out=out)
        return idx, [h.path for h in vd.load_index(out).search(paths[2], k=3)]

    faiss_idx, faiss_hits = notebook(tmp_path / "a.vdindex")
    monkeypatch.setenv("VITDREAM_INDEX_KIND", "qdrant")
    qdrant_idx, qdrant_hits = notebook(tmp_path / "b.vdindex")
    assert faiss_idx.kind == "faiss-flat" and qdrant_idx.kind == "qdrant"
    assert type(vd.load_index(qdrant_idx.path).vectors).__name__ == "QdrantIndex"
    assert qdrant_hits == faiss_hits and qdrant_hits[0] == paths[2]
