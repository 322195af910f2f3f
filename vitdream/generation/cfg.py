"""The denoising loop with classifier-free guidance in one UNet call per step.

With guidance, the unconditional and conditional embeddings are concatenated once, the latents
doubled at each step, the UNet output split and combined as ``uncond + g * (cond - uncond)``
(optionally rescaled, arXiv:2305.08891). Without guidance (``uncond is None``), only the
conditional half runs.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Iterable

from vitdream.errors import GenerationCancelled, OptionsError

__all__ = ["CALLBACK_INPUTS", "GenerationCancelled", "StepCallback", "apply_guidance", "check_callback_inputs", "denoise", "step_arguments"]

# What a step callback may ask to see (diffusers' ``callback_on_step_end_tensor_inputs`` idea).
CALLBACK_INPUTS: tuple[str, ...] = ("latents", "noise_pred", "prompt_embeds", "negative_prompt_embeds")
StepCallback = Callable[[dict[str, Any]], "dict[str, Any] | None"]


def check_callback_inputs(names: Iterable[str]) -> tuple[str, ...]:
    names = tuple(names)
    unknown = [n for n in names if n not in CALLBACK_INPUTS]
    if unknown:
        raise OptionsError(f"callback_inputs: {unknown} not allowed; a step callback may see {list(CALLBACK_INPUTS)}")
    return names


def apply_guidance(uncond: Any, cond: Any, scale: float, rescale: float = 0.0) -> Any:
    """``uncond + scale * (cond - uncond)``, rescaled toward ``cond``'s std by ``rescale``."""
    guided = uncond + scale * (cond - uncond)
    if rescale > 0:
        dims = list(range(1, cond.ndim))
        rescaled = guided * (cond.std(dim=dims, keepdim=True) / guided.std(dim=dims, keepdim=True))
        guided = rescale * rescaled + (1 - rescale) * guided
    return guided


def step_arguments(scheduler: Any, generators: Any, extra: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``scheduler.step``: the seeded generators where it draws noise, plus ``extra``."""
    accepted = inspect.signature(scheduler.step).parameters
    kwargs = {k: v for k, v in extra.items() if k in accepted}
    if "generator" in accepted:
        kwargs["generator"] = generators
    return kwargs


def denoise(
    unet: Any,
    scheduler: Any,
    latents: Any,
    cond: Any,
    uncond: Any = None,
    *,
    guidance_scale: float = 7.5,
    guidance_rescale: float = 0.0,
    step_kwargs: dict[str, Any] | None = None,
    callback: StepCallback | None = None,
    callback_inputs: Iterable[str] = ("latents",),
    cancel: Any = None,
    batched: bool = True,
) -> Any:
    """Run ``scheduler.timesteps`` (already set) from ``latents``; return the final latents.

    ``uncond`` None skips guidance. ``batched=False`` makes two UNet calls per step instead of
    one (the reference the batched path is tested and benchmarked against).
    ``callback(info)`` gets ``step`` (1-based), ``num_steps``, ``timestep`` and the tensors named in
    ``callback_inputs``; a returned dict may replace ``latents``. ``cancel``: a
    ``threading.Event``; when set, :class:`GenerationCancelled` is raised before the next step.
    """
    import torch

    inputs = check_callback_inputs(callback_inputs)
    step_kwargs = step_kwargs or {}
    guided = uncond is not None
    both = torch.cat([uncond, cond]) if guided and batched else None
    timesteps = scheduler.timesteps
    for i, t in enumerate(timesteps):
        if cancel is not None and cancel.is_set():
            raise GenerationCancelled(f"generation cancelled at step {i + 1} of {len(timesteps)}")
        if both is not None:
            model_in = scheduler.scale_model_input(torch.cat([latents, latents]), t)
            noise_uncond, noise_cond = unet(model_in, t, encoder_hidden_states=both).sample.chunk(2)
        else:
            model_in = scheduler.scale_model_input(latents, t)
            noise_cond = unet(model_in, t, encoder_hidden_states=cond).sample
            noise_uncond = unet(model_in, t, encoder_hidden_states=uncond).sample if guided else None
        noise = apply_guidance(noise_uncond, noise_cond, guidance_scale, guidance_rescale) if guided else noise_cond
        latents = scheduler.step(noise, t, latents, return_dict=False, **step_kwargs)[0]
        if callback is not None:
            tensors = {"latents": latents, "noise_pred": noise, "prompt_embeds": cond, "negative_prompt_embeds": uncond}
            info = {"step": i + 1, "num_steps": len(timesteps), "timestep": int(t), **{n: tensors[n] for n in inputs}}
            update = callback(info)
            if update and "latents" in update:
                latents = update["latents"]
    return latents
