"""Built-in samplers: thin wrappers that build diffusers schedulers with ``from_config``.

A sampler turns the model's own scheduler config (betas, prediction type, ...) into the
scheduler it wants, so every sampler works with every SD 1.x/2.x model. ``deterministic``
means: same seed, prompt and settings give the same image (noise drawn during sampling, as
by ancestral samplers, comes from the seeded generator). ``stochastic`` means the sampler
injects fresh noise at each step, so the image changes with the number of steps.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from vitdream.base import Options, Sampler


class DDIMSampler(Sampler):
    """DDIM: deterministic at eta=0 (the default); eta>0 adds seeded noise each step."""

    id = "ddim"
    deterministic = True

    class Options(Options):
        eta: float = Field(0.0, ge=0.0, le=1.0, description="0: DDIM, 1: DDPM-like noise")

    def make_scheduler(self, config: Any) -> Any:
        from diffusers import DDIMScheduler

        return DDIMScheduler.from_config(config)

    def step_kwargs(self) -> dict[str, Any]:
        return {"eta": self.options.eta}


class EulerSampler(Sampler):
    """Euler (Karras et al. 2022, Algorithm 2 without churn): first-order ODE solver."""

    id = "euler"
    deterministic = True

    class Options(Options):
        karras_sigmas: bool = False

    def make_scheduler(self, config: Any) -> Any:
        from diffusers import EulerDiscreteScheduler

        return EulerDiscreteScheduler.from_config(config, use_karras_sigmas=self.options.karras_sigmas)


class EulerAncestralSampler(Sampler):
    """Euler ancestral: adds seeded noise at each step (stochastic, but reproducible for a seed)."""

    id = "euler-ancestral"
    deterministic = True
    stochastic: ClassVar[bool] = True

    def make_scheduler(self, config: Any) -> Any:
        from diffusers import EulerAncestralDiscreteScheduler

        return EulerAncestralDiscreteScheduler.from_config(config)


class DPMSolverSampler(Sampler):
    """DPM-Solver++ (2M), multistep: good images in 15-25 steps."""

    id = "dpm-solver++"
    deterministic = True

    class Options(Options):
        karras_sigmas: bool = False
        order: int = Field(2, ge=1, le=3)

    def make_scheduler(self, config: Any) -> Any:
        from diffusers import DPMSolverMultistepScheduler

        return DPMSolverMultistepScheduler.from_config(
            config,
            algorithm_type="dpmsolver++",
            solver_order=self.options.order,
            use_karras_sigmas=self.options.karras_sigmas,
        )
