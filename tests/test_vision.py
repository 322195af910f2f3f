"""Loading, classification and embeddings of the transformers-vit backend, on tiny random models."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

import vitdream as vd
from vitdream.errors import ImageLoadError, ModelLoadError, UnknownIdError, VitdreamError
from vitdream.testing.vit import pickle_only, tiny_model, tiny_vit


def _images(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [
        Image.fromarray(rng.integers(0, 256, (int(rng.integers(20, 90)), int(rng.integers(20, 90)), 3), dtype=np.uint8))
        for _ in range(n)
    ]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("vit-models")
    return {arch: tiny_model(arch, root / arch) for arch in ("vit", "deit", "beit")}


@pytest.fixture(scope="module")
def clf(models):
    return vd.load_classifier(models["vit"])


@pytest.mark.parametrize("arch", ["vit", "deit", "beit"])
def test_classify_matches_transformers_pipeline(models, arch):
    from transformers import AutoImageProcessor, AutoModelForImageClassification, pipeline

    path = models[arch]
    images = _images(6, seed=1)
    ours = vd.load_classifier(path).classify(images, top_k=3)
    pipe = pipeline(
        "image-classification",
        model=AutoModelForImageClassification.from_pretrained(path),
        image_processor=AutoImageProcessor.from_pretrained(path, backend="pil"),
    )
    theirs = pipe(images, top_k=3)
    assert ours.failures == []
    for mine, ref in zip(ours, theirs):
        assert [p.label for p in mine] == [r["label"] for r in ref]
        np.testing.assert_allclose([p.score for p in mine], [r["score"] for r in ref], atol=1e-4)


def test_single_image_in_any_form_gives_the_same_predictions(clf, tmp_path):
    image = _images(1, seed=2)[0]
    path = tmp_path / "one.png"
    image.save(path)
    from_pil = clf.classify(image, top_k=2)
    assert len(from_pil) == 2 and all(isinstance(p, vd.base.Prediction) for p in from_pil)
    assert from_pil == clf.classify(path, top_k=2) == clf.classify(np.asarray(image), top_k=2)
    assert from_pil == clf.classify(str(path), top_k=2)
    assert from_pil[0].score >= from_pil[1].score
    assert len(clf.classify(image, top_k=50)) == len(clf.labels)  # capped at num_labels, like the pipeline


def test_batch_keeps_order_and_reports_bad_images(clf, tmp_path):
    images = _images(5, seed=3)
    paths = []
    for i, im in enumerate(images):
        paths.append(tmp_path / f"{i}.jpg")
        im.save(paths[-1], quality=95)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg at all")
    (tmp_path / "empty.png").write_bytes(b"")
    sources = [paths[0], tmp_path / "broken.jpg", paths[1], paths[2], tmp_path / "empty.png", paths[3], paths[4]]
    clf.options.batch_size = 2
    try:
        result = clf.classify(sources, top_k=1)
    finally:
        clf.options.batch_size = 16
    assert len(result) == 7 and result[1] is None and result[4] is None
    assert [(f.index, f.source) for f in result.failures] == [(1, str(sources[1])), (4, str(sources[4]))]
    assert "empty" in result.failures[1].reason and "not an image" in result.failures[0].reason
    expected = [clf.classify(p, top_k=1) for p in paths]
    got = [result[i] for i in (0, 2, 3, 5, 6)]
    assert [[p.label for p in ps] for ps in got] == [[p.label for p in ps] for ps in expected]
    np.testing.assert_allclose([ps[0].score for ps in got], [ps[0].score for ps in expected], atol=1e-6)
    with pytest.raises(ImageLoadError, match="broken.jpg"):
        clf.classify(tmp_path / "broken.jpg")
    folder_result = clf.classify(tmp_path)  # a folder: sorted files, bad ones reported
    assert len(folder_result) == 7 and len(folder_result.failures) == 2


def test_embed_layers_and_pools_select_what_they_claim(clf):
    import torch

    images = _images(3, seed=4)
    pixels = clf.preprocessor.normalize([clf.preprocessor.resize_crop(im) for im in images])
    with torch.no_grad():
        out = clf.model.vit(pixel_values=pixels, output_hidden_states=True)
    last = clf.embed(images)
    assert last.dtype == np.float32 and last.shape == (3, 32)
    np.testing.assert_allclose(last, out.last_hidden_state[:, 0].numpy(), atol=1e-5)
    # after the final LayerNorm, not the raw last block
    assert not np.allclose(last, out.hidden_states[-1][:, 0].numpy(), atol=1e-3)
    for layer in (0, 1, 2):
        np.testing.assert_allclose(clf.embed(images, layer=layer), out.hidden_states[layer][:, 0].numpy(), atol=1e-5)
    mean = clf.embed(images, layer=1, pool="mean")
    np.testing.assert_allclose(mean, out.hidden_states[1][:, 1:].mean(1).numpy(), atol=1e-5)
    unit = clf.embed(images, pool="mean", normalize=True)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
    assert clf.describe() == {**clf.describe(), "layer": -1, "pool": "mean", "normalize": True, "dim": 32}
    assert clf.describe(layer=2)["layer"] == 2 and clf.describe()["model"] == str(clf.options.model)
    with pytest.raises(VitdreamError, match="pool"):
        clf.embed(images, pool="max")
    with pytest.raises(VitdreamError, match="layer"):
        clf.embed(images, layer=3)


def test_embed_single_and_batch_with_failures(clf):
    images = _images(3, seed=5)
    single = clf.embed(images[0])
    assert single.shape == (1, 32)
    batch = clf.embed([images[0], b"\x00garbage", images[1], images[2]])
    assert batch.shape == (3, 32) and list(batch.indices) == [0, 2, 3]
    assert [f.index for f in batch.failures] == [1]
    np.testing.assert_allclose(batch[0], single[0], atol=1e-5)
    emb = vd.load_embedder(clf.options.model)
    np.testing.assert_allclose(emb.embed(images), clf.embed(images), atol=1e-6)


def test_deit_mean_pool_skips_cls_and_distillation_tokens(models):
    import torch

    emb = vd.load_embedder(models["deit"])
    images = _images(2, seed=6)
    pixels = emb.preprocessor.normalize([emb.preprocessor.resize_crop(im) for im in images])
    with torch.no_grad():
        hidden = emb.model.base_model(pixel_values=pixels).last_hidden_state
    assert hidden.shape[1] == 16 + 2
    np.testing.assert_allclose(emb.embed(images, pool="mean"), hidden[:, 2:].mean(1).numpy(), atol=1e-5)


def test_pickle_weights_refused_without_opt_in(tmp_path):
    path = pickle_only(tiny_vit(tmp_path / "legacy"))
    with pytest.raises(ModelLoadError, match="allow_pickle=True"):
        vd.load_classifier(path)
    clf = vd.load_classifier(path, allow_pickle=True)
    assert len(clf.classify(_images(1)[0], top_k=1)) == 1


def test_offline_hub_id_fails_fast_with_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(ModelLoadError, match="not in the local Hugging Face cache"):
        vd.load_classifier("someone/no-such-vit-model")
    assert time.monotonic() - start < 10


def test_bad_references_and_options_are_explained(tmp_path, models):
    with pytest.raises(ModelLoadError, match="no such model directory"):
        vd.load_classifier("./does/not/exist")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="config.json"):
        vd.load_classifier(tmp_path / "empty")
    with pytest.raises(vd.errors.OptionsError, match="batch_sise"):
        vd.load_classifier(models["vit"], batch_sise=4)
    with pytest.raises(UnknownIdError, match="transformers-vit"):
        vd.load_classifier(models["vit"], backend="nope")


def test_device_and_dtype_overrides(models):
    import torch

    clf = vd.load_classifier(models["vit"], device="cpu", dtype="bfloat16")
    assert clf.device.type == "cpu" and clf.dtype == torch.bfloat16
    preds = clf.classify(_images(1)[0], top_k=1)
    assert 0.0 < preds[0].score <= 1.0
    assert clf.embed(_images(1)[0]).dtype == np.float32
    with pytest.raises(ModelLoadError, match="dtype"):
        vd.load_classifier(models["vit"], dtype="float99")


def test_hub_id_found_in_the_hf_cache_while_offline(tmp_path, monkeypatch, models):
    import shutil

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo = tmp_path / "hub" / "models--acme--tiny-vit"
    snapshot = repo / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(models["vit"], snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(snapshot.name)
    clf = vd.load_classifier("acme/tiny-vit", cache_dir=str(tmp_path / "hub"))
    assert clf.model_dir == snapshot and clf.describe()["model"] == "acme/tiny-vit"
    image = _images(1, seed=7)[0]
    assert clf.classify(image) == vd.load_classifier(models["vit"]).classify(image)
