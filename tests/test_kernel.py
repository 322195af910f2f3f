"""The kernel (``vitdream.base``) end to end: a minimal third-party implementation of each plugin kind,
registered through the hooks, works through the API, its widget and the CLI exactly like a built-in.

Each class below implements only the one small method its base class asks for.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import vitdream as vd
from vitdream.atomic import atomic_dir
from vitdream.base import Classifier, Embedder, Generator, Options, RunEnd, Sampler, Trainer, VectorIndex
from vitdream.errors import GenerationCancelled

COLOURS = {"red": (230, 20, 20), "green": (20, 230, 20), "blue": (20, 20, 230)}


# -- the plugin: one minimal implementation per kind --------------------------------------------
class MeanColour(Classifier, Embedder):
    """Mean colour of an image: classifies red/green/blue, embeds the mean RGB."""

    id = "mean-colour"
    tasks = frozenset({"classify", "embed"})
    labels = ["red", "green", "blue"]
    embedding_dim = 3

    @classmethod
    def accepts(cls, model):
        return model == "mean-colour"

    def _prepare(self, image):
        return np.asarray(image.convert("RGB"), np.float32).reshape(-1, 3).mean(0) / 255.0

    def _scores(self, prepared):
        means = np.stack(prepared)
        return means / means.sum(axis=1, keepdims=True)

    def _embed(self, prepared, layer, pool):
        return np.stack(prepared)


class SolidColour(Generator):
    """Flat images in the colour the prompt names; image i of seed s is (s + i) levels darker."""

    id = "solid"
    previews = 0

    @classmethod
    def accepts(cls, model):
        return model == "solid"

    def _generate(self, prompt, settings, *, callback, cancel):
        seed, steps, size = settings["seed"] or 0, settings["steps"], settings["height"] or 16
        colours = np.array([[max(0, c - seed - i) for c in COLOURS[prompt.split()[0]]] for i in range(settings["num_images"])])
        for step in range(1, steps + 1):
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled(f"cancelled at step {step}")
            if callback is not None:
                callback({"step": step, "num_steps": steps, "latents": colours * step / steps})
        return [Image.new("RGB", (size, size), tuple(int(v) for v in c)) for c in colours]

    def preview(self, latents):
        type(self).previews += 1
        return [Image.new("RGB", (8, 8), tuple(int(v) for v in row)) for row in latents]


class PlainEuler(Sampler):
    """Euler discrete, built from the model's scheduler config."""

    id = "plain-euler"

    def make_scheduler(self, config):
        from diffusers import EulerDiscreteScheduler

        return EulerDiscreteScheduler.from_config(config)


class CountingTrainer(Trainer):
    """Counts optimizer steps; the loss of step s is 1/s."""

    id = "counting"

    class Options(Options):
        steps: int = 5
        delay_s: float = 0.0

    @property
    def max_steps(self):
        return self.options.steps

    def _fit(self, resume):
        self._set_state("training")
        self.log.emit("start", step=0, max_steps=self.options.steps)
        for step in range(1, self.options.steps + 1):
            time.sleep(self.options.delay_s)
            self.log.emit("step", step=step, loss=1.0 / step)
            if self.stop_requested.is_set():
                return RunEnd(step, stopped=True)
        return RunEnd(self.options.steps)

    def export(self, directory):
        steps = [e["step"] for e in self.history()]
        return atomic_dir(directory, lambda tmp: (tmp / "steps.json").write_text(json.dumps(steps)))


class ListIndex(VectorIndex):
    """Exact cosine search by a scan over a NumPy array."""

    id = "list-index"

    def __init__(self, dim=None, **options):
        super().__init__(dim, **options)
        self.ids, self.vectors = np.zeros(0, np.int64), np.zeros((0, dim or 0), np.float32)

    def add(self, vectors, ids):
        self.ids = np.concatenate([self.ids, np.asarray(ids, np.int64)])
        self.vectors = np.concatenate([self.vectors.reshape(-1, np.shape(vectors)[1]), np.asarray(vectors, np.float32)])

    def remove(self, ids):
        keep = ~np.isin(self.ids, ids)
        removed = int((~keep).sum())
        self.ids, self.vectors = self.ids[keep], self.vectors[keep]
        return removed

    def __len__(self):
        return len(self.ids)

    def search(self, queries, k):
        sims = np.asarray(queries, np.float32) @ self.vectors.T
        order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(sims, order, axis=1), self.ids[order]

    def save(self, directory):
        Path(directory).mkdir(parents=True, exist_ok=True)
        np.savez(Path(directory) / "list.npz", ids=self.ids, vectors=self.vectors)

    @classmethod
    def load(cls, directory):
        data = np.load(Path(directory) / "list.npz")
        index = cls(dim=data["vectors"].shape[1])
        index.ids, index.vectors = data["ids"], data["vectors"]
        return index


class KernelPlugin:
    @vd.hookimpl
    def register_backends(self, register):
        register(MeanColour)
        register(SolidColour)

    @vd.hookimpl
    def register_samplers(self, register):
        register(PlainEuler)

    @vd.hookimpl
    def register_trainers(self, register):
        register(CountingTrainer)

    @vd.hookimpl
    def register_indexes(self, register):
        register(ListIndex)


@pytest.fixture
def plugin(fresh_plugins):
    fresh_plugins.get_host().register(KernelPlugin(), name="kernel-plugin")
    from vitdream import cli as cli_module

    cli_module._commands_added = False
    yield fresh_plugins
    cli_module._commands_added = False


@pytest.fixture
def pictures(tmp_path):
    folder = tmp_path / "pictures"
    folder.mkdir()
    for name, colour in COLOURS.items():
        for i in range(2):
            Image.new("RGB", (12, 12), tuple(max(0, c - 10 * i) for c in colour)).save(folder / f"{name}-{i}.png")
    (folder / "broken.png").write_bytes(b"not a png")
    return folder


def invoke(*args):
    from vitdream.cli import build_cli

    return CliRunner().invoke(build_cli(), [str(a) for a in args])


# -- classifier and embedder backend ------------------------------------------------------------
def test_backend_api_single_batch_failures_and_describe(plugin, pictures):
    clf = vd.load_classifier("mean-colour")
    assert isinstance(clf, MeanColour) and clf.options.model == "mean-colour"
    top = clf.classify(pictures / "red-0.png", top_k=2)
    assert [p.label for p in top] == ["red", "green"] and top[0].score == pytest.approx(230 / 270)
    batch = clf.classify(sorted(pictures.glob("*.png")), top_k=1)
    assert [None if p is None else p[0].label for p in batch] == ["blue", "blue", None, "green", "green", "red", "red"]
    assert [f.index for f in batch.failures] == [2] and "broken.png" in batch.failures[0].source
    with pytest.raises(vd.errors.ImageLoadError, match="broken.png"):
        clf.classify(pictures / "broken.png")

    emb = vd.load_embedder("mean-colour", batch_size=2)
    vectors = emb.embed(str(pictures), normalize=True)
    assert vectors.shape == (6, 3) and list(vectors.indices) == [0, 1, 3, 4, 5, 6] and len(vectors.failures) == 1
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    assert emb.embed(pictures / "red-0.png").shape == (1, 3)
    assert emb.describe() == {"backend": "mean-colour", "model": "mean-colour", "layer": -1, "pool": "cls",
                              "normalize": False, "dim": 3}
    with pytest.raises(vd.errors.VitdreamError, match="only layer=-1"):
        emb.embed(pictures / "red-0.png", layer=3)


def test_backend_in_the_classify_widget(plugin, pictures):
    widget = vd.widgets.classify("mean-colour", images=pictures)
    assert widget.top_k.max == 3 and len(widget.picker.options) == 8  # 7 files + the placeholder
    widget.picker.value = str(pictures / "green-1.png")  # what picking in the dropdown does
    assert "green" in widget.bars.value and bytes(widget.image.value).startswith(b"\x89PNG")
    widget.top_k.value = 1
    assert widget.bars.value.count("monospace") == 1
    assert widget.show(pictures / "broken.png") == [] and "broken.png" in widget.status.value


def test_backend_in_the_cli(plugin, pictures):
    result = invoke("classify", pictures / "blue-1.png", pictures / "broken.png", "--model", "mean-colour", "--json")
    assert result.exit_code == 1  # one image failed
    records = json.loads(result.stdout)
    assert records[0]["predictions"][0]["label"] == "blue" and "error" in records[1]


# -- vector index (with the embedder above) -----------------------------------------------------
def test_index_api_widget_and_cli(plugin, pictures, tmp_path):
    index = vd.build_index(pictures, embedder=vd.load_embedder("mean-colour"), kind="list-index", out=tmp_path / "idx")
    assert len(index) == 6 and [Path(f.source).name for f in index.skipped] == ["broken.png"]  # not an image at all
    hits = index.search(pictures / "red-1.png", top_k=2)
    assert {Path(h.path).name for h in hits} == {"red-0.png", "red-1.png"} and hits[0].score == pytest.approx(1.0)
    # one rule for single vs batch, one name for how many results (the old ``k`` still works, with a warning)
    batch = index.search([pictures / "red-1.png", pictures / "blue-0.png"], top_k=2)
    assert [[h.path for h in hits] for hits in batch][0] == [h.path for h in hits] and len(batch) == 2
    assert len(index.search(str(pictures / "green-*.png"), top_k=1)) == 2  # a glob is a batch too
    with pytest.warns(DeprecationWarning, match="'k' is deprecated, use 'top_k'"):
        assert index.search(pictures / "red-1.png", k=2) == hits
    reloaded = vd.load_index(tmp_path / "idx")  # reloads the embedder from the manifest: load_embedder(model, backend)
    assert [h.path for h in reloaded.search(pictures / "red-1.png", top_k=2)] == [h.path for h in hits]

    widget = vd.widgets.search(reloaded, k=3)
    widget.path.value = str(pictures / "blue-0.png")  # what typing a path and pressing Enter does
    widget.wait()
    assert widget.error is None and [Path(h.path).name.split("-")[0] for h in widget.hits][:2] == ["blue", "blue"]

    out = tmp_path / "cli-idx"
    built = invoke("index", "build", pictures, "--out", out, "--model", "mean-colour", "--kind", "list-index", "--json")
    assert built.exit_code == 0, built.output
    assert json.loads(built.stdout.strip().splitlines()[-1])["count"] == 6
    found = invoke("index", "search", out, pictures / "green-0.png", "-k", "1", "--json")
    assert found.exit_code == 0, found.output
    assert Path(json.loads(found.stdout)[0]["path"]).name == "green-0.png"


# -- generator ------------------------------------------------------------------------------------
def test_generator_api(plugin):
    gen = vd.load_generator("solid")
    steps_seen = []
    images = gen.generate("green field", steps=3, seed=4, num_images=2, callback=lambda info: steps_seen.append(info["step"]))
    assert isinstance(images, vd.base.results.ImageList) and len(images) == 2
    assert images[0].getpixel((0, 0)) == (16, 226, 16) and images[1].getpixel((0, 0)) == (15, 225, 15)
    assert steps_seen == [1, 2, 3]
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(GenerationCancelled):
        gen.generate("red", cancel=cancel)


def test_generator_in_the_generate_widget(plugin, monkeypatch, tmp_path):
    import sys

    generate = vd.widgets.generate  # imports vitdream.widgets.generate
    monkeypatch.setattr(sys.modules["vitdream.widgets.generate"], "PREVIEW_INTERVAL_S", 0.0)
    SolidColour.previews = 0
    widget = generate("solid", prompt="blue sky", steps=4, seed=0)
    assert widget.wait(30)
    assert widget.images[0].getpixel((0, 0)) == COLOURS["blue"] and "seed 0" in widget.status.value
    assert SolidColour.previews == 3  # steps 1..3 previewed, the last one is the image itself
    widget.seed.value = 7  # moving a control regenerates
    assert widget.wait(30) and widget.images[0].getpixel((0, 0)) == (13, 13, 223)
    saved = widget.save(tmp_path / "sky.png")
    assert Image.open(saved).getpixel((0, 0)) == (13, 13, 223)


def test_generator_in_the_cli(plugin, tmp_path):
    result = invoke("generate", "red apple", "--model", "solid", "--steps", "2", "-n", "2", "--seed", "1", "--out", tmp_path / "apple.png")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "apple-2.png").getpixel((0, 0)) == (228, 18, 18)


# -- sampler (through the built-in generator) -----------------------------------------------------
def test_sampler_api_widget_and_cli(plugin, tmp_path):
    gen = vd.load_generator()
    ours = gen.generate("a red square", sampler="plain-euler", steps=2, seed=1)[0]
    builtin = gen.generate("a red square", sampler="euler", steps=2, seed=1)[0]
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(builtin))  # same scheduler as the built-in Euler

    widget = vd.widgets.generate(gen, steps=2)
    assert "plain-euler" in [value for _, value in widget.sampler.options]
    widget.prompt.value = "a red square"
    widget.sampler.value = "plain-euler"
    assert widget.wait(60) and "plain-euler" in widget.status.value
    np.testing.assert_array_equal(np.asarray(widget.images[0]), np.asarray(gen.generate("a red square", sampler="plain-euler", steps=2, seed=0)[0]))

    listed = invoke("samplers", "--json")
    assert any(row["id"] == "plain-euler" and row["plugin"] == "kernel-plugin" for row in json.loads(listed.stdout))
    made = invoke("generate", "a red square", "--sampler", "plain-euler", "--steps", "2", "--seed", "1", "--out", tmp_path / "sq.png")
    assert made.exit_code == 0, made.output
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "sq.png").convert("RGB")), np.asarray(ours))


# -- trainer --------------------------------------------------------------------------------------
def test_trainer_run_protocol(plugin, tmp_path):
    run = vd.create_run("counting", steps=4)
    assert run.state == "idle" and run.max_steps == 4 and not run.running and run.latest_checkpoint() is None
    seen = []
    run.subscribe(seen.append)
    assert run.fit() is run and run.state == "finished"
    assert [e["step"] for e in run.history()] == [1, 2, 3, 4] and seen == run.events
    assert [e["state"] for e in run.events if e["type"] == "status"] == ["training", "finished"]
    assert json.loads((run.export(tmp_path / "model") / "steps.json").read_text()) == [1, 2, 3, 4]

    slow = vd.components.create("trainers", "counting", steps=1000, delay_s=0.005)
    slow.subscribe(lambda e: e["type"] == "step" and e["step"] == 3 and slow.stop(wait=False))
    slow.start()
    slow.wait(30)
    assert not slow.running and slow.stop() is None  # nothing to resume from
    assert slow.state == "stopped" and slow.history()[-1]["step"] == 3

    failing = vd.components.create("trainers", "counting", steps=-1)
    failing._fit = lambda resume: 1 / 0  # a bug inside a trainer
    failing.start()
    failing.wait(30)
    assert failing.state == "failed" and isinstance(failing.error, ZeroDivisionError)
    assert "ZeroDivisionError" in failing.events[-1]["traceback"]


def test_trainer_in_the_train_dashboard(plugin):
    run = vd.components.create("trainers", "counting", steps=6)
    dashboard = vd.widgets.train(run)
    assert vd.widgets.train(run) is dashboard and dashboard.progress.max == 6
    assert dashboard.resume_button.disabled  # nothing to resume from
    dashboard.start_button.click()
    run.wait(30)
    dashboard.render()
    assert dashboard.progress.value == 6 and "finished" in dashboard.status.value
    assert bytes(dashboard.plot.value).startswith(b"\x89PNG") and dashboard.stop_button.disabled


def test_trainer_in_the_cli(plugin, tmp_path):
    result = invoke("train", "counting", "--set", "steps=3", "--export", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "finished: finished at step 3" in result.output
    assert json.loads((tmp_path / "out" / "steps.json").read_text()) == [1, 2, 3]
    bad = invoke("train", "counting", "--set", "stpes=3")
    assert bad.exit_code == 1 and "unknown option 'stpes'" in bad.output


# -- the plugin author's documentation is true ----------------------------------------------------
def test_the_plugin_docs_examples_run(fresh_plugins, capsys):
    import re

    text = (Path(vd.__file__).parent.parent / "docs" / "plugins.md").read_text(encoding="utf-8")
    namespace: dict = {}
    for block in re.findall(r"```python\n(.*?)```", text, re.S):
        exec(compile(block, "docs/plugins.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "[Prediction(label='dark', score=1.0)]" in out and "finished [1, 2, 3, 4]" in out
    assert "BadImage(index=1" in out
    white = namespace["MeanColour"](scale=2.0).embed([np.full((4, 4, 3), 255, np.uint8), b"bad"], normalize=False)
    np.testing.assert_allclose(white, [[510.0, 510.0, 510.0]])
    assert len(white.failures) == 1


def test_lazy_registrations_agree_with_the_classes_they_name(fresh_plugins):
    """Built-ins register "module:Class" strings (listing plugins imports nothing); what the string's
    class declares must match what was registered, checked when it is first loaded."""
    from vitdream.registry import Entry

    registry = fresh_plugins.get_registry()
    lazy = [e for e in registry if isinstance(e.target, str) and e.plugin.startswith("vitdream.default_plugins")]
    assert {"transformers-vit", "diffusers-sd", "vit-finetune", "dreambooth", "faiss-flat", "ddim"} <= {e.id for e in lazy}
    for entry in lazy:
        assert entry.load() is not None  # raises on a disagreement
    drifted = Entry("backends", "vit", "vitdream.vision.backend:TransformersViT", "someone", meta={"tasks": ["classify"]})
    with pytest.raises(vd.errors.VitdreamError, match="registered with id 'vit' but .* declares 'transformers-vit'"):
        drifted.load()


def test_a_backend_that_overrides_classify_itself_still_works_in_the_widget(plugin, pictures):
    """Plugins written before the kernel held the contract (they override classify) keep working."""

    class Legacy(Classifier):
        id = "legacy"

        def classify(self, images, top_k=5):
            return [vd.base.Prediction("anything", 1.0)][:top_k]

    widget = vd.widgets.classify(Legacy(), images=pictures)
    assert widget.top_k.max == 1000 and [p.label for p in widget.show(pictures / "red-0.png")] == ["anything"]
    with pytest.raises(AttributeError, match="legacy: implement labels"):
        Legacy().labels
