"""``DiffusersSD``: text-to-image with any diffusers Stable Diffusion 1.x/2.x pipeline.

Uses the pipeline's components (tokenizer, text encoder, UNet, VAE) and vitdream's own loop
(:mod:`vitdream.generation.cfg`) with a fresh scheduler from the chosen sampler plugin per call.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any, Sequence

from vitdream.base import Generator, GeneratorOptions, Sampler
from vitdream.base.diffusion import with_progress
from vitdream.components import get_entry
from vitdream.errors import OptionsError
from vitdream.generation.cfg import StepCallback, check_callback_inputs, denoise, step_arguments
from vitdream.base.results import ImageList, image_row
from vitdream.generation.pngmeta import KEY, save_image
from vitdream.generation.settings import GenerationSettings


class DiffusersSDOptions(GeneratorOptions):
    device: str | None = None
    dtype: str | None = None
    allow_pickle: bool = False
    lora: str | None = None
    lora_scale: float = 1.0


class DiffusersSD(Generator):
    """Stable Diffusion 1.x/2.x from diffusers, with batched classifier-free guidance."""

    id = "diffusers-sd"
    Options = DiffusersSDOptions

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        opts = self.options
        if hasattr(opts.model, "unet") and hasattr(opts.model, "vae"):
            self.pipe = opts.model
            if opts.lora:
                from vitdream.generation.loading import apply_lora

                apply_lora(self.pipe, opts.lora, scale=opts.lora_scale, allow_pickle=opts.allow_pickle)
        else:
            from vitdream.generation.loading import load_pipeline

            model = os.fspath(opts.model) if isinstance(opts.model, os.PathLike) else opts.model
            self.pipe = load_pipeline(
                model, device=opts.device, dtype=opts.dtype, allow_pickle=opts.allow_pickle,
                lora=opts.lora, lora_scale=opts.lora_scale,
            )
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        pipe = self.pipe
        loras = f" loras={len(self._loras())}" if self._loras() else ""
        return (f"<DiffusersSD model={self.model_name!r} {self.native_size}px device={pipe.device.type} "
                f"dtype={str(pipe.unet.dtype).replace('torch.', '')}{loras}>")

    # -- facts -----------------------------------------------------------------------------
    @property
    def model_name(self) -> str:
        """How the model is named in image metadata (path, hub id or ``vitdream:mini-sd``)."""
        return getattr(self.pipe, "vitdream_model", None) or getattr(self.pipe, "name_or_path", "") or "in-memory"

    @property
    def fingerprint(self) -> str:
        """``"sha256:..."`` of the weights in use (LoRAs included), recorded in every image."""
        from vitdream.generation.provenance import fingerprint

        return fingerprint(self.pipe)

    @property
    def native_size(self) -> int:
        """The image side the model was trained at (UNet sample size x VAE scale factor)."""
        return int(self.pipe.unet.config.sample_size) * int(self.pipe.vae_scale_factor)

    @staticmethod
    def samplers() -> list[dict[str, Any]]:
        """Every registered sampler: id, plugin, description, deterministic, stochastic."""
        from vitdream.generation import list_samplers

        return list_samplers()

    # -- settings --------------------------------------------------------------------------
    def settings(self, prompt: str, **values: Any) -> GenerationSettings:
        """Validated settings for ``prompt`` (all errors at once, before any compute)."""
        values = {k: v for k, v in values.items() if v is not None}
        sampler = values.get("sampler")
        if isinstance(sampler, Sampler):
            values["sampler"] = sampler.id
            values["sampler_options"] = sampler.options.model_dump()
        values.setdefault("height", self.native_size)
        values.setdefault("width", self.native_size)
        settings = GenerationSettings.parse("generate", prompt=prompt, model=self.model_name, weights=self.fingerprint,
                                            loras=self._loras(), **values)
        factor = int(self.pipe.vae_scale_factor)
        for side in ("height", "width"):
            if getattr(settings, side) % factor:
                raise OptionsError(f"generate: option {side!r}: must be a multiple of {factor} for this model's VAE")
        self.make_sampler(settings)  # unknown sampler id or bad sampler options fail here
        return settings

    def make_sampler(self, settings: GenerationSettings) -> Sampler:
        return get_entry("samplers", settings.sampler).create(**settings.sampler_options)

    def _loras(self) -> list[tuple[str, float]]:
        return [(path, scale) for _, path, scale in getattr(self.pipe, "vitdream_loras", [])]

    # -- generation ------------------------------------------------------------------------
    def _generate(self, prompt: str, settings: dict[str, Any], *, callback: StepCallback | None,
                  cancel: threading.Event | None) -> list[Any]:
        """Validate ``settings`` (all errors at once, before any compute), then :meth:`run`. Extra
        settings: ``guidance_rescale``, ``sampler_options``, ``callback_inputs`` (the tensors a step
        callback sees, see :data:`vitdream.generation.cfg.CALLBACK_INPUTS`; default ``("latents",)``).
        Each image carries its settings in ``image.info``. Provenance from :func:`vitdream.read_settings`
        (``model``, ``weights``, ``loras``) is checked (a warning when it is not this generator's);
        ``index``: make the batch, return only its image ``index`` (bit for bit that image)."""
        from vitdream.generation.provenance import PROVENANCE_KEYS, check_provenance

        callback_inputs = settings.pop("callback_inputs", ("latents",))
        attention = bool(settings.pop("attention", False))
        recorded = {key: settings.pop(key) for key in PROVENANCE_KEYS if key in settings}
        check_provenance(self, recorded)
        checked = self.settings(prompt, **settings)
        index = recorded.get("index")
        if index is not None and not 0 <= index < checked.num_images:
            raise OptionsError(f"generate: option 'index': {index} is not an image of a batch of {checked.num_images}")
        images = self.run(checked, callback=callback, callback_inputs=check_callback_inputs(callback_inputs),
                          cancel=cancel, attention=attention)
        return images if index is None else ImageList([images[index]])

    def run(self, settings: GenerationSettings, *, callback: StepCallback | None = None,
            callback_inputs: Sequence[str] = ("latents",), cancel: threading.Event | None = None,
            progress: bool = False, batched: bool = True, attention: bool = False) -> list[Any]:
        """Generate from validated ``settings``; ``batched=False`` uses two UNet calls per step.
        ``attention=True``: each image gets ``image.attention``, its per-word cross-attention maps
        (:mod:`vitdream.generation.attention`); the images themselves are unchanged."""
        import torch

        pipe, s = self.pipe, settings
        device = pipe.unet.device
        sampler = self.make_sampler(s)
        if progress:
            callback = with_progress(callback, s.steps)
        with self._lock, torch.inference_mode():
            cond, uncond = pipe.encode_prompt(s.prompt, device, s.num_images, s.cfg, s.negative_prompt or None)
            scheduler = sampler.make_scheduler(pipe.scheduler.config)
            scheduler.set_timesteps(s.steps, device=device)
            generators = [torch.Generator(device="cpu").manual_seed(s.seed + i) for i in range(s.num_images)]
            latents = self.initial_latents(s, generators) * scheduler.init_noise_sigma
            with self._attention_recorder(s, latents, attention, batched) as store:
                latents = denoise(
                    pipe.unet, scheduler, latents, cond, uncond if s.cfg else None,
                    guidance_scale=s.guidance_scale, guidance_rescale=s.guidance_rescale,
                    step_kwargs=step_arguments(scheduler, generators, sampler.step_kwargs()),
                    callback=callback, callback_inputs=callback_inputs, cancel=cancel, batched=batched,
                )
            images = self.decode(latents)
        if store is not None:
            self._attach_attention(images, s, store.maps())
        for i, image in enumerate(images):
            image.info[KEY] = json.dumps(s.for_image(i), sort_keys=True)
            image.info["parameters"] = s.a1111_parameters(i)
        return ImageList(images)

    def _attention_recorder(self, settings: GenerationSettings, latents: Any, attention: bool, batched: bool) -> Any:
        from contextlib import nullcontext

        if not attention:
            return nullcontext()
        if settings.cfg and not batched:
            raise OptionsError("generate: option 'attention': needs the batched guidance path (batched=True)")
        from vitdream.generation.attention import record_attention

        return record_attention(self.pipe.unet, settings.num_images, tuple(latents.shape[-2:]))

    def _attach_attention(self, images: list[Any], settings: GenerationSettings, heat: Any) -> None:
        from vitdream.generation.attention import AttentionMaps, word_tokens

        words = word_tokens(self.pipe.tokenizer, settings.prompt)
        for image, maps in zip(images, heat):
            image.attention = AttentionMaps(maps, words, image.size, image)

    def initial_latents(self, settings: GenerationSettings, generators: list[Any]) -> Any:
        """Unit Gaussian latents, image ``i`` drawn from ``generators[i]`` (on the CPU, for reproducibility)."""
        from diffusers.utils.torch_utils import randn_tensor

        factor = self.pipe.vae_scale_factor
        shape = (settings.num_images, self.pipe.unet.config.in_channels,
                 settings.height // factor, settings.width // factor)
        unet = self.pipe.unet
        return randn_tensor(shape, generator=generators, device=unet.device, dtype=unet.dtype)

    def decode(self, latents: Any) -> list[Any]:
        """Latents to PIL images with the VAE (also what a per-step preview shows)."""
        import torch

        vae = self.pipe.vae
        with torch.inference_mode():
            pixels = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
        return self.pipe.image_processor.postprocess(pixels, output_type="pil")

    def preview(self, latents: Any) -> list[Any]:
        """A step's latents as PIL images (:meth:`decode`)."""
        return self.decode(latents)

    def guidance_sweep(
        self, prompt: str, scales: Sequence[float] = (1, 3, 5, 7.5, 10), seed: int = 0, **settings: Any
    ) -> Any:
        """One row of images, same prompt and seed, one per guidance scale (labelled ``g=...``).

        The row's ``info["images"]`` holds the individual images (each with its settings).
        """
        if not scales:
            raise OptionsError("guidance_sweep: option 'scales': give at least one guidance scale")
        checked = [self.settings(prompt, seed=seed, guidance_scale=g, **settings) for g in scales]
        images = [self.run(s)[0] for s in checked]
        row = image_row(images, [f"g={g:g}" for g in scales])
        row.info["images"] = images
        return row

    def reproduce(self, source: Any, *, exact: bool = True) -> Any:
        """Regenerate the image whose PNG metadata is in ``source`` (a path or PIL image).

        With ``exact=True`` (default) an image of a batch is made by rerunning its batch (batched
        float maths can differ in the last bits from a batch of one); ``exact=False`` regenerates it
        alone with seed ``seed + index``. Warns when the image was made with other weights or LoRAs.
        """
        from vitdream.generation.provenance import read_settings as generate_settings

        settings = generate_settings(source)
        settings.update(model=self.model_name)
        if not exact and "index" in settings:
            settings.update(seed=settings["seed"] + settings.pop("index"), num_images=1)
        return self.generate(**settings)[0]

    def guidance_study(self, prompts: Any, scales: Sequence[float] = (1, 2, 3, 5, 7.5, 10, 15),
                       seeds: Sequence[int] = range(8), evaluators: Sequence[Any] | None = None, **options: Any) -> Any:
        """Every prompt at every guidance scale, fixed seeds, scored (:func:`vitdream.generation.studies.guidance_study`)."""
        from vitdream.generation.studies import DEFAULT_EVALUATORS, guidance_study

        return guidance_study(self, prompts, scales, seeds, evaluators or DEFAULT_EVALUATORS, **options)

    def sampler_study(self, prompts: Any, samplers: Sequence[str] = ("ddim", "euler", "dpm-solver++"),
                      steps: Sequence[int] = (5, 10, 20, 50), **options: Any) -> Any:
        """Every sampler at every step count, fixed seeds, scored (:func:`vitdream.generation.studies.sampler_study`)."""
        from vitdream.generation.studies import sampler_study

        return sampler_study(self, prompts, samplers, steps, **options)

    save = staticmethod(save_image)
