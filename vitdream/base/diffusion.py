"""Base classes of image generators and diffusion samplers.

:class:`Generator` holds the contract of ``generate`` (what the generate widget, the CLI and
``vd.load_generator`` rely on); a backend implements :meth:`Generator._generate`:

- ``generate(prompt, *, guidance_scale, steps, seed, negative_prompt, sampler, num_images, height,
  width, callback, cancel, progress, **settings)`` -> :class:`~vitdream.base.results.ImageList` of
  ``num_images`` PIL images; image ``i`` uses seed ``seed + i`` (None: a random seed, recorded);
- ``callback(info)`` runs after every denoising step with at least ``step`` and ``num_steps``
  (and ``latents`` when the backend has them: :meth:`Generator.preview` decodes those);
- ``cancel`` (a ``threading.Event``): once set, generation stops before its next step with
  :class:`~vitdream.errors.GenerationCancelled`;
- ``progress=True``: a console progress bar over the steps (the base wraps ``callback``).
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from typing import Any, Callable, ClassVar

from pydantic import Field

from vitdream.base.options import Component, Options
from vitdream.base.results import ImageList
from vitdream.errors import GenerationCancelled

StepCallback = Callable[[dict[str, Any]], "dict[str, Any] | None"]


class GeneratorOptions(Options):
    """Options every generator has (subclass it for more): ``vd.load_generator(model)`` passes ``model``."""

    model: Any = Field(None, description="None (the backend's default), a directory, a hub id, or a built pipeline")


class Generator(Component):
    """A text-to-image generator. Implement :meth:`_generate`; see the module docstring."""

    tasks: ClassVar[frozenset[str]] = frozenset({"generate"})
    Options: ClassVar[type[Options]] = GeneratorOptions

    @classmethod
    def accepts(cls, model: str | None) -> bool:
        """Whether this backend can load ``model`` (a directory, hub id or None = default)."""
        return True

    def generate(
        self,
        prompt: str,
        *,
        guidance_scale: float = 7.5,
        steps: int = 25,
        seed: int | None = None,
        negative_prompt: str = "",
        sampler: Any = "ddim",
        num_images: int = 1,
        height: int | None = None,
        width: int | None = None,
        callback: StepCallback | None = None,
        cancel: threading.Event | None = None,
        progress: bool = False,
        **settings: Any,
    ) -> ImageList:
        """``num_images`` PIL images for ``prompt`` (shown as thumbnails in Jupyter); see the module
        docstring. ``settings``: backend-specific extras (e.g. ``guidance_rescale``)."""
        if cancel is not None and cancel.is_set():
            raise GenerationCancelled("generation cancelled before it started")
        if progress:
            callback = with_progress(callback, steps)
        values = dict(guidance_scale=guidance_scale, steps=steps, seed=seed, negative_prompt=negative_prompt,
                      sampler=sampler, num_images=num_images, height=height, width=width, **settings)
        images = self._generate(prompt, values, callback=callback, cancel=cancel)
        return images if isinstance(images, ImageList) else ImageList(images)

    def _generate(self, prompt: str, settings: dict[str, Any], *, callback: StepCallback | None,
                  cancel: threading.Event | None) -> list[Any]:
        """The images for ``prompt`` and ``settings`` (the keywords of :meth:`generate`); call
        ``callback`` after each step and stop when ``cancel`` is set, as the module docstring says."""
        raise NotImplementedError(f"{self.id or type(self).__name__}: implement _generate() (see vitdream.base.diffusion)")

    def preview(self, latents: Any) -> list[Any] | None:
        """PIL images of a step's ``latents`` (live previews); None when the backend has no preview."""
        return None


def with_progress(callback: StepCallback | None, total: int) -> StepCallback:
    """``callback`` that also advances a console progress bar of ``total`` steps."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc="generating", unit="step")

    def wrapped(info: dict[str, Any]) -> Any:
        bar.update(1)
        if info["step"] == info["num_steps"]:
            bar.close()
        return callback(info) if callback is not None else None

    return wrapped


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
