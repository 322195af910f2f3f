"""The generation widget: slider moves regenerate with the same seed in a background thread; sweep; save."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from vitdream.generation import load_generator
from vitdream.generation.pngmeta import read_settings
from vitdream.testing.sd import tiny_sd_pipeline
from vitdream.widgets.generate import generate


@pytest.fixture(scope="module")
def gen():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the shared test machine is oversubscribed
    yield load_generator(tiny_sd_pipeline(unet_channels=(16, 32), vae_channels=(16, 32), sample_size=8))
    torch.set_num_threads(threads)


def shown(image_widget) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(image_widget.value)).convert("RGB"))


def test_slider_regenerates_with_the_same_seed_in_the_background(gen, tmp_path):
    widget = generate(gen, "a photo of sks dog", steps=3, seed=9, preview=True)
    assert widget.guidance.continuous_update is False and widget.steps.continuous_update is False
    assert widget.wait(60)
    first = shown(widget.image)
    assert first.shape[0] >= 256 and widget.progress.value == 3
    widget.guidance.value = 2.0  # what a slider release does
    assert widget.wait(60)
    settings = read_settings(widget.images[0])
    assert (settings["seed"], settings["guidance_scale"], settings["steps"]) == (9, 2.0, 3)
    assert not np.array_equal(shown(widget.image), first)
    assert "guidance 2" in widget.status.value
    expected = gen.generate("a photo of sks dog", steps=3, seed=9, guidance_scale=2.0)[0]
    assert np.array_equal(np.asarray(widget.images[0]), np.asarray(expected))

    path = widget.save(tmp_path / "shot.png")
    assert json.loads(Image.open(path).info["vitdream"])["guidance_scale"] == 2.0
    assert np.array_equal(np.asarray(gen.reproduce(path)), np.asarray(Image.open(path).convert("RGB")))


def test_newest_request_wins_and_sweep_renders_a_row(gen):
    widget = generate(gen, steps=2, seed=1, sweep_scales=(1, 5))
    widget.prompt.value = "a red circle"  # setting the prompt requests a generation
    widget.guidance.value = 4.0
    widget.steps.value = 4  # three requests in a row: the last settings are what is shown
    assert widget.wait(60)
    assert (read_settings(widget.images[0])["guidance_scale"], read_settings(widget.images[0])["steps"]) == (4.0, 4)
    widget.sweep_button.click()
    assert widget.wait(60)
    row = shown(widget.sweep_image)
    assert row.shape[1] > 1.5 * row.shape[0]  # two tiles side by side (a label strip below)
    assert [(read_settings(t)["guidance_scale"], read_settings(t)["seed"]) for t in widget.sweep_tiles] == [(1, 1), (5, 1)]
    assert "sweep, seed 1" in widget.status.value


def test_bad_input_is_shown_not_raised(gen):
    widget = generate(gen, steps=2)
    widget.request("generate")
    assert "type a prompt" in widget.status.value and widget.wait(1)
    widget.prompt.value = "a dog"
    assert widget.wait(60)
    widget.sampler.options = [("nope", "nope")]  # an id no plugin registered
    assert widget.wait(60)
    assert "unknown sampler &#x27;nope&#x27;" in widget.status.value


def test_live_preview_shows_decoded_latents_during_sampling(gen, monkeypatch):
    import vitdream.widgets.generate as module

    monkeypatch.setattr(module, "PREVIEW_INTERVAL_S", 0.0)  # no throttle: a preview after every step but the last
    widget = generate(gen, steps=4, seed=2, preview=True)
    shown_values = []
    widget.image.observe(lambda change: shown_values.append(change["new"]), names="value")
    widget.prompt.value = "a photo of sks dog"
    assert widget.wait(60)
    assert len(shown_values) == 4  # 3 previews + the final image
    assert len({bytes(v) for v in shown_values}) == 4  # each step shows a different picture
    widget.live_preview.value = False
    shown_values.clear()
    widget.generate_button.click()
    assert widget.wait(60) and len(shown_values) <= 1  # only the final image (unchanged: same settings)
