"""DreamBooth loss math on a fixed batch, frozen VAE, min-SNR split, and class-image generation."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from vitdream.dreambooth.config import DreamBoothConfig
from vitdream.dreambooth.data import sample_generator
from vitdream.dreambooth.module import CLASS_STREAM, INSTANCE_STREAM, DreamBoothModule
from vitdream.testing.dreambooth import TINY_SD_SIZES
from vitdream.testing.sd import tiny_sd_pipeline


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


@pytest.fixture(scope="module")
def pipe():
    return tiny_sd_pipeline(**TINY_SD_SIZES)


def make_module(pipe, **options) -> DreamBoothModule:
    options = {"cache_latents": False, "fused_adam": False, **options}  # not the embedded base's: pixels in, plain AdamW
    config = DreamBoothConfig(instance_data_dir=[Image.new("RGB", (16, 16))], resolution=16,
                              instance_prompt="a photo of sks dog", class_prompt="a photo of a dog", **options)
    components = {k: getattr(pipe, k) for k in ("unet", "vae", "text_encoder", "tokenizer", "scheduler")}
    return DreamBoothModule(config, components)


def hand_losses(module: DreamBoothModule, batch, gamma=None):
    """The diffusers formulas written out: VAE sample, add_noise, epsilon target, split mse (+ min-SNR)."""
    pixels, positions, n = batch["pixels"], batch["positions"], int(batch["num_instance"])
    dist = module.vae.encode(pixels).latent_dist
    acp = module.noise_scheduler.alphas_cumprod
    shape = dist.mean.shape[1:]
    rows = []
    for i in range(pixels.shape[0]):
        gen = sample_generator(module.config.seed, int(positions[i % n]), INSTANCE_STREAM if i < n else CLASS_STREAM)
        eps, noise = torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)
        t = int(torch.randint(0, 1000, (1,), generator=gen))
        latent = (dist.mean[i] + dist.std[i] * eps) * module.vae.config.scaling_factor
        noisy = acp[t].sqrt() * latent + (1 - acp[t]).sqrt() * noise
        prompt = module.prompt_ids[0 if i < n else 1][None]
        pred = module.unet(noisy[None], torch.tensor([t]), module.text_encoder(prompt)[0]).sample[0]
        weight = 1.0 if gamma is None else float(min(acp[t] / (1 - acp[t]), gamma) / (acp[t] / (1 - acp[t])))
        rows.append(weight * ((pred - noise) ** 2).mean())
    instance, prior = torch.stack(rows[:n]).mean(), torch.stack(rows[n:]).mean()
    return instance, prior


@pytest.mark.parametrize("gamma", [None, 5.0])
def test_prior_preservation_loss_matches_hand_computation(pipe, gamma):
    module = make_module(pipe, prior_loss_weight=0.7, snr_gamma=gamma, seed=3)
    gen = torch.Generator().manual_seed(0)
    batch = {"pixels": torch.rand(4, 3, 16, 16, generator=gen) * 2 - 1, "positions": torch.tensor([5, 9]),
             "num_instance": torch.tensor(2)}
    losses = module.compute_losses(batch)
    with torch.no_grad():
        instance, prior = hand_losses(module, batch, gamma)
    assert losses["instance_loss"].item() == pytest.approx(instance.item(), rel=1e-4)
    assert losses["prior_loss"].item() == pytest.approx(prior.item(), rel=1e-4)
    assert losses["loss"].item() == pytest.approx(instance.item() + 0.7 * prior.item(), rel=1e-4)
    assert instance.item() != pytest.approx(prior.item(), rel=1e-3)  # the two halves really differ


def test_vae_frozen_and_gets_no_gradient(pipe):
    module = make_module(pipe, train_text_encoder=False)
    module.train()
    assert not module.vae.training and not module.text_encoder.training and module.unet.training
    batch = {"pixels": torch.zeros(2, 3, 16, 16), "positions": torch.tensor([0]), "num_instance": torch.tensor(1)}
    module.compute_losses(batch)["loss"].backward()
    assert all(p.grad is None for p in module.vae.parameters())
    assert all(p.grad is None for p in module.text_encoder.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.unet.parameters())
    assert module.trainable_state_keys() == {f"unet.{k}" for k, _ in module.unet.named_parameters()}


def test_class_images_generated_only_when_missing(pipe, tmp_path):
    from vitdream.dreambooth.class_images import ensure_class_images

    made = []
    options = dict(pipeline=pipe, seed=1, resolution=16, num_inference_steps=2, progress=False,
                   on_image=lambda i, path: made.append(i))
    paths = ensure_class_images(tmp_path, "a photo of a dog", 3, **options)
    assert made == [0, 1, 2] and [p.name for p in paths] == ["class-00000.png", "class-00001.png", "class-00002.png"]
    original = paths[1].read_bytes()
    paths[1].unlink()
    made.clear()
    assert len(ensure_class_images(tmp_path, "a photo of a dog", 3, **options)) == 3
    assert made == [1]  # only the missing one, with its own seed: same image as before
    assert paths[1].read_bytes() == original
    made.clear()
    assert len(ensure_class_images(tmp_path, "a photo of a dog", 2, **options)) == 2 and made == []


def test_bf16_autocast_and_gradient_checkpointing_keep_trainable_weights_fp32(pipe):
    module = make_module(pipe, gradient_checkpointing=True, mixed_precision="bf16")
    module.train()
    assert module.unet.is_gradient_checkpointing
    batch = {"pixels": torch.zeros(2, 3, 16, 16), "positions": torch.tensor([0]), "num_instance": torch.tensor(1)}
    with torch.autocast("cpu", dtype=torch.bfloat16):  # what Lightning's "bf16-mixed" does
        loss = module.compute_losses(batch)["loss"]
    loss.backward()
    trainable = module.trainable_parameters()
    assert trainable and all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in trainable)
    assert module.config.lightning_precision == "bf16-mixed"


def test_8bit_adam_uses_bitsandbytes_or_says_it_is_missing(pipe):
    import importlib.util

    from vitdream.errors import VitdreamError

    if importlib.util.find_spec("bitsandbytes") is None:  # refused with the options, before anything runs
        with pytest.raises(VitdreamError, match="use_8bit_adam.*needs the bitsandbytes package"):
            DreamBoothConfig.parse("dreambooth", instance_data_dir="x", use_8bit_adam=True)
    else:
        module = make_module(pipe, use_8bit_adam=True)
        assert type(module.configure_optimizers()["optimizer"]).__name__ == "AdamW8bit"


def test_embedded_base_gets_cpu_sized_defaults_and_explicit_options_win():
    from vitdream.dreambooth.config import EMBEDDED_BASE_DEFAULTS

    embedded = DreamBoothConfig(instance_data_dir="x")
    assert {k: getattr(embedded, k) for k in EMBEDDED_BASE_DEFAULTS} == EMBEDDED_BASE_DEFAULTS
    hub = DreamBoothConfig(instance_data_dir="x", base="CompVis/stable-diffusion-v1-4")
    assert (hub.learning_rate, hub.max_train_steps, hub.num_class_images) == (5e-6, 400, 100)  # diffusers' own
    from vitdream.datasets.subject import MINI_SD_DREAMBOOTH

    assert MINI_SD_DREAMBOOTH == EMBEDDED_BASE_DEFAULTS  # the subject's settings, for a base given by path
    mine = DreamBoothConfig(instance_data_dir="x", learning_rate=3e-6, max_steps=7)
    assert (mine.learning_rate, mine.max_train_steps) == (3e-6, 7)
    assert mine.num_class_images == EMBEDDED_BASE_DEFAULTS["num_class_images"]


def test_class_image_cache_is_keyed_by_the_base_weights(tmp_path, monkeypatch):
    from vitdream.dreambooth.class_images import default_class_dir

    monkeypatch.setenv("VITDREAM_CACHE", str(tmp_path / "cache"))
    base = tmp_path / "base"
    (base / "unet").mkdir(parents=True)
    weights = base / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(b"first weights")
    first = default_class_dir(str(base), "a photo of a star", 32)
    assert default_class_dir(str(base), "a photo of a star", 32) == first
    assert str(first).startswith(str(tmp_path / "cache"))
    weights.write_bytes(b"retrained weights")  # same folder name, new weights: stale class images must not be reused
    assert default_class_dir(str(base), "a photo of a star", 32) != first
    assert default_class_dir(str(base), "a photo of a dog", 32) != default_class_dir(str(base), "a photo of a star", 32)


def test_text_encoder_lr_gives_the_text_encoder_its_own_step_size(pipe):
    from vitdream.errors import VitdreamError

    module = make_module(pipe, learning_rate=1e-4, text_encoder_lr=1e-2, adam_weight_decay=0.0)
    module.train()
    optimizer = module.configure_optimizers()["optimizer"]
    unet_before = [p.detach().clone() for p in module.unet.parameters()]
    text_before = [p.detach().clone() for p in module.text_encoder.parameters()]
    batch = {"pixels": torch.zeros(2, 3, 16, 16), "positions": torch.tensor([0]), "num_instance": torch.tensor(1)}
    module.compute_losses(batch)["loss"].backward()
    optimizer.step()  # Adam's first step moves every parameter with a gradient by about its group's lr

    def largest_move(params, before):
        return max(float((p.detach() - b).abs().max()) for p, b in zip(params, before))

    assert largest_move(module.unet.parameters(), unet_before) == pytest.approx(1e-4, rel=0.05)
    assert largest_move(module.text_encoder.parameters(), text_before) == pytest.approx(1e-2, rel=0.05)
    with pytest.raises(VitdreamError, match="text_encoder_lr: the text encoder is frozen"):
        DreamBoothConfig.parse("dreambooth", instance_data_dir="x", text_encoder_lr=1e-3, train_text_encoder=False)


def test_fused_adam_is_pytorchs_fused_kernel_with_the_same_update(pipe):
    from vitdream.errors import VitdreamError

    parts = (pipe.unet, pipe.text_encoder)  # the module trains the fixture's own UNet and text encoder
    start = [{k: v.detach().clone() for k, v in part.state_dict().items()} for part in parts]
    moved = {}
    for fused in (False, True):
        for part, state in zip(parts, start):  # both rounds from the same weights
            part.load_state_dict(state)
        module = make_module(pipe, fused_adam=fused, learning_rate=1e-3)
        module.train()
        optimizer = module.configure_optimizers()["optimizer"]
        assert optimizer.defaults.get("fused") is (True if fused else None)
        optimizer.zero_grad(set_to_none=True)  # the parameters are the fixture's: drop the last round's gradients
        batch = {"pixels": torch.zeros(2, 3, 16, 16), "positions": torch.tensor([0]), "num_instance": torch.tensor(1)}
        module.compute_losses(batch)["loss"].backward()
        optimizer.step()
        moved[fused] = {k: v.detach().clone() for k, v in module.unet.state_dict().items()}
    for part, state in zip(parts, start):
        part.load_state_dict(state)
    assert max(float((moved[True][k] - moved[False][k]).abs().max()) for k in moved[True]) <= 1e-6
    with pytest.raises(VitdreamError, match="fused_adam.*pick one|needs the bitsandbytes package"):
        DreamBoothConfig.parse("dreambooth", instance_data_dir="x", fused_adam=True, use_8bit_adam=True)
