"""ImageIndex end to end with a tiny ViT: build, bad files, query forms, persistence, crash
safety, embedder checks, resume, third-party kinds, map, thumbnails, widget and CLI."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from datetime import datetime, timezone

import numpy as np
import pytest
from PIL import Image

import vitdream as vd
from vitdream.search import Hit, ImageIndex, IndexMismatchError


@pytest.fixture(autouse=True, scope="module")
def one_faiss_thread():
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # OpenMP spin-waits badly on an oversubscribed CPU
    yield
    faiss.omp_set_num_threads(before)


def _saved(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def noise_image(path, seed: int, size: int = 40) -> str:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return str(path)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny ViT, its embedder, a folder of 14 images (two of them in formats or under names a listing by extension would miss), 3 bad image files, 2 files that are not images and a hidden one, and an index of it."""
    from vitdream.testing.vit import tiny_vit

    root = tmp_path_factory.mktemp("search")
    model = tiny_vit(root / "vit", seed=0)
    embedder = vd.load_embedder(model)
    photos = root / "photos"
    (photos / "sub").mkdir(parents=True)
    good = [noise_image(photos / f"img{i:02d}.png", i) for i in range(10)]
    good += [noise_image(photos / "sub" / f"deep{i}.jpg", 100 + i) for i in range(2)]
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (photos / "empty.jpg").write_bytes(b"")
    (photos / "notes.gif").write_text("hello")  # not an image, whatever its extension
    (photos / "README").write_text("a folder of noise")
    Image.new("RGB", (30, 30), (9, 99, 199)).save(photos / "targa.tga")  # extensions the old listing ignored
    (photos / "icon.dat").write_bytes(_saved(Image.new("RGB", (30, 30), (250, 200, 10)), "ICO"))  # lying extension
    (photos / "cut.png").write_bytes(_saved(Image.new("RGB", (40, 40), (1, 2, 3)), "PNG")[:60])
    (photos / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # hidden: not even looked at
    good += [str(photos / "icon.dat"), str(photos / "targa.tga")]
    index = vd.build_index(photos, embedder=embedder, kind="faiss-flat")
    return {"root": root, "model": model, "embedder": embedder, "photos": photos, "good": good, "index": index}


def test_build_indexes_good_files_and_reports_bad_ones(world):
    index = world["index"]
    assert len(index) == 14 and sorted(index.paths) == sorted(world["good"])
    bad = {os.path.basename(f.source): (f.kind, f.reason) for f in index.failures}
    assert bad == {"broken.png": ("corrupt", bad["broken.png"][1]), "empty.jpg": ("empty", "empty file (0 bytes)"),
                   "cut.png": ("truncated", bad["cut.png"][1])}
    assert "damaged PNG file" in bad["broken.png"][1] and "truncated PNG file" in bad["cut.png"][1]
    assert sorted(os.path.basename(f.source) for f in index.skipped) == ["README", "notes.gif"]
    report = index.last_report
    assert report.summary() == {"indexed": 14, "added": 14, "updated": 0, "unchanged": 0, "failed": 3,
                                "failed_by_kind": {"corrupt": 1, "empty": 1, "truncated": 1}, "skipped_not_images": 2,
                                "seconds": report.summary()["seconds"]}
    assert "14 indexed" in str(report) and "2 skipped (not images)" in str(report)
    for path in world["good"]:
        top = index.search(path, top_k=3)[0]
        assert top.path == path and top.score > 0.999


def test_every_query_form_finds_the_same_image(world):
    index, path = world["index"], world["good"][4]
    expected = [h.path for h in index.search(path, top_k=5)]
    image = Image.open(path)
    raw = open(path, "rb").read()
    for query in (image, raw, np.asarray(image), index.search(path, top_k=1)[0], index.item(index.search(path, top_k=1)[0].id).id):
        assert [h.path for h in index.search(query, top_k=5)] == expected
    vector = index.query_vector(path)
    assert [h.path for h in index.search(vector, top_k=5)] == expected
    assert [[h.path for h in hits] for hits in index.search_many([path, path], top_k=5)] == [expected, expected]
    with pytest.raises(IndexMismatchError, match="dimension 7.*dimension-32"):
        index.search(np.ones(7, np.float32))
    with pytest.raises(vd.errors.ImageLoadError, match="no such file"):
        index.search(world["root"] / "missing.png")


@pytest.mark.parametrize("kind", ["faiss-hnsw", "faiss-ivf", "faiss-ivfpq"])
def test_rebuild_as_another_kind_then_save_load_round_trip(world, kind, tmp_path):
    index = vd.build_index(world["good"][:8], embedder=world["embedder"], kind="faiss-flat")
    exact = [[h.path for h in hits] for hits in index.search_many(world["good"][:8], top_k=4)]
    index.rebuild(kind, **({"ef_search": 64} if kind == "faiss-hnsw" else {}))  # no re-embedding
    assert index.kind == kind and type(index.vectors).id == kind
    knob = "ef_search" if kind == "faiss-hnsw" else "nprobe"
    index.configure(**{knob: 3})
    assert getattr(index.vectors.options, knob) == 3
    with pytest.raises(vd.errors.OptionsError, match=knob):
        index.configure(**{knob: 0})
    index.configure(**{knob: 64})
    assert [[h.path for h in hits] for hits in index.search_many(world["good"][:8], top_k=4)] == exact  # tiny: exact anyway
    index.save(tmp_path / "idx.vdindex")
    loaded = vd.load_index(tmp_path / "idx.vdindex")
    assert loaded.kind == kind and loaded.vectors.options == index.vectors.options
    for path in world["good"][:8]:
        assert loaded.search(path, top_k=4) == index.search(path, top_k=4)  # identical paths, scores, ids
    manifest = json.loads(next((tmp_path / "idx.vdindex").glob("v*/manifest.json")).read_text())
    assert manifest["embedder"]["weights"] == world["embedder"].describe()["weights"]
    assert {"dim": 32, "count": 8, "kind": kind, "normalize": True, "layer": -1, "pool": "cls"}.items() <= manifest.items()
    assert manifest["vitdream_version"] == vd.__version__


def test_loaded_index_reloads_its_embedder_for_image_queries(world, tmp_path):
    world["index"].save(tmp_path / "a.vdindex")
    loaded = vd.load_index(tmp_path / "a.vdindex")
    assert loaded._embedder is None  # lazy: vector/id queries need no model
    assert loaded.search(world["good"][0], top_k=1)[0].path == world["good"][0]
    assert loaded.search(Image.open(world["good"][1]), top_k=1)[0].path == world["good"][1]


def test_mismatched_embedder_is_refused(world, tmp_path):
    from vitdream.testing.vit import tiny_vit

    world["index"].save(tmp_path / "a.vdindex")
    other_weights = vd.load_embedder(tiny_vit(tmp_path / "other", seed=1))
    with pytest.raises(IndexMismatchError, match="embedder mismatch.*differs in: weights"):
        vd.load_index(tmp_path / "a.vdindex", embedder=other_weights)
    wider = vd.load_embedder(tiny_vit(tmp_path / "wide", hidden_size=48))
    with pytest.raises(IndexMismatchError, match="dim"):
        vd.load_index(tmp_path / "a.vdindex", embedder=wider)
    with pytest.raises(IndexMismatchError):
        vd.build_index(world["good"][:2], embedder=wider, out=tmp_path / "a.vdindex")
    moved = vd.load_embedder(world["model"])  # same weights, same space: accepted
    assert len(vd.load_index(tmp_path / "a.vdindex", embedder=moved)) == 14


def test_resume_extends_without_re_embedding(world, tmp_path):
    folder = tmp_path / "grow"
    folder.mkdir()
    paths = [noise_image(folder / f"a{i}.png", 200 + i) for i in range(5)]
    out = tmp_path / "grow.vdindex"
    first = vd.build_index(folder, embedder=world["embedder"], out=out)
    old_id = first.search(paths[0], top_k=1)[0].id
    new = [noise_image(folder / f"b{i}.png", 300 + i) for i in range(3)]
    noise_image(folder / "a0.png", 999, size=48)  # edited: new size and mtime
    again = vd.build_index(folder, embedder=world["embedder"], out=out)
    report = again.last_report
    assert (report.added, report.updated, report.unchanged) == (3, 1, 4)
    assert len(again) == 8 and len(vd.load_index(out)) == 8
    top = again.search(paths[0], top_k=1)[0]
    assert top.path == paths[0] and top.id != old_id and top.score > 0.999
    assert again.search(new[2], top_k=1)[0].path == new[2]


def test_near_duplicates_are_paired(world, tmp_path):
    import shutil

    copy = shutil.copy(world["good"][3], tmp_path / "copy.png")
    index = vd.build_index(world["good"] + [str(copy)], embedder=world["embedder"])
    pairs = index.duplicates(threshold=0.999)
    assert [sorted([a.path, b.path]) for a, b in pairs] == [sorted([world["good"][3], str(copy)])]
    assert pairs[0][1].score > 0.999


def test_checkpoints_while_building(world, tmp_path):
    index = ImageIndex(world["embedder"], "faiss-flat", chunk_size=4)
    index.add(world["good"][:10], checkpoint=tmp_path / "ck.vdindex", checkpoint_seconds=0)
    # one snapshot per chunk of 4: a build interrupted after chunk 2 would resume from 8 images
    assert (tmp_path / "ck.vdindex" / "CURRENT").read_text().strip() == "v000003"
    assert len(vd.load_index(tmp_path / "ck.vdindex")) == 10


def test_kill_9_mid_build_then_the_same_call_resumes_without_re_embedding(world, tmp_path):
    folder, out = tmp_path / "big", tmp_path / "big.vdindex"
    folder.mkdir()
    paths = [noise_image(folder / f"p{i:02d}.png", 400 + i) for i in range(14)]
    script = textwrap.dedent(
        """
        import os, signal, sys
        import vitdream as vd
        from vitdream.search import ImageIndex, storage
        saves = []
        real = storage.write_snapshot
        def save_then_die(root, fill):
            done = real(root, fill)
            saves.append(done)
            if len(saves) == 2:
                os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no atexit, nothing flushed
            return done
        storage.write_snapshot = save_then_die
        index = ImageIndex(vd.load_embedder(sys.argv[1]), "faiss-hnsw", chunk_size=4)
        index.add(sys.argv[2], checkpoint=sys.argv[3], checkpoint_seconds=0)
        """
    )
    result = subprocess.run([sys.executable, "-c", script, str(world["model"]), str(folder), str(out)], capture_output=True, text=True, timeout=120)
    assert result.returncode == -9, result.stderr
    assert len(vd.load_index(out)) == 8  # two chunks of 4 were saved before the kill
    embedded = []
    embedder = world["embedder"]
    original = embedder.embed
    try:
        embedder.embed = lambda images, **kw: (embedded.extend(images), original(images, **kw))[1]
        index = vd.build_index(folder, embedder=embedder, out=out)
    finally:
        del embedder.embed
    report = index.last_report
    assert (report.unchanged, report.added, len(index)) == (8, 6, 14)
    assert sorted(embedded) == sorted(paths)[8:]  # only what the killed run had not saved
    assert index.kind == "faiss-hnsw" and index.search(paths[3], top_k=1)[0].path == paths[3]


def test_remove_by_path_and_id(world):
    index = vd.build_index(world["good"], embedder=world["embedder"])
    victim = index.search(world["good"][2], top_k=1)[0]
    assert index.remove([world["good"][1], victim.id, "/nope.png"]) == 2
    assert len(index) == 12 and world["good"][1] not in index
    assert all(h.path not in (world["good"][1], world["good"][2]) for h in index.search(world["good"][2], top_k=10))


@pytest.mark.parametrize("crash_at", ["writing the table", "before the snapshot rename", "writing CURRENT"])
def test_crash_during_save_leaves_the_previous_index_loadable(world, tmp_path, crash_at):
    path = tmp_path / "safe.vdindex"
    world["index"].save(path)
    before = [h.path for h in vd.load_index(path).search(world["index"].query_vector(world["good"][0]), top_k=14)]
    script = textwrap.dedent(
        f"""
        import os, sys
        import vitdream as vd
        from vitdream.search import storage, table
        crash_at = {crash_at!r}
        def die(*a, **k):
            os._exit(17)
        if crash_at == "writing the table":
            real = table.ItemTable.save
            def half(self, folder):
                (folder / "items.json").write_text('{{"id": [1, 2')
                die()
            table.ItemTable.save = half
        elif crash_at == "before the snapshot rename":
            storage.fsync_tree = die
        else:
            def torn(path, text):
                (path.parent / (".CURRENT.tmp-" + str(os.getpid()))).write_text(text[:2])
                die()
            storage.atomic_write_text = torn
        index = vd.load_index(sys.argv[1])
        index.remove(index.paths[:5])
        index.save()
        """
    )
    result = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 17, result.stderr
    survivor = vd.load_index(path)
    assert len(survivor) == 14
    assert [h.path for h in survivor.search(survivor.query_vector(world["good"][0]), top_k=14)] == before
    survivor.remove(survivor.paths[:1])
    survivor.save()  # the next save works and sweeps the leftovers
    assert len(vd.load_index(path)) == 13
    assert sorted(p.name for p in path.iterdir())[0] == "CURRENT" and len(list(path.iterdir())) == 2


def test_a_third_party_index_kind_works_by_id(world, tmp_path, fresh_plugins):
    """Any VectorIndex a plugin registers can back an ImageIndex, saved and loaded by kind id."""
    from vitdream.base import VectorIndex

    class TinyExact(VectorIndex):
        """brute force, written as a plugin author would"""

        id = "tiny-exact"

        def __init__(self, dim=None, **options):
            super().__init__(dim, **options)
            self.x, self.ids = np.zeros((0, self.dim), np.float32), np.zeros(0, np.int64)

        def add(self, vectors, ids):
            self.x, self.ids = np.vstack([self.x, vectors]), np.concatenate([self.ids, ids])

        def remove(self, ids):
            keep = ~np.isin(self.ids, ids)
            gone = int((~keep).sum())
            self.x, self.ids = self.x[keep], self.ids[keep]
            return gone

        def __len__(self):
            return len(self.ids)

        def search(self, queries, k):
            sims = np.atleast_2d(queries) @ self.x.T
            order = np.argsort(-sims, axis=1)[:, :k]
            return np.take_along_axis(sims, order, 1), self.ids[order]

        def save(self, directory):
            os.makedirs(directory, exist_ok=True)
            np.savez(os.path.join(directory, "tiny.npz"), x=self.x, ids=self.ids)

        @classmethod
        def load(cls, directory):
            data = np.load(os.path.join(directory, "tiny.npz"))
            index = cls(data["x"].shape[1])
            index.x, index.ids = data["x"], data["ids"]
            return index

    class Plugin:
        @vd.hookimpl
        def register_indexes(self, register):
            register(TinyExact)

    fresh_plugins.register_plugin(Plugin(), name="tiny-plugin")
    index = vd.build_index(world["good"], embedder=world["embedder"], kind="tiny-exact")
    expected = world["index"].search(world["good"][3], top_k=5)
    assert [h.path for h in index.search(world["good"][3], top_k=5)] == [h.path for h in expected]  # ids follow input order
    index.remove([world["good"][0]])
    index.save(tmp_path / "tiny.vdindex")
    loaded = vd.load_index(tmp_path / "tiny.vdindex")
    assert isinstance(loaded.vectors, TinyExact) and len(loaded) == 13
    assert loaded.search(world["good"][3], top_k=3) == index.search(world["good"][3], top_k=3)


def test_environment_swaps_the_default_kind(world, monkeypatch):
    monkeypatch.setenv("VITDREAM_INDEX_KIND", "faiss-hnsw")
    monkeypatch.setenv("VITDREAM_INDEX_OPTIONS", '{"ef_search": 33}')
    index = vd.build_index(world["good"][:3], embedder=world["embedder"])
    assert index.kind == "faiss-hnsw" and index.vectors.options.ef_search == 33
    monkeypatch.setenv("VITDREAM_INDEX_KIND", "no-such-kind")
    with pytest.raises(vd.errors.UnknownIdError, match="faiss-flat"):
        vd.build_index(world["good"][:1], embedder=world["embedder"])


def test_map_highlights_query_and_neighbours(world):
    index = world["index"]
    m = index.map(query=world["good"][5], top_k=4)
    assert m.method == "pca" and m.points.shape == (14, 2)
    assert [h.path for h in m.neighbours] == [h.path for h in index.search(world["good"][5], top_k=4)]
    assert np.isfinite(m.query_point).all()
    # the query is an indexed image: its star sits on its own point
    own = m.points[list(m.ids).index(m.neighbours[0].id)]
    assert np.allclose(own, m.query_point, atol=1e-4)
    assert m.png().startswith(b"\x89PNG") and m._repr_png_().startswith(b"\x89PNG")


def test_thumbnails_are_lazy_and_cached(world, tmp_path):
    from vitdream.search.thumbnails import ThumbnailCache

    cache = ThumbnailCache(tmp_path / "thumbs")
    first = cache.get(world["good"][0], 24)
    assert cache.get(world["good"][0], 24) == first and cache.made == 1
    assert Image.open(io.BytesIO(first)).size == (24, 24)
    again = ThumbnailCache(tmp_path / "thumbs")
    assert again.get(world["good"][0], 24) == first and again.made == 0  # from disk
    assert cache.get(world["photos"] / "broken.png") is None


def test_widget_upload_click_and_k(world, tmp_path, monkeypatch):
    monkeypatch.setenv("VITDREAM_CACHE", str(tmp_path / "cache"))
    index = world["index"]
    widget = vd.widgets.search(index, k=3)
    assert "14 indexed" in widget.report.value and "3 failed (corrupt 1, empty 1, truncated 1)" in widget.report.value
    assert "2 skipped (not images)" in widget.report.value and "cut.png" in widget.report.value
    raw = open(world["good"][6], "rb").read()
    widget.upload.value = ({"name": "q.png", "type": "image/png", "size": len(raw), "content": memoryview(raw), "last_modified": datetime.now(timezone.utc)},)
    assert len(widget.hits) == 3 and widget.hits[0].path == world["good"][6]
    widget.wait()
    assert widget.query_image.format == "jpeg" and all(card.image.format == "jpeg" for card in widget.grid.children)
    assert "0.99" in widget.grid.children[0].caption.value or "1.000" in widget.grid.children[0].caption.value

    clicked = widget.grid.children[1].hit
    widget.grid.children[1].button.click()  # "more like this"
    assert isinstance(widget._query, Hit) and widget.hits[0].path == clicked.path
    widget.k_slider.value = 5
    assert len(widget.grid.children) == 5 == len(widget.hits)

    widget.path.value = world["good"][2]
    widget.go.click()
    assert widget.hits[0].path == world["good"][2]
    widget.upload.value = ({"name": "x.png", "type": "image/png", "size": 3, "content": memoryview(b"bad"), "last_modified": datetime.now(timezone.utc)},)
    assert widget.error and "not an image" in widget.status.value and widget.hits[0].path == world["good"][2]
    widget.path.value = world["good"][2]
    widget.go.click()
    widget.map_toggle.value = True
    assert bytes(widget.map_image.value).startswith(b"\x89PNG")


def _vector_only_index(kind: str, vectors: np.ndarray, **options) -> ImageIndex:
    from vitdream.search.table import Item

    index = ImageIndex(None, kind, index_options=options)
    ids = np.arange(len(vectors))
    index.table.add([Item(int(i), f"/virtual/{i}.png", 0, 0) for i in ids], vectors)
    index._ensure_vectors(vectors.shape[1]).add(vectors, ids)
    return index


def test_sample_recall_matches_an_independent_exact_check():
    from vitdream.search.recall import knob_of, sample_recall

    x = np.random.default_rng(0).standard_normal((3000, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    index = _vector_only_index("faiss-ivf", x, nprobe=1)
    assert knob_of(index) == ("nprobe", [1, 2, 4, 8, 16, 32, 64])
    low = sample_recall(index, k=10, queries=40, seed=3)
    rows = np.random.default_rng(3).choice(3000, 40, replace=False)  # the same sample
    expected = []
    for r in rows:
        exact = x @ x[r]
        exact[r] = -np.inf
        truth = set(np.argsort(-exact)[:10].tolist())
        found = [i for i in index.vectors.search(x[r][None], 11)[1][0].tolist() if i != r][:10]
        expected.append(len(truth & set(found)) / 10)
    assert low.queries == 40 and low.recall == pytest.approx(np.mean(expected)) and low.recall < 0.8
    index.configure(nprobe=64)  # every list: exact
    assert sample_recall(index, k=10, queries=40, seed=3).recall == 1.0


def test_widget_knob_slider_shows_the_recall_it_buys(world):
    index = vd.build_index(world["good"], embedder=world["embedder"], kind="faiss-hnsw")
    widget = vd.widgets.search(index, k=3)
    assert widget.knob.description == "ef_search" and widget.knob.value == 128 and widget.knob.layout.display != "none"
    assert "recall@3 <b>1.000</b> vs exact (14 sample queries)" in widget.recall.value
    widget.query(world["good"][1])
    widget.knob.value = 8
    assert index.vectors.options.ef_search == 8 and widget.hits[0].path == world["good"][1]
    flat = vd.widgets.search(world["index"])
    assert flat.knob.layout.display == "none" and "exact search" in flat.recall.value


def test_cli_build_and_search(world, tmp_path):
    from click.testing import CliRunner

    from vitdream.cli import build_cli

    runner = CliRunner()
    out = tmp_path / "cli.vdindex"
    result = runner.invoke(build_cli(), ["index", "build", str(world["photos"]), "--out", str(out), "--model", str(world["model"]), "--kind", "faiss-hnsw", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["count"] == 14 and report["kind"] == "faiss-hnsw" and len(report["failures"]) == 3
    assert report["failed_by_kind"] == {"corrupt": 1, "empty": 1, "truncated": 1} and report["skipped_not_images"] == 2
    text = runner.invoke(build_cli(), ["index", "build", str(world["photos"]), "--out", str(out), "--model", str(world["model"])])
    assert "14 indexed (0 added, 0 re-embedded, 14 unchanged), 3 failed" in text.output and "2 skipped (not images)" in text.output
    result = runner.invoke(build_cli(), ["index", "search", str(out), world["good"][7], "-k", "3", "--json"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.output)
    assert len(hits) == 3 and hits[0]["path"] == world["good"][7] and hits[0]["score"] > 0.999
    result = runner.invoke(build_cli(), ["index", "search", str(out), str(world["photos"] / "broken.png")])
    assert result.exit_code == 1 and "broken.png" in result.output and "Traceback" not in result.output


def test_importing_the_plugin_stays_light():
    code = "import sys, vitdream, vitdream.default_plugins.faiss_index; assert not {'faiss', 'torch'} & set(sys.modules), sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
