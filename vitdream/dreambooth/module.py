"""The DreamBooth LightningModule: the diffusers ``train_dreambooth.py`` loss on Lightning.

Instance and class examples go through the UNet in ONE forward pass; the prediction is split and
``loss = mse(instance) + prior_loss_weight * mse(prior)``; min-SNR weights use each half's own
timesteps (the fix of diffusers issue #5791). Each sample's noise, timestep and VAE sample come
from a generator seeded by its run-wide position (:func:`~vitdream.dreambooth.data.sample_generator`).
Checkpoints hold only trainable weights + optimizer/scheduler state + RNG states, never the frozen VAE.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from vitdream.dreambooth.config import DreamBoothConfig
from vitdream.dreambooth.data import sample_generator
from vitdream.errors import VitdreamError

INSTANCE_STREAM, CLASS_STREAM = 1, 2
PREDICTION_TYPES = ("epsilon", "v_prediction")  # what diffusers' train_dreambooth.py trains; others raise there too


class DreamBoothModule(pl.LightningModule):
    """UNet (+ text encoder) fine-tuning with prior preservation. ``components`` come from a SD pipeline."""

    def __init__(self, config: DreamBoothConfig, components: dict[str, Any]) -> None:
        super().__init__()
        self.config = config
        self.unet = components["unet"]
        self.vae = components["vae"]
        self.text_encoder = components["text_encoder"]
        self.tokenizer = components["tokenizer"]
        self.inference_scheduler = components["scheduler"]
        from diffusers import DDPMScheduler

        self.noise_scheduler = DDPMScheduler.from_config(self.inference_scheduler.config)
        prediction_type = self.noise_scheduler.config.prediction_type
        if prediction_type not in PREDICTION_TYPES:
            raise VitdreamError(f"the base model's scheduler has prediction_type {prediction_type!r}; DreamBooth trains "
                                f"{' or '.join(PREDICTION_TYPES)} (diffusers' train_dreambooth.py raises too)")
        if config.class_labels_conditioning and self.unet.config.class_embed_type is None:
            raise VitdreamError("class_labels_conditioning: this base's UNet has no class embedding "
                                "(class_embed_type is None), so class labels would be ignored")
        self.strict_loading = False  # checkpoints omit frozen weights; on_load_checkpoint checks the rest
        self.last_metrics: dict[str, float] = {}
        self.world_batch = config.train_batch_size
        self._freeze()
        self.prompt_ids, self.prompt_mask = self._tokenize([config.instance_prompt, config.class_prompt or config.instance_prompt])
        self._prompt_embeds: torch.Tensor | None = None

    # -- what trains -------------------------------------------------------------------------------
    def _freeze(self) -> None:
        self.vae.requires_grad_(False)
        self.text_encoder.requires_grad_(self.config.train_text_encoder)
        self.unet.requires_grad_(True)
        if self.config.gradient_checkpointing:
            self.unet.enable_gradient_checkpointing()
            if self.config.train_text_encoder:
                self.text_encoder.gradient_checkpointing_enable()
        if self.config.enable_xformers_memory_efficient_attention:
            self.unet.enable_xformers_memory_efficient_attention()

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def train(self, mode: bool = True) -> "DreamBoothModule":
        """Frozen parts stay in eval mode whatever Lightning asks."""
        super().train(mode)
        self.vae.eval()
        if not self.config.train_text_encoder:
            self.text_encoder.eval()
        return self

    # -- text ----------------------------------------------------------------------------------------
    def _tokenize(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and attention mask, padded to ``tokenizer_max_length`` (default: the tokenizer's)."""
        max_length = self.config.tokenizer_max_length or self.tokenizer.model_max_length
        tokens = self.tokenizer(prompts, truncation=True, padding="max_length", max_length=max_length, return_tensors="pt")
        return tokens.input_ids, tokens.attention_mask

    def encode_prompts(self) -> torch.Tensor:
        """Text-encoder output of the two prompts (with the attention mask if ``text_encoder_use_attention_mask``)."""
        mask = self.prompt_mask.to(self.device) if self.config.text_encoder_use_attention_mask else None
        return self.text_encoder(self.prompt_ids.to(self.device), attention_mask=mask)[0]

    def prompt_embeddings(self) -> torch.Tensor:
        """(2, L, D): instance and class prompt embeddings (computed once when ``precompute_text_embeddings``)."""
        if not self.config.precompute_text_embeddings:
            if self.config.train_text_encoder:
                return self.encode_prompts()
            with torch.no_grad():
                return self.encode_prompts().detach()
        if self._prompt_embeds is None:
            with torch.no_grad():
                self._prompt_embeds = self.encode_prompts().detach()
        return self._prompt_embeds

    # -- latents, noise ---------------------------------------------------------------------------------
    def _per_sample(self, positions: torch.Tensor, rows: int, make: Any) -> torch.Tensor:
        """Stack ``make(generator)`` over ``rows``: instances (stream 1), then class examples (stream 2)."""
        n = positions.shape[0]
        return torch.stack([
            make(sample_generator(self.config.seed, int(positions[i % n]), INSTANCE_STREAM if i < n else CLASS_STREAM))
            for i in range(rows)
        ])

    def latent_distribution(self, inputs: torch.Tensor) -> Any:
        """The VAE's latent distribution of pixel inputs, or of cached distribution parameters."""
        from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

        if self.config.cache_latents:
            return DiagonalGaussianDistribution(inputs)
        with torch.no_grad():
            return self.vae.encode(inputs.to(self.vae.dtype)).latent_dist

    def training_inputs(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """(noisy latents, timesteps, target) for the batch, all drawn from per-sample generators."""
        positions = batch["positions"]
        dist = self.latent_distribution(batch["pixels"])
        mean, std = dist.mean.float(), dist.std.float()
        shape = mean.shape[1:]
        num_t = self.noise_scheduler.config.num_train_timesteps
        offset = self.config.offset_noise

        def draw(gen: torch.Generator) -> torch.Tensor:
            eps = torch.randn(shape, generator=gen)
            noise = torch.randn(shape, generator=gen)
            if offset:
                noise = noise + offset * torch.randn((shape[0], 1, 1), generator=gen)
            t = torch.randint(0, num_t, (1,), generator=gen).float()
            return torch.cat([eps.flatten(), noise.flatten(), t])

        draws = self._per_sample(positions, mean.shape[0], draw).to(self.device)
        size = mean[0].numel()
        eps, noise = draws[:, :size].view_as(mean), draws[:, size : 2 * size].view_as(mean)
        timesteps = draws[:, -1].long()
        latents = mean + std * eps
        vae_config = self.vae.config
        latents = (latents - (getattr(vae_config, "shift_factor", None) or 0.0)) * vae_config.scaling_factor
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        return noisy, timesteps, target

    # -- the loss ------------------------------------------------------------------------------------
    def compute_losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``loss``, ``instance_loss`` and (with prior preservation) ``prior_loss`` of one batch."""
        n = int(batch["num_instance"])
        noisy, timesteps, target = self.training_inputs(batch)
        embeds = self.prompt_embeddings()
        which = torch.zeros(noisy.shape[0], dtype=torch.long, device=self.device)
        which[n:] = 1
        class_labels = timesteps if self.config.class_labels_conditioning == "timesteps" else None
        pred = self.unet(noisy, timesteps, embeds[which], class_labels=class_labels).sample
        per_sample = F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
        per_sample = per_sample * self.snr_weights(timesteps)
        losses = {"instance_loss": per_sample[:n].mean()}
        loss = losses["instance_loss"]
        if noisy.shape[0] > n:
            losses["prior_loss"] = per_sample[n:].mean()
            loss = loss + self.config.prior_loss_weight * losses["prior_loss"]
        losses["loss"] = loss
        return losses

    def snr_weights(self, timesteps: torch.Tensor) -> torch.Tensor:
        """Min-SNR-gamma weight of each sample (ones when ``snr_gamma`` is off)."""
        gamma = self.config.snr_gamma
        if gamma is None:
            return torch.ones(timesteps.shape, device=timesteps.device)
        from diffusers.training_utils import compute_snr

        snr = compute_snr(self.noise_scheduler, timesteps)
        weights = torch.clamp(snr, max=gamma)
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            return weights / (snr + 1)
        return weights / snr

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        losses = self.compute_losses(batch)
        lr = self.trainer.optimizers[0].param_groups[0]["lr"] if self._trainer is not None else 0.0
        bs = int(batch["num_instance"])
        for name, value in losses.items():
            self.log(f"train/{name}", value.detach(), prog_bar=name == "loss", batch_size=bs)
        self.log("train/lr", lr, batch_size=bs)
        self.last_metrics = {k: v.detach() for k, v in losses.items()} | {"lr": lr}
        return losses["loss"]

    # -- optimizer ---------------------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        if self.config.allow_tf32:
            torch.backends.cuda.matmul.allow_tf32 = True  # as diffusers: TF32 matmuls on Ampere+ GPUs

    def optimizer_zero_grad(self, epoch: int, batch_idx: int, optimizer: Any) -> None:
        optimizer.zero_grad(set_to_none=self.config.set_grads_to_none)

    def configure_optimizers(self) -> dict[str, Any]:
        from diffusers.optimization import get_scheduler

        c = self.config
        scale = c.gradient_accumulation_steps * c.train_batch_size * max(1, self.trainer.world_size) if c.scale_lr else 1
        lr = c.learning_rate * scale
        params: Any = self.trainable_parameters()
        if c.text_encoder_lr is not None:  # two groups: the UNet at learning_rate, the text encoder at its own
            text = {id(p) for p in self.text_encoder.parameters()}
            params = [{"params": [p for p in params if id(p) not in text]},
                      {"params": [p for p in params if id(p) in text], "lr": c.text_encoder_lr * scale}]
        optimizer_class = torch.optim.AdamW
        if c.use_8bit_adam:  # the options checked that bitsandbytes is installed
            import bitsandbytes as bnb

            optimizer_class = bnb.optim.AdamW8bit
        optimizer = optimizer_class(
            params, lr=lr, betas=(c.adam_beta1, c.adam_beta2),
            weight_decay=c.adam_weight_decay, eps=c.adam_epsilon, **({"fused": True} if c.fused_adam else {}),
        )
        scheduler = get_scheduler(
            c.lr_scheduler, optimizer, num_warmup_steps=c.lr_warmup_steps, num_training_steps=c.max_train_steps,
            num_cycles=c.lr_num_cycles, power=c.lr_power,
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # -- checkpoints ---------------------------------------------------------------------------------
    def trainable_state_keys(self) -> set[str]:
        return {name for name, p in self.named_parameters() if p.requires_grad}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        keep = self.trainable_state_keys()
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keep}
        checkpoint["rng_states"] = rng_states()
        checkpoint["dreambooth"] = {"trainer": type(self).__name__, "seed": self.config.seed}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        missing = sorted(self.trainable_state_keys() - set(checkpoint.get("state_dict", {})))
        if missing:
            raise VitdreamError(
                f"checkpoint does not match this run: {len(missing)} trainable weights missing "
                f"(first: {missing[0]}); was it made with other options (train_text_encoder, LoRA rank)?"
            )
        if "rng_states" in checkpoint:
            set_rng_states(checkpoint["rng_states"])

    # -- sampling (validation images, class images) ------------------------------------------------
    def make_pipeline(self) -> Any:
        """A ``StableDiffusionPipeline`` sharing this module's (current) weights; safety checker off."""
        from diffusers import StableDiffusionPipeline

        pipe = StableDiffusionPipeline(
            vae=self.vae, text_encoder=self.text_encoder, tokenizer=self.tokenizer, unet=self.unet,
            scheduler=self.inference_scheduler, safety_checker=None, feature_extractor=None,
            requires_safety_checker=False,
        )
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def sample(self, prompt: str | list[str], seeds: list[int], num_inference_steps: int = 25,
               guidance_scale: float = 7.5) -> list[Any]:
        """Images of ``prompt`` (or of each of a list of prompts, prompt-major), one per seed, in one batched
        call at the training resolution (training mode restored after)."""
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        was_training = self.training
        self.eval()
        try:
            size = self.config.resolution
            generators = [torch.Generator().manual_seed(s) for _ in prompts for s in seeds]
            pipe = self.make_pipeline()
            if self.config.validation_scheduler:
                pipe.scheduler = validation_scheduler(self.config.validation_scheduler, self.inference_scheduler.config)
            with torch.no_grad():
                return pipe(
                    [p for p in prompts for _ in seeds], height=size, width=size, num_inference_steps=num_inference_steps,
                    guidance_scale=guidance_scale, generator=generators,
                ).images
        finally:
            self.train(was_training)


def validation_scheduler(name: str, config: Any) -> Any:
    """Scheduler ``name`` from ``config`` as diffusers' ``log_validation`` makes it (learned variance -> fixed_small)."""
    import diffusers

    options = {}
    if "variance_type" in config:
        variance = config.variance_type
        options["variance_type"] = "fixed_small" if variance in ("learned", "learned_range") else variance
    return getattr(diffusers, name).from_config(config, **options)


def rng_states() -> dict[str, Any]:
    """Torch, CUDA, NumPy and Python RNG states in types ``torch.load(weights_only=True)`` accepts."""
    from lightning_fabric.utilities.seed import _collect_rng_states

    states = _collect_rng_states()
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    states["numpy"] = [kind, torch.from_numpy(keys.astype("int64")), int(pos), int(has_gauss), float(gauss)]
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    from lightning_fabric.utilities.seed import _set_rng_states

    states = dict(states)
    if isinstance(states.get("numpy"), list):
        kind, keys, pos, has_gauss, gauss = states["numpy"]
        states["numpy"] = (kind, keys.numpy().astype("uint32"), pos, has_gauss, gauss)
    _set_rng_states(states)
