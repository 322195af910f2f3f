"""DreamBooth evaluation: each metric computes what it claims, on constructed inputs; the whole
evaluation runs on tiny models (vitdream.testing) and a tiny DreamBooth run, seeded and repeatable."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

import vitdream as vd
from vitdream import evaluation as ev
from vitdream.base import Prediction
from vitdream.datasets import shapes
from vitdream.datasets.shapes import PALETTE
from vitdream.datasets.subject import dreambooth_subject
from vitdream.errors import VitdreamError


# -- the metrics on hand-made embeddings -----------------------------------------------------------------
def test_subject_fidelity_and_pres_are_mean_pairwise_cosines():
    real = np.array([[1.0, 0.0], [0.0, 2.0]])  # unit x and (scaled) unit y
    generated = np.array([[3.0, 0.0], [1.0, 1.0]])
    # pairs: (x,x)=1, (x,y)=0, (d,x)=1/sqrt2, (d,y)=1/sqrt2 -> mean (1 + 0 + 2/sqrt2) / 4
    expected = (1 + 0 + 2 / math.sqrt(2)) / 4
    assert ev.subject_fidelity(generated, real) == pytest.approx(expected)
    assert ev.prior_preservation(generated, real) == pytest.approx(expected)
    assert ev.subject_fidelity(real, real) == pytest.approx(0.5)  # x.x=1, y.y=1, x.y=0 twice
    assert ev.prior_preservation(-real, real) == pytest.approx(-0.5)


def test_diversity_is_mean_pairwise_cosine_distance():
    assert ev.diversity(np.array([[1.0, 2.0]] * 4)) == pytest.approx(0.0)  # identical images: no diversity
    assert ev.diversity(np.eye(3)) == pytest.approx(1.0)  # mutually orthogonal
    assert ev.diversity(np.array([[1.0, 0.0], [-2.0, 0.0]])) == pytest.approx(2.0)  # opposite
    # three vectors: pairs (a,b)=0 -> 1, (a,c)=1/sqrt2, (b,c)=1/sqrt2 -> distances 1, 1-1/sqrt2 twice
    three = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert ev.diversity(three) == pytest.approx((1 + 2 * (1 - 1 / math.sqrt(2))) / 3)
    with pytest.raises(VitdreamError, match="at least two"):
        ev.diversity(np.ones((1, 3)))
    with pytest.raises(VitdreamError, match="all zeros"):
        ev.subject_fidelity(np.zeros((1, 2)), np.ones((1, 2)))


def test_background_is_read_from_the_border_of_world_images():
    for size in (32, 64):
        items = list(shapes(60, seed=3, size=size))
        found = [ev.background_of(item["image"]) for item in items]
        assert found == [item["background"] for item in items]
    subject = dreambooth_subject()
    assert [ev.background_of(im) for im in subject.images] == subject.backgrounds
    assert [ev.background_of(im) for im in subject.more(6, backgrounds=["blue", "white"])] == ["blue", "white"] * 3


def test_subject_pixel_rule_accepts_the_subject_and_rejects_world_shapes():
    subject = dreambooth_subject()
    pictures = subject.images + subject.more(8, backgrounds=subject.new_contexts())
    assert all(subject.matches(im, "red star") for im in pictures)
    world = vd.datasets.shapes(400, seed=11, colours=["red", "green"], patterns=["two-tone"])
    for item in world:  # red-over-green two-tone circles, squares, triangles: the pixels match, the shape not
        pixels_match = subject.matches(item["image"])
        assert pixels_match == (item["colour"] == "red"), item["caption"]
        assert not subject.matches(item["image"], item["label"])
    ordinary = vd.datasets.shapes(200, seed=12)
    assert not any(subject.matches(x["image"], x["label"]) for x in ordinary)
    from vitdream.datasets.subject import render_subject

    flipped = render_subject("blue", colours=("green", "red"))  # the same star, halves swapped
    assert not subject.matches(flipped) and subject.matches(render_subject("blue"))


def test_world_checks_score_each_named_attribute():
    ds = vd.datasets.shapes(40, seed=13)
    images = [x["image"] for x in ds]
    right = [x["caption"] for x in ds]

    class Truth:  # a classifier that knows the true labels: isolates the pixel reading
        def classify(self, images, top_k=1):
            return [[Prediction(x["label"], 1.0)] for x in ds]

    assert all(row["all"] for row in ev.world_checks(images, right, Truth()))
    wrong_bg = [f"a photo of a {x['shape']} on a {'white' if x['background'] != 'white' else 'black'} background"
                for x in ds]
    rows = ev.world_checks(images, wrong_bg, Truth())
    assert not any(row["background"] for row in rows) and all(row["shape"] for row in rows)
    with pytest.raises(ev.VitdreamError, match="2 images but 1 prompts"):
        ev.world_checks(images[:2], right[:1], Truth())


def test_background_named_in_prompt():
    assert ev.background_in_prompt("a photo of sks star on a blue background") == "blue"
    assert ev.background_in_prompt("a photo of a star") is None
    assert ev.shape_of("red star") == "star"


class ColourEmbedder:
    """Embeds an image as the share of its foreground pixels nearest to each colour of the world;
    black (what evaluation paints backgrounds) is not counted. The two-tone subject is half red, half
    green; an ordinary star is one colour. Transparent, so expected similarities are known."""

    colours = np.array([PALETTE[c] for c in ("red", "green", "blue", "yellow", "white", "black")], dtype=np.float64)

    def embed(self, images, layer=-1, pool="cls"):
        rows = []
        for image in images:
            pixels = np.asarray(image.convert("RGB"), dtype=np.float64).reshape(-1, 3)
            distances = ((pixels[:, None] - self.colours[None]) ** 2).sum(-1)
            pure = distances.min(axis=1) < 40**2  # anti-aliased edge pixels (blends) are not counted
            nearest = np.argmin(distances[pure], axis=1)
            counts = np.bincount(nearest, minlength=len(self.colours))[:-1].astype(np.float64)
            rows.append(counts / max(1.0, counts.sum()) + 1e-3)
        return np.array(rows)


class ScriptedClassifier:
    def __init__(self, label):
        self.label = label

    def classify(self, images, top_k=1):
        return [[Prediction(self.label, 0.9)] for _ in images]


class ScriptedGenerator:
    """'Generates' real pictures: the subject for prompts with ``sks`` (and for the class prompt when
    ``leaks``), ordinary world stars otherwise; backgrounds as the prompt asks."""

    def __init__(self, leaks: bool):
        self.leaks, self.subject = leaks, dreambooth_subject()
        self.calls = []

    def generate(self, prompt, *, num_images, seed, **settings):
        self.calls.append((prompt, seed, settings["guidance_scale"], settings["steps"]))
        background = ev.background_in_prompt(prompt)
        if "sks" in prompt or self.leaks:
            return self.subject.more(num_images, seed=seed, backgrounds=[background] if background else None)
        stars = shapes(num_images, seed=seed, shapes=["star"], backgrounds=[background] if background else None)
        return [item["image"] for item in stars]


def test_evaluation_separates_a_preserved_prior_from_a_leaking_one():
    result = vd.evaluate_dreambooth(
        {"preserved": ScriptedGenerator(leaks=False), "leaking": ScriptedGenerator(leaks=True)},
        subject=dreambooth_subject(), embedder=ColourEmbedder(), classifier=ScriptedClassifier("red star"),
        num_images=4, steps=3, guidance_scale=5.0, progress=False,
    )
    preserved, leaking = result["preserved"], result["leaking"]
    # the subject prompts get the subject in both models: same fidelity, every background right
    assert preserved["subject_fidelity"] == pytest.approx(leaking["subject_fidelity"])
    assert preserved["subject_fidelity"] > 0.9
    assert preserved["prompt_fidelity"] == leaking["prompt_fidelity"] == 1.0
    # an ordinary star has one colour: cosine 1/sqrt(2) to the half-red, half-green subject if it is red
    # or green, else 0 -- PRES is their mean; a leaking class looks like the subject itself
    order = ["red", "green", "blue", "yellow", "white"]
    real = ColourEmbedder().embed([ev.isolate_subject(im) for im in dreambooth_subject().images])
    real /= np.linalg.norm(real, axis=1, keepdims=True)
    one_hot = np.eye(5)[[order.index(item["colour"]) for item in shapes(4, seed=0, shapes=["star"])]]
    assert preserved["PRES"] == pytest.approx(float((one_hot @ real.T).mean()), abs=0.02)
    assert preserved["PRES"] < 0.75 < 0.9 < leaking["PRES"]
    assert leaking["PRES"] == pytest.approx(leaking["subject_fidelity"], abs=0.1)
    assert 0 < preserved["DIV"] < 1
    # the "real images" row: held-out pictures of the subject itself, no class prompt
    assert list(result.metrics) == ["real images", "preserved", "leaking"]
    assert math.isnan(result["real images"]["PRES"]) and result["real images"]["subject_fidelity"] > 0.9
    # every model saw the same prompts, seeds and settings
    gen_calls = [result.settings["prompts"] + [result.settings["class_prompt"]]]
    assert gen_calls[0] == ["a photo of sks star", "a photo of sks star on a blue background",
                            "a photo of sks star on a white background", "a photo of a star"]
    rows = [r for r in result.per_prompt_rows if r["model"] == "preserved"]
    assert [r["prompt"] for r in rows][-1] == "(class) PRES" and all(r.get("background_ok", 1.0) == 1.0 for r in rows)


def test_prompt_fidelity_counts_wrong_backgrounds_and_shapes():
    subject = dreambooth_subject()
    blue = subject.more(4, backgrounds=["blue"])
    white = subject.more(4, backgrounds=["white"])
    generated = {"a photo of sks star on a blue background": blue[:2] + white[:2]}  # half right
    metrics, rows = ev.evaluate_images(generated, None, subject.images, ColourEmbedder(),
                                       classifier=ScriptedClassifier("red star"), class_noun="star")
    assert metrics["prompt_fidelity"] == 0.5 and rows[0]["background_ok"] == 0.5 and rows[0]["shape_ok"] == 1.0
    metrics, rows = ev.evaluate_images(generated, None, subject.images, ColourEmbedder(),
                                       classifier=ScriptedClassifier("red circle"), class_noun="star")
    assert metrics["prompt_fidelity"] == 0.0 and rows[0]["shape_ok"] == 0.0


def test_table_has_a_readable_repr_without_pandas():
    table = ev.MetricsTable([{"model": "a", "PRES": 0.51234, "DIV": float("nan")}, {"model": "bb", "PRES": 0.2}],
                            index="model")
    text = repr(table)
    assert text.splitlines()[0].split() == ["model", "PRES", "DIV"]
    assert "0.512" in text and "nan" in text and "bb" in text
    assert "<table>" in table._repr_html_() and table["PRES"] == [0.51234, 0.2]


# -- end to end on tiny models ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    from vitdream.testing.sd import make_tiny_sd
    from vitdream.testing.vit import tiny_vit

    root = tmp_path_factory.mktemp("eval")
    words = ("a", "photo", "of", "sks", "star", "on", "blue", "red", "background")
    sd = make_tiny_sd(root / "sd", words=words, unet_channels=(16, 32), vae_channels=(16, 32), text_hidden=16)
    return sd, tiny_vit(root / "vit", image_size=32)


@pytest.fixture(scope="module")
def base_result(tiny_models):
    sd_dir, vit_dir = tiny_models
    embedder = vd.load_embedder(str(vit_dir))
    models = {"dir": str(sd_dir), "generator": vd.load_generator(str(sd_dir))}
    return vd.evaluate_dreambooth(models, subject=dreambooth_subject(n=4), embedder=embedder, num_images=2, steps=2,
                                  contexts=("blue",), progress=False)


def test_evaluate_tiny_models_is_seeded_and_complete(base_result):
    result = base_result
    assert list(result.metrics) == ["real images", "dir", "generator"]
    # the same weights loaded two ways, same seeds -> the same images and numbers
    for metric in ev.METRICS:
        assert result["dir"][metric] == pytest.approx(result["generator"][metric], abs=1e-6)
    for prompt, images in result.images["dir"].items():
        assert [np.asarray(im).tolist() for im in images] == [np.asarray(im).tolist() for im in result.images["generator"][prompt]]
    values = result["dir"]
    assert -1 <= values["subject_fidelity"] <= 1 and -1 <= values["PRES"] <= 1
    assert 0 <= values["prompt_fidelity"] <= 1 and 0 <= values["DIV"] <= 2
    assert list(result.images["dir"]) == ["a photo of sks star", "a photo of sks star on a blue background",
                                          "a photo of a star"]
    assert [len(v) for v in result.images["dir"].values()] == [2, 2, 2]
    fig = result.plot()
    assert [ax.get_title().split()[0] for ax in fig.axes] == list(ev.METRICS)
    assert result.grid().size[1] > 0 and "DreamBooth evaluation" in repr(result)
    assert "<table" in result._repr_html_()


def test_evaluate_a_dreambooth_run_uses_its_prompts_and_images(tiny_models, base_result, tmp_path):
    sd_dir, vit_dir = tiny_models
    subject = dreambooth_subject(n=3)
    paths = subject.save(tmp_path / "instance")
    run = vd.dreambooth(base=str(sd_dir), instance_images=str(tmp_path / "instance"),
                        instance_prompt="a photo of sks star", output_dir=str(tmp_path / "run"), max_steps=2,
                        learning_rate=1e-2, report_to=[], checkpointing_steps=2)
    run._progress_bar = False
    run.fit()
    result = vd.evaluate_dreambooth(run, embedder=vd.load_embedder(str(vit_dir)), num_images=2, steps=2,
                                    contexts=("blue",), progress=False)
    assert list(result.metrics) == ["run"]  # a folder of images is not a Subject: no "real images" row
    assert len(result.real_images) == len(paths)
    assert result.settings["prompts"] == ["a photo of sks star", "a photo of sks star on a blue background"]
    assert math.isnan(result["run"]["PRES"])  # no class prompt, no prior to preserve
    # the trained weights are what was evaluated: same prompt and seed, other images than the base model's
    tuned = np.asarray(result.images["run"]["a photo of sks star"][0], dtype=np.int16)
    before = np.asarray(base_result.images["dir"]["a photo of sks star"][0], dtype=np.int16)
    assert np.abs(tuned - before).max() > 0


def test_bad_arguments_are_clear_errors():
    with pytest.raises(VitdreamError, match="num_images"):
        vd.evaluate_dreambooth(None, num_images=0)
    with pytest.raises(VitdreamError, match="no models"):
        vd.evaluate_dreambooth({}, embedder=ColourEmbedder())
