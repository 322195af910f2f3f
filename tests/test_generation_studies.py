"""Guidance and sampler studies: fixed seeds, batched, scored through evaluators, cancellable; the lesson on the mini SD."""

from __future__ import annotations

import threading
import numpy as np
import pytest

from vitdream.evaluation import diversity
from vitdream.generation import load_generator
from vitdream.generation.studies import guidance_study, sampler_study, seed_batches
from vitdream.testing.evaluators import Redness
from vitdream.testing.sd import tiny_sd_pipeline

pytestmark = pytest.mark.usefixtures("one_thread")
PROMPTS = ["a photo of a red circle on a blue background", "a photo of a green square on a white background"]


@pytest.fixture(scope="module")
def gen(one_thread):
    return load_generator(tiny_sd_pipeline(unet_channels=(16, 32), vae_channels=(16, 32), sample_size=8))


def test_seed_batches_group_consecutive_seeds():
    assert seed_batches([0, 1, 2, 5, 6, 9]) == [(0, 3), (5, 2), (9, 1)]
    assert seed_batches(range(10), limit=4) == [(0, 4), (4, 4), (8, 2)]


def test_guidance_study_uses_fixed_seeds_batches_and_scores_each_scale(gen):
    calls = []
    unet_batches = []
    handle = gen.pipe.unet.register_forward_pre_hook(lambda _m, args: unet_batches.append(args[0].shape[0]))
    try:
        study = guidance_study(gen, PROMPTS, scales=[1, 4], seeds=[3, 4, 5], evaluators=[Redness()], steps=2,
                               progress=False, on_row=lambda s: calls.append(len(s.rows)))
    finally:
        handle.remove()
    assert calls == [1, 2] and study.column("guidance_scale") == [1.0, 4.0]
    assert set(unet_batches) == {3, 6}  # three seeds in one batch; doubled for guidance > 1
    images = study.images[4.0]
    alone = gen.generate(PROMPTS[1], seed=4, steps=2, guidance_scale=4)[0]
    assert np.array_equal(np.asarray(images[4]), np.asarray(alone))  # prompt 1, seed 4: fixed seeds
    row = study.rows[1]
    reds = [np.asarray(im.convert("RGB"), float)[..., 0].mean() / 255 for im in images]
    assert row["red"] == pytest.approx(np.mean(reds))
    vectors = Redness().embed(images)
    assert row["diversity"] == pytest.approx(np.mean([diversity(vectors[:3]), diversity(vectors[3:])]))
    assert row["seconds_per_image"] > 0 and study.fidelity == ["red"]
    assert len(study.plot().axes) == 3 and study.grid(prompt=1).width > study.grid().height


def test_a_cancelled_study_keeps_its_finished_rows(gen):
    cancel = threading.Event()
    study = sampler_study(gen, PROMPTS[0], samplers=["ddim", "euler"], steps=[1, 3], seeds=[0, 1],
                          evaluators=[Redness()], progress=False, cancel=cancel, on_row=lambda s: cancel.set())
    assert study.cancelled and len(study.rows) == 1 and "cancelled" in repr(study)


def test_sampler_study_measures_change_to_the_final_image(gen):
    study = sampler_study(gen, PROMPTS[0], samplers=["ddim", "euler"], steps=[1, 4], seeds=[0, 1],
                          evaluators=[Redness()], progress=False)
    assert [(r["sampler"], r["steps"]) for r in study.rows] == [("ddim", 4), ("ddim", 1), ("euler", 4), ("euler", 1)]
    assert study.rows[0]["change_to_final"] == 0 and study.rows[1]["change_to_final"] > 0
    expected = np.mean([np.abs(np.asarray(a, float) - np.asarray(b, float)).mean() / 255
                        for a, b in zip(study.images[("euler", 1)], study.images[("euler", 4)])])
    assert study.rows[3]["change_to_final"] == pytest.approx(expected)
    assert len(study.plot().axes) == 4


def test_guidance_lesson_on_the_embedded_model():
    """Fidelity (shapes-world) rises and diversity (mini ViT embeddings) falls from guidance 1 to 7.5."""
    prompts = ["a photo of a red star on a blue background", "a photo of a green circle on a white background",
               "a photo of a yellow triangle on a purple background", "a photo of a blue square on a grey background"]
    study = load_generator().guidance_study(prompts, scales=[1, 7.5], seeds=range(4), steps=15, progress=False)
    low, high = study.rows
    assert high["prompt_fidelity"] > low["prompt_fidelity"], study
    assert high["diversity"] < low["diversity"], study
