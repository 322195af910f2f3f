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
from vitdream.widgets.generate import generate, png_bytes


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


def test_empty_images_are_hidden_and_a_word_button_shows_its_map(gen):
    widget = generate(gen, steps=2, seed=3, sweep_scales=(1, 5))
    assert widget.image.layout.display == "none" and widget.sweep_image.layout.display == "none"  # no broken icon
    assert widget.study.plot.layout.display == "none"
    widget.prompt.value = "a photo of a red circle on a blue background"
    assert widget.wait(60)
    plain = shown(widget.image)
    assert widget.image.layout.display is None
    labels = [label for label, _ in widget.words.options]
    assert labels == ["image", "a", "photo", "of", "a", "red", "circle", "on", "a", "blue", "background"]
    widget.words.value = 5  # "circle", as a click does
    maps = widget.images[0].attention
    assert np.array_equal(shown(widget.image), np.asarray(Image.open(io.BytesIO(png_bytes(maps.overlay(5)))).convert("RGB")))
    assert not np.array_equal(shown(widget.image), plain) and "circle" in widget.status.value
    widget.words.value = -1
    assert np.array_equal(shown(widget.image), plain)
    widget.word_maps.value = False
    widget.generate_button.click()
    assert widget.wait(60) and widget.words.layout.display == "none"


def test_study_tab_plots_each_row_as_it_arrives_and_cancels(gen):
    from vitdream.testing.evaluators import Redness

    widget = generate(gen, steps=2, seed=0, evaluators=[Redness()])
    widget.prompt.value = "a red circle"
    assert widget.wait(60)
    plots = []
    widget.study.plot.observe(lambda change: plots.append(change["new"]), names="value")
    widget.study.scales.value = "1, 3, 6"
    widget.study.num_seeds.value = 2
    widget.study.run_button.click()
    assert widget.wait(120)
    study = widget.study.result
    assert study.column("guidance_scale") == [1.0, 3.0, 6.0] and study.seeds == [0, 1]
    assert len(plots) >= 3 and widget.study.plot.layout.display is None  # redrawn after every row
    tiles = shown(widget.study.grid)
    assert tiles.shape[1] > 2.5 * tiles.shape[0]  # one image per scale, side by side
    assert "<table>" in widget.study.table.value and "done" in widget.status.value
    widget.study.kind.value = "samplers x steps"
    widget.study.samplers.value = ["ddim", "euler"]
    widget.study.step_counts.value = "1, 2"
    widget.study.run = _cancel_after_first_row(widget.study)
    widget.study.run_button.click()
    assert widget.wait(120)
    assert widget.study.result.cancelled and len(widget.study.result.rows) == 1
    assert "cancelled after 1" in widget.status.value
    widget.study.step_counts.value = "1, x"
    widget.study.run = type(widget.study).run.__get__(widget.study)
    widget.study.run_button.click()
    assert widget.wait(60) and "not a comma-separated list" in widget.status.value


def _cancel_after_first_row(tab):
    """The tab's run, with Cancel pressed as soon as the first row is drawn."""
    show, run = tab.show, type(tab).run.__get__(tab)

    def cancelling_show(study):
        show(study)
        tab.cancel_button.click()

    def wrapped(cancel):
        tab.show = cancelling_show
        try:
            run(cancel)
        finally:
            tab.show = show

    return wrapped


def test_the_chosen_sampler_is_explained(gen):
    from vitdream.generation import list_samplers

    widget = generate(gen, steps=2, sampler="euler")
    described = {r["id"]: r["description"] for r in list_samplers()}
    assert described["euler"] and described["euler"] in widget.sampler_info.value
    widget.sampler.value = "ddim"
    assert described["ddim"] in widget.sampler_info.value
