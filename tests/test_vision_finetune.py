"""Fine-tuning on folder/<class>/*.jpg and the int8 / ONNX speed-ups, on a tiny random ViT."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import vitdream as vd
from vitdream.testing.vit import tiny_vit


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tiny_vit(tmp_path_factory.mktemp("base") / "vit")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for name, colour in (("red", (230, 30, 30)), ("blue", (30, 30, 230))):
        (root / name).mkdir()
        for i in range(8):
            noisy = np.clip(np.array(colour) + rng.integers(-50, 50, (24, 28, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(noisy).save(root / name / f"{i}.jpg")
    (root / "red" / "corrupt.jpg").write_bytes(b"\xff\xd8 not really")
    return root


@pytest.fixture(scope="module")
def run(base, folder, tmp_path_factory):
    events = []
    result = vd.finetune(
        folder, base, output_dir=tmp_path_factory.mktemp("run"), epochs=3, batch_size=4, lr=3e-3,
        freeze_layers=1, accumulate_grad_batches=2, warmup=3, val_fraction=0.25, progress=False,
        on_event=events.append,
    )
    return result, events


def test_export_loads_in_plain_transformers_and_matches_vitdream(run, folder):
    import torch
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    result, _ = run
    model = AutoModelForImageClassification.from_pretrained(result.model_dir).eval()
    processor = AutoImageProcessor.from_pretrained(result.model_dir, backend="pil")
    assert model.config.id2label == {0: "blue", 1: "red"} and result.classes == ["blue", "red"]
    assert (result.model_dir / "model.safetensors").exists() and not (result.model_dir / "pytorch_model.bin").exists()
    image = Image.open(folder / "blue" / "3.jpg").convert("RGB")
    with torch.no_grad():
        probs = model(**processor(images=image, return_tensors="pt")).logits.softmax(-1)[0]
    ours = result.load().classify(image, top_k=2)
    assert ours[0].label == model.config.id2label[int(probs.argmax())]
    assert abs(ours[0].score - float(probs.max())) < 1e-4


def test_frozen_layers_stay_put_and_the_rest_trains(run, base):
    from safetensors.torch import load_file

    result, _ = run
    before, after = load_file(base / "model.safetensors"), load_file(result.model_dir / "model.safetensors")
    frozen = [k for k in after if k.startswith("vit.embeddings") or ".layer.0." in k or ".layers.0." in k]
    trained = [k for k in after if (".layer.1." in k or ".layers.1." in k) and k.endswith("weight")]
    assert frozen and trained
    assert all(np.array_equal(before[k].numpy(), after[k].numpy()) for k in frozen)
    assert any(not np.array_equal(before[k].numpy(), after[k].numpy()) for k in trained)
    assert after["classifier.weight"].shape == (2, 32)


def test_live_metrics_schedule_accumulation_and_bad_images(run):
    result, events = run
    steps = [e for e in events if e["type"] == "step"]
    epochs = [e for e in events if e["type"] == "epoch"]
    assert events == result.history
    # 13 train images (1 corrupt, 4 held out) -> 4 batches of 4 -> 2 optimizer steps per epoch
    assert [e["step"] for e in steps] == [1, 2, 3, 4, 5, 6]
    lrs = [e["lr"] for e in steps]
    assert lrs[0] < lrs[1] < lrs[2] == pytest.approx(3e-3) and lrs[-1] < lrs[3] < lrs[2]  # 3 warm-up steps, then cosine
    assert len(epochs) == 3 and all(0.0 <= e["val_acc"] <= 1.0 and e["val_loss"] > 0 for e in epochs)
    assert result.best_val_accuracy == max(e["val_acc"] for e in epochs)
    assert result.best_checkpoint and result.best_checkpoint.endswith(".ckpt")
    assert [f.source.rsplit("/", 1)[-1] for f in result.failures] == ["corrupt.jpg"]


def test_finetune_explains_bad_folders(tmp_path, base):
    (tmp_path / "only").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "only" / "a.png")
    with pytest.raises(vd.errors.VitdreamError, match="at least 2"):
        vd.finetune(tmp_path, base, output_dir=tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(vd.errors.VitdreamError, match="without images: empty"):
        vd.finetune(tmp_path, base, output_dir=tmp_path / "out")


@pytest.mark.parametrize("kind", ["int8", "onnx", "onnx-int8"])
def test_speedups_report_size_speed_and_agreement(base, folder, kind, tmp_path, monkeypatch):
    monkeypatch.setenv("VITDREAM_CACHE", str(tmp_path))
    clf = vd.load_classifier(base)
    images = [str(p) for p in sorted(folder.rglob("*.jpg"))]
    fp32 = clf.classify(images, top_k=1)
    report = clf.speed_up(kind, images)
    assert report.kind == kind and report.n_images == 16  # the corrupt file is skipped
    assert report.size_mb > 0 and report.fp32_size_mb > 0 and report.images_per_s > 0 and report.fp32_images_per_s > 0
    assert 0.0 <= report.top1_agreement <= 1.0 and kind in str(report)
    fast = clf.classify(images, top_k=1)
    assert [f.index for f in fast.failures] == [f.index for f in fp32.failures]
    if kind == "onnx":  # same maths in fp32: same answers
        assert report.top1_agreement == 1.0
        ok = [i for i, p in enumerate(fp32) if p is not None]
        np.testing.assert_allclose([fast[i][0].score for i in ok], [fp32[i][0].score for i in ok], atol=1e-4)
        assert list(tmp_path.glob("onnx/*.onnx"))  # cached for next time
        reloaded = vd.load_classifier(base, speedup="onnx")
        assert reloaded.classify(images[0], top_k=1)[0].label == fp32[0][0].label
    clf.speed_up(None)
    assert clf.runner is None


def test_live_curves_widget_draws_from_the_run_events(run):
    from vitdream.widgets.finetune import FinetuneCurves

    _, events = run
    curves = FinetuneCurves(throttle_s=3600)
    for event in events:
        curves(event)
    assert len(curves.steps) == 6 and len(curves.epochs) == 3
    assert bytes(curves.plot.value).startswith(b"\x89PNG")  # epoch events force a redraw
    assert "step 6" in curves.status.value and "val acc" in curves.status.value


def test_vit_finetune_is_a_trainer_run_and_watched_like_dreambooth(base, folder, tmp_path):
    from vitdream.components import create

    train = vd.widgets.train
    run = create("trainers", "vit-finetune", folder, base, output_dir=tmp_path / "run", epochs=2, batch_size=4)
    run.progress = False
    dashboard = train(run)
    stop_at_two = lambda e: e["type"] == "step" and e["step"] == 2 and run.stop(wait=False)  # noqa: E731
    run.subscribe(stop_at_two)
    run.start()
    assert run.running
    run.wait(120)
    assert run.state == "stopped" and run.error is None and run.history()[-1]["step"] == 2
    dashboard.render()
    planned = run.log.of_type("start")[0]["max_steps"]
    assert dashboard.progress.value == 2 and dashboard.progress.max == planned == 8  # 4 batches of 4 a epoch, 2 epochs
    assert "stopped" in dashboard.status.value and bytes(dashboard.plot.value).startswith(b"\x89PNG")
    run.unsubscribe(stop_at_two)
    run.fit()  # again, to the end
    assert run.state == "finished" and run.history()[-1]["step"] == 8
    dashboard.render()
    assert dashboard.progress.value == 8 and "val acc" in dashboard.status.value and len(dashboard.epochs) == 2
    exported = run.export(tmp_path / "copy")
    assert vd.load_classifier(exported).labels == ["blue", "red"] == run.result.classes
