"""DreamBooth fine-tuning of Stable Diffusion on PyTorch Lightning (the ``dreambooth`` trainer plugins).

>>> run = vd.dreambooth(instance_images="my_dog/", instance_prompt="a photo of sks dog",
...                     class_prompt="a photo of a dog", output_dir="runs/dog", max_steps=400)
>>> run.fit()                      # or run.start() in the background; vd.widgets.train(run)
>>> run.export("dog-model/")       # a diffusers directory: StableDiffusionPipeline.from_pretrained

Options follow diffusers' ``train_dreambooth.py`` (see :class:`DreamBoothConfig`); a YAML file
works too: ``vd.dreambooth("config.yaml", max_steps=100)``, and so does a diffusers command line:
``vd.dreambooth.from_command("train_dreambooth.py --instance_data_dir=dog/ ...")``.
"""

from __future__ import annotations

import os
import sys
import types
from typing import TYPE_CHECKING, Any

from vitdream.dreambooth.config import DreamBoothConfig, load_yaml

if TYPE_CHECKING:  # pragma: no cover
    from vitdream.dreambooth.trainer import DreamBoothTrainer

__all__ = ["DreamBoothConfig", "dreambooth", "from_command", "load_yaml"]


def dreambooth(config: str | os.PathLike | None = None, *, trainer: str | None = None, **options: Any) -> "DreamBoothTrainer":
    """A DreamBooth run (not started) with the run protocol of :class:`vitdream.base.Trainer`:
    ``fit()``, ``start()``, ``stop()``, ``export(dir)``, ``events``, ``subscribe()``.

    ``config``: an optional YAML file of options; keyword ``options`` override it. ``trainer``:
    the trainer plugin id, ``"dreambooth"`` (full fine-tune, default) or ``"dreambooth-lora"``.
    Options are validated now: an unknown or bad one raises ``OptionsError`` naming it.
    """
    from vitdream.dreambooth.trainer import create_run

    return create_run(config, trainer=trainer, **options)


def from_command(command: str | list[str]) -> "DreamBoothTrainer":
    """A run (not started) from a diffusers DreamBooth command line, flags verbatim (``accelerate launch`` may
    stay); ``train_dreambooth_lora.py`` picks the LoRA trainer. ``run.fit()`` as usual. Options left out
    whose vitdream default is not diffusers' are named in a warning (``--diffusers-defaults`` takes theirs)."""
    import shlex

    from vitdream.dreambooth.reference import parse_command
    from vitdream.dreambooth.trainer import create_run

    import warnings

    from vitdream.dreambooth.reference import default_differences, describe_differences

    parsed = parse_command(shlex.split(command) if isinstance(command, str) else command)
    if parsed.resume is not None:
        parsed.options.setdefault("resume_from_checkpoint", parsed.resume)
    run = create_run(parsed.config, trainer=parsed.trainer, **parsed.options)
    differences = default_differences(run.config, run.given_options)
    if differences:
        warnings.warn(describe_differences(differences), stacklevel=2)
    return run


dreambooth.from_command = from_command  # type: ignore[attr-defined]  # vd.dreambooth.from_command, whichever vd.dreambooth is


class _CallableModule(types.ModuleType):
    """``vd.dreambooth(...)`` works even after ``import vitdream.dreambooth`` made the attribute this package."""

    def __call__(self, *args: Any, **kwargs: Any) -> "DreamBoothTrainer":
        return dreambooth(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
