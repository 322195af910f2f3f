"""Provenance: every image records its own seed and the weights' fingerprint; ``vd.read_settings(png)``
gives settings that ``generate`` turns into the same pixels, across samplers and with a LoRA."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import vitdream as vd
from vitdream.errors import OptionsError
from vitdream.generation import load_generator
from vitdream.testing.sd import make_tiny_lora, make_tiny_sd

pytestmark = pytest.mark.usefixtures("one_thread")
PROMPT = "a photo of a red circle on a blue background"
SIZES = dict(unet_channels=(16, 32), vae_channels=(16, 32), sample_size=8)


@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory, one_thread):
    return make_tiny_sd(tmp_path_factory.mktemp("sd") / "tiny", **SIZES)


def pixels(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


@pytest.mark.parametrize("sampler", ["ddim", "euler", "euler-ancestral", "dpm-solver++"])
def test_every_image_of_a_batch_is_made_again_from_its_png(sd_dir, tmp_path, sampler):
    gen = load_generator(sd_dir)
    batch = gen.generate(PROMPT, negative_prompt="green", seed=40, steps=3, guidance_scale=4, num_images=3,
                         sampler=sampler)
    for i, image in enumerate(batch):
        path = gen.save(image, tmp_path / f"{sampler}-{i}.png")
        with Image.open(path) as png:
            stored = json.loads(png.text["vitdream"])
            assert f"Seed: {40 + i}" in png.text["parameters"] and "Model hash: " in png.text["parameters"]
        assert (stored["prompt"], stored["negative_prompt"], stored["image_seed"], stored["steps"],
                stored["guidance_scale"], stored["sampler"], stored["width"], stored["height"]) == (
            PROMPT, "green", 40 + i, 3, 4.0, sampler, 16, 16)
        assert stored["weights"] == gen.fingerprint and stored["weights"].startswith("sha256:")
        settings = vd.read_settings(path)
        again = gen.generate(**settings)
        assert len(again) == 1 and np.array_equal(pixels(again[0]), pixels(image)), (sampler, i)


def test_a_lora_and_its_scale_are_recorded_and_reproduced(sd_dir, tmp_path):
    lora = make_tiny_lora(sd_dir, tmp_path / "lora")
    base = load_generator(sd_dir)
    gen = load_generator(sd_dir, lora=str(tmp_path / "lora"), lora_scale=0.7)
    assert gen.fingerprint != base.fingerprint  # the LoRA weights are part of the fingerprint
    image = gen.generate(PROMPT, seed=2, steps=3, sampler="euler")[0]
    path = gen.save(image, tmp_path / "lora.png")
    settings = vd.read_settings(path)
    assert settings["loras"] == [[str(lora.resolve()), 0.7]]
    with Image.open(path) as png:
        assert f"Lora: {lora.resolve()}:0.7" in png.text["parameters"]
    assert np.array_equal(pixels(gen.generate(**settings)[0]), pixels(image))
    with pytest.warns(UserWarning, match="LoRAs"):
        other = base.generate(**settings)[0]
    assert not np.array_equal(pixels(other), pixels(image))


def test_fingerprint_names_the_weights_and_bad_index_is_refused(sd_dir, tmp_path):
    other = load_generator(make_tiny_sd(tmp_path / "other", seed=1, **SIZES))
    gen = load_generator(sd_dir)
    assert other.fingerprint != gen.fingerprint
    assert load_generator(sd_dir).fingerprint == gen.fingerprint  # from the weights, not the object
    settings = vd.read_settings(gen.generate(PROMPT, seed=1, steps=2)[0])
    assert "index" not in settings and settings["seed"] == 1
    with pytest.warns(UserWarning, match="weights"):
        other.generate(**settings)
    with pytest.raises(OptionsError, match="'index'"):
        gen.generate(PROMPT, steps=1, num_images=2, index=2)


def test_short_sampler_names_are_recorded_as_the_registered_id(sd_dir):
    gen = load_generator(sd_dir)
    short = gen.generate(PROMPT, seed=0, steps=2, sampler="dpm++")[0]
    assert vd.read_settings(short)["sampler"] == "dpm-solver++"
    assert np.array_equal(pixels(short), pixels(gen.generate(PROMPT, seed=0, steps=2, sampler="dpm-solver++")[0]))
