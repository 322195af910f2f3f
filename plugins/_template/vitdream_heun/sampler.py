"""The sampler: a diffusers scheduler built from another scheduler's config."""

from __future__ import annotations

from typing import Any

from vitdream.base import Options, Sampler


class HeunOptions(Options):
    use_karras_sigmas: bool = False


class HeunSampler(Sampler):
    """Heun's second-order method."""

    id = "heun"
    Options = HeunOptions
    deterministic = True

    def make_scheduler(self, config: Any) -> Any:
        from diffusers import HeunDiscreteScheduler

        return HeunDiscreteScheduler.from_config(config, use_karras_sigmas=self.options.use_karras_sigmas)
