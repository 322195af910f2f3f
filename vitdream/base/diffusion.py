"""Base classes of image generators and diffusion samplers."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

from vitdream.base.options import Component


class Generator(Component):
    """A text-to-image generator. Implement :meth:`generate`."""

    tasks: ClassVar[frozenset[str]] = frozenset({"generate"})

    @classmethod
    def accepts(cls, model: str | None) -> bool:
        return True

    @abstractmethod
    def generate(self, prompt: str, **settings: Any) -> Any:
        """A list of PIL images."""


class Sampler(Component):
    """A diffusion sampler. Implement :meth:`make_scheduler`.

    ``deterministic``: same seed and settings give the same image. ``stochastic``: fresh (seeded)
    noise is injected at every step, so the image changes with the number of steps.
    """

    deterministic: ClassVar[bool] = True
    stochastic: ClassVar[bool] = False

    @abstractmethod
    def make_scheduler(self, config: Any) -> Any:
        """A diffusers scheduler built from another scheduler's ``config`` (use ``from_config``)."""

    def step_kwargs(self) -> dict[str, Any]:
        """Extra keyword arguments for the scheduler's ``step`` (e.g. DDIM's ``eta``)."""
        return {}
