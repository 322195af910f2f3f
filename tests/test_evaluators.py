"""The evaluator kind: the base contract, and each built-in metric equal to a hand computation on fixed embeddings."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import vitdream as vd
from vitdream.base import Evaluator, Prediction
from vitdream.datasets import shapes
from vitdream.errors import VitdreamError

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}
VECTORS = {"red": [1.0, 0.0, 0.0], "green": [0.6, 0.8, 0.0], "blue": [0.0, 0.0, 2.0]}


class FixedEmbedder:
    """Embeds a plain image as a fixed vector chosen by its colour: the expected cosines are known by hand."""

    def embed(self, images, layer=-1, pool="cls"):
        names = {v: k for k, v in COLOURS.items()}
        return np.array([VECTORS[names[im.convert("RGB").getpixel((0, 0))]] for im in images])


def plain(colour):
    return Image.new("RGB", (16, 16), COLOURS[colour])


def test_vit_embedding_subject_fidelity_is_the_mean_cosine_to_the_references():
    evaluator = vd.load_evaluator("vit-embedding", embedder=FixedEmbedder())
    scores = evaluator.score([plain("red"), plain("green"), plain("blue")], references=[plain("red"), plain("green")])
    # cos(red, red)=1, cos(red, green)=0.6, cos(green, green)=1, blue is orthogonal to both
    assert scores["subject_fidelity"].tolist() == pytest.approx([(1 + 0.6) / 2, (0.6 + 1) / 2, 0.0])
    assert scores.mean("subject_fidelity") == pytest.approx(1.6 / 3)
    assert evaluator.embed([plain("blue")]).tolist() == [[0.0, 0.0, 2.0]]


def test_the_base_contract_failures_counts_and_missing_inputs():
    evaluator = vd.load_evaluator({"id": "vit-embedding", "embedder": FixedEmbedder()})
    scores = evaluator.score([plain("red"), b"junk", plain("blue")], references=[plain("red")])
    assert scores.indices.tolist() == [0, 2] and [f.index for f in scores.failures] == [1]
    assert scores["subject_fidelity"].tolist() == pytest.approx([1.0, 0.0])
    with pytest.raises(VitdreamError, match="pass references="):
        evaluator.score([plain("red")])
    with pytest.raises(KeyError, match="subject_fidelity"):
        scores["clip_t"]

    class Broken(Evaluator):
        id = "broken"
        metrics = ("a",)

        def _score(self, images, prompts, references):
            return {"a": [1.0]}

    with pytest.raises(VitdreamError, match="one value per image"):
        Broken().score([plain("red"), plain("red")])
    with pytest.raises(VitdreamError, match="2 images but 1 prompts"):
        Broken().score([plain("red"), plain("red")], prompts=["x"])
    with pytest.raises(VitdreamError, match="unknown evaluator 'nope'"):
        vd.load_evaluator("nope")


class ScriptedClassifier:
    def __init__(self, label):
        self.label = label

    def classify(self, images, top_k=1):
        return [[Prediction(self.label, 0.9)] for _ in images]


def test_shapes_world_checks_each_attribute_the_prompt_names():
    items = list(shapes(4, seed=3, shapes=["star"], colours=["red"], patterns=["plain"], backgrounds=["blue"]))
    images = [item["image"] for item in items]
    prompts = ["a photo of a red star on a blue background",   # all right
               "a photo of a green star on a blue background",  # colour wrong
               "a photo of a red star on a white background",   # background wrong
               "a photo of a red circle"]                       # shape wrong
    evaluator = vd.load_evaluator("shapes-world", classifier=ScriptedClassifier("red star"))
    scores = evaluator.score(images, prompts=prompts)
    assert scores["prompt_fidelity"].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert scores["colour_ok"].tolist() == [1.0, 0.0, 1.0, 1.0]
    assert scores["background_ok"][:3].tolist() == [1.0, 1.0, 0.0] and np.isnan(scores["background_ok"][3])
    assert scores["shape_ok"].tolist() == [1.0, 1.0, 1.0, 0.0]
    with pytest.raises(VitdreamError, match="pass prompts="):
        evaluator.score(images)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    from vitdream.testing.clip import make_tiny_clip

    return make_tiny_clip(tmp_path_factory.mktemp("clip") / "clip", words=("a", "red", "blue", "square", "photo", "of"))


def test_clip_i_and_clip_t_equal_cosines_of_the_models_own_features(tiny_clip):
    import torch
    from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

    images = [plain("red"), plain("blue")]
    prompts = ["a red square", "a photo of blue"]
    scores = vd.load_evaluator("clip", model=str(tiny_clip)).score(images, prompts=prompts, references=[plain("green")])
    model = CLIPModel.from_pretrained(tiny_clip).eval()
    pixels = AutoImageProcessor.from_pretrained(tiny_clip, backend="pil")(images=images + [plain("green")], return_tensors="pt")
    tokens = AutoTokenizer.from_pretrained(tiny_clip)(prompts, padding=True, return_tensors="pt")
    with torch.no_grad():
        image_out = model.get_image_features(**pixels)
        text_out = model.get_text_features(**tokens)
    unit = lambda t: torch.nn.functional.normalize(getattr(t, "pooler_output", t), dim=-1)  # noqa: E731
    img, txt = unit(image_out), unit(text_out)
    assert scores["clip_t"].tolist() == pytest.approx((img[:2] * txt).sum(-1).tolist(), abs=1e-5)
    assert scores["clip_i"].tolist() == pytest.approx((img[:2] @ img[2]).tolist(), abs=1e-5)
    only_prompts = vd.load_evaluator("clip", model=str(tiny_clip)).score(images, prompts=prompts)
    assert np.isnan(only_prompts["clip_i"]).all() and only_prompts["clip_t"].tolist() == pytest.approx(scores["clip_t"].tolist(), abs=1e-6)


class IsRed(Evaluator):
    """1 for a red image (stands in for a prompt-fidelity judge)."""

    id = "is-red"
    metrics = ("red",)
    provides = {"prompt_fidelity": "red"}

    def _score(self, images, prompts, references):
        return {"red": [float(im.convert("RGB").getpixel((0, 0)) == COLOURS["red"]) for im in images]}


class PlainGenerator:
    """'Generates' a red and a green image for each subject prompt, blue ones for the class prompt."""

    def generate(self, prompt, *, num_images, seed, **settings):
        colours = ["blue"] * num_images if "sks" not in prompt else ["red", "green"][:num_images]
        return [plain(c) for c in colours]


def test_evaluate_dreambooth_headline_metrics_come_from_the_evaluators_given():
    result = vd.evaluate_dreambooth(
        PlainGenerator(), subject=[plain("red")], instance_prompt="a photo of sks star", class_prompt="a photo of a star",
        contexts=("blue",), num_images=2, progress=False,
        evaluators=[{"id": "vit-embedding", "embedder": FixedEmbedder(), "isolate": False}, IsRed()],
    )
    values = result["PlainGenerator"]
    assert values["subject_fidelity"] == pytest.approx((1.0 + 0.6) / 2)  # red vs red, green vs red
    assert values["prompt_fidelity"] == pytest.approx(0.5)                # one red image per prompt
    assert values["DIV"] == pytest.approx(1 - 0.6)                        # 1 - cos(red, green) in each prompt
    assert values["PRES"] == pytest.approx(0.0)                           # blue is orthogonal to red
    assert result.settings["evaluators"] == ["vit-embedding", "is-red"]
