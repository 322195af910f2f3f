"""Generation: batched CFG, samplers as plugins, seeds, PNG metadata round trip, bad arguments."""

from __future__ import annotations

import copy
import json
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from vitdream.errors import OptionsError, UnknownIdError, VitdreamError
from vitdream.generation import list_samplers, load_generator
from vitdream.generation.cfg import GenerationCancelled, denoise
from vitdream.generation.pngmeta import read_settings
from vitdream.testing.sd import tiny_sd_pipeline

PROMPT = "a photo of sks dog"


@pytest.fixture(scope="module")
def gen():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the shared test machine is oversubscribed; 2 threads spin-wait 10x slower
    yield load_generator(tiny_sd_pipeline(unet_channels=(16, 32), vae_channels=(16, 32), sample_size=8))
    torch.set_num_threads(threads)


class UNetCalls:
    """Counts UNet forward calls and records the batch size of each (a forward hook, no mock)."""

    def __init__(self, unet):
        self.batches: list[int] = []
        self.handle = unet.register_forward_pre_hook(lambda _m, args: self.batches.append(args[0].shape[0]))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def pixels(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def latents_after(gen, settings, batched, unet):
    """Final latents of the denoising loop (in ``unet``'s dtype), batched CFG or two UNet calls per step."""
    pipe = gen.pipe
    sampler = gen.make_sampler(settings)
    with torch.inference_mode():
        cond, uncond = pipe.encode_prompt(settings.prompt, pipe.device, settings.num_images, True, None)
        scheduler = sampler.make_scheduler(pipe.scheduler.config)
        scheduler.set_timesteps(settings.steps)
        gens = [torch.Generator().manual_seed(settings.seed + i) for i in range(settings.num_images)]
        latents = gen.initial_latents(settings, gens) * scheduler.init_noise_sigma
        return denoise(unet, scheduler, latents.to(unet.dtype), cond.to(unet.dtype), uncond.to(unet.dtype),
                       guidance_scale=settings.guidance_scale, batched=batched)


def test_batched_cfg_equals_two_unet_calls_and_calls_unet_once_per_step(gen):
    settings = gen.settings(PROMPT, steps=3, seed=0, guidance_scale=7.5, num_images=2)
    with UNetCalls(gen.pipe.unet) as batched_calls:
        batched = latents_after(gen, settings, True, gen.pipe.unet)
    with UNetCalls(gen.pipe.unet) as two_calls:
        separate = latents_after(gen, settings, False, gen.pipe.unet)
    assert batched_calls.batches == [4, 4, 4]  # uncond + cond of 2 images, one call per step
    assert two_calls.batches == [2] * 6
    # float32 kernels round differently for batch 4 and batch 2 (~1e-6 per UNet call, times g=7.5)
    assert (batched - separate).abs().max().item() <= 1e-4
    # in float64 that rounding vanishes: the two are the same computation
    unet64 = copy.deepcopy(gen.pipe.unet).double()
    diff = latents_after(gen, settings, True, unet64) - latents_after(gen, settings, False, unet64)
    assert diff.abs().max().item() <= 1e-5
    with UNetCalls(gen.pipe.unet) as public:
        gen.generate(PROMPT, steps=3, seed=0, guidance_scale=2.0)
    assert public.batches == [2, 2, 2]


@pytest.mark.parametrize("scale", [1.0, 0.0])
def test_scale_at_most_one_skips_the_unconditional_pass(gen, scale):
    text_calls: list[int] = []
    handle = gen.pipe.text_encoder.register_forward_pre_hook(lambda _m, args: text_calls.append(args[0].shape[0]))
    try:
        with UNetCalls(gen.pipe.unet) as calls:
            gen.generate(PROMPT, steps=2, seed=0, guidance_scale=scale, negative_prompt="blue")
    finally:
        handle.remove()
    assert calls.batches == [1, 1]
    assert text_calls == [1]  # the negative prompt is not even encoded


def test_same_seed_same_image_and_batch_seeds_follow_seed_plus_index(gen):
    a = gen.generate(PROMPT, steps=2, seed=11, num_images=2)
    b = gen.generate(PROMPT, steps=2, seed=11, num_images=2)
    assert all(np.array_equal(pixels(x), pixels(y)) for x, y in zip(a, b))
    assert not np.array_equal(pixels(a[0]), pixels(a[1]))
    alone = gen.generate(PROMPT, steps=2, seed=12)[0]  # image 1 of the batch used seed 12
    assert np.abs(pixels(alone) - pixels(a[1])).max() <= 1
    assert json.loads(a[1].info["vitdream"])["image_seed"] == 12
    html = a._repr_html_()  # how a notebook shows the result
    assert html.count("data:image/png;base64,") == 2 and "seed 11" in html and "seed 12" in html


def test_every_listed_sampler_runs_and_its_deterministic_flag_is_true(gen):
    rows = list_samplers()
    assert {"ddim", "euler", "euler-ancestral", "dpm-solver++"} <= {r["id"] for r in rows}
    for row in rows:
        first = gen.generate(PROMPT, steps=3, seed=5, sampler=row["id"])[0]
        again = gen.generate(PROMPT, steps=3, seed=5, sampler=row["id"])[0]
        assert np.array_equal(pixels(first), pixels(again)) == row["deterministic"], row["id"]
        assert json.loads(first.info["vitdream"])["sampler"] == row["id"]
    ancestral = [gen.generate(PROMPT, steps=3, seed=s, sampler="euler-ancestral")[0] for s in (1, 2)]
    assert not np.array_equal(pixels(ancestral[0]), pixels(ancestral[1]))


def test_samplers_keep_the_models_schedule_and_prediction_type(gen):
    from diffusers import DDIMScheduler

    sd2_config = DDIMScheduler.from_config(gen.pipe.scheduler.config, prediction_type="v_prediction",
                                           beta_end=0.02).config  # an SD 2.x-style v-prediction model
    for row in list_samplers():
        scheduler = gen.make_sampler(gen.settings(PROMPT, sampler=row["id"])).make_scheduler(sd2_config)
        assert (scheduler.config.prediction_type, scheduler.config.beta_end) == ("v_prediction", 0.02), row["id"]


def test_a_third_party_sampler_registered_by_a_plugin_is_used(gen, fresh_plugins):
    from vitdream import hookimpl
    from vitdream.base import Sampler

    made = []

    class UniPCSampler(Sampler):
        """UniPC multistep (third party)."""

        id = "unipc-test"

        def make_scheduler(self, config):
            from diffusers import UniPCMultistepScheduler

            made.append(UniPCMultistepScheduler.from_config(config))
            return made[-1]

    class Plugin:
        @hookimpl
        def register_samplers(self, register):
            register(UniPCSampler)

    fresh_plugins.register_plugin(Plugin(), name="unipc-plugin")
    assert {"id": "unipc-test", "plugin": "unipc-plugin", "deterministic": True}.items() <= next(
        r for r in list_samplers() if r["id"] == "unipc-test").items()
    image = gen.generate(PROMPT, steps=3, seed=0, sampler="unipc-test")[0]
    assert len(made) == 1 and type(made[0]).__name__ == "UniPCMultistepScheduler"
    assert made[0].timesteps.numel() == 3
    assert read_settings(image)["sampler"] == "unipc-test"


def test_png_metadata_round_trips_to_the_same_image(gen, tmp_path):
    images = gen.generate(PROMPT, steps=3, seed=7, num_images=2, guidance_scale=5, negative_prompt="red",
                          sampler="euler-ancestral", guidance_rescale=0.3)
    path = gen.save(images[1], tmp_path / "out.png")
    settings = read_settings(path)
    assert {k: settings[k] for k in ("prompt", "negative_prompt", "seed", "image_seed", "guidance_scale",
                                     "sampler", "steps", "height", "width", "model", "index")} == {
        "prompt": PROMPT, "negative_prompt": "red", "seed": 7, "image_seed": 8, "guidance_scale": 5.0,
        "sampler": "euler-ancestral", "steps": 3, "height": 16, "width": 16, "model": gen.model_name, "index": 1}
    with Image.open(path) as png:
        assert {"Seed: 8", "CFG scale: 5", "Sampler: Euler a"} <= set(png.info["parameters"].replace("\n", ", ").split(", "))
        saved = pixels(png)
    assert np.array_equal(pixels(gen.reproduce(path)), saved)
    assert np.abs(pixels(gen.reproduce(path, exact=False)) - saved).max() <= 1
    with pytest.raises(VitdreamError, match="no vitdream generation settings"):
        read_settings(Image.new("RGB", (8, 8)))


def test_guidance_sweep_is_one_row_with_the_same_seed(gen):
    row = gen.guidance_sweep(PROMPT, scales=[1, 4], seed=3, steps=2)
    tiles = row.info["images"]
    assert [read_settings(t)["guidance_scale"] for t in tiles] == [1.0, 4.0]
    assert {read_settings(t)["seed"] for t in tiles} == {3}
    assert np.array_equal(pixels(tiles[1]), pixels(gen.generate(PROMPT, steps=2, seed=3, guidance_scale=4)[0]))
    assert row.width >= 2 * 64 and row.height > 64


def test_step_callback_sees_only_whitelisted_tensors_and_can_cancel(gen):
    seen = []
    gen.generate(PROMPT, steps=3, seed=0, callback=lambda info: seen.append(info), callback_inputs=["latents"])
    assert [i["step"] for i in seen] == [1, 2, 3] and set(seen[0]) == {"step", "num_steps", "timestep", "latents"}
    preview = gen.preview(seen[0]["latents"])
    assert preview[0].size == (16, 16)
    with pytest.raises(OptionsError, match="callback_inputs"):
        gen.generate(PROMPT, steps=2, callback=print, callback_inputs=["unet"])
    cancel = threading.Event()

    def stop_after_first(info):
        cancel.set()

    with UNetCalls(gen.pipe.unet) as calls, pytest.raises(GenerationCancelled, match="step 2 of 5"):
        gen.generate(PROMPT, steps=5, callback=stop_after_first, cancel=cancel)
    assert len(calls.batches) == 1


@pytest.mark.parametrize(
    "bad, field",
    [
        (dict(steps=0), "steps"),
        (dict(guidance_scale=-1), "guidance_scale"),
        (dict(guidance_scale=float("nan")), "guidance_scale"),
        (dict(sampler="nope"), "nope"),
        (dict(height=20), "height"),
        (dict(width=12), "width"),
        (dict(prompt="   "), "prompt"),
        (dict(num_images=0), "num_images"),
        (dict(seed=-1), "seed"),
        (dict(sampler="ddim", sampler_options={"eta": 3}), "eta"),
    ],
)
def test_bad_arguments_are_clear_errors_before_any_compute(gen, bad, field):
    kwargs = {"prompt": PROMPT, **bad}
    with UNetCalls(gen.pipe.unet) as calls, pytest.raises((OptionsError, UnknownIdError)) as err:
        gen.generate(kwargs.pop("prompt"), **kwargs)
    assert field in str(err.value)
    assert calls.batches == []
