"""Lightning callbacks of a DreamBooth run: step events, validation images, step checkpoints.

Events (see :mod:`vitdream.events`) are plain dicts with a ``"type"``: ``status`` (``state``,
``message``), ``start`` (``step``, ``max_steps``), ``step`` (``step``, ``loss``, ``instance_loss``,
``prior_loss``, ``lr``, ``steps_per_s``, ``eta_s``), ``validation`` (``step``, ``images``, ``paths``,
``prompts``), ``evaluation`` (see :mod:`vitdream.dreambooth.validation`), ``checkpoint`` (``step``,
``path``), ``early_stop`` and ``error`` (``message``, ``traceback``). Stop and
atomic checkpoint files come from :mod:`vitdream.lightning`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from vitdream.atomic import atomic_open
from vitdream.events import EventLog


def _metric(value: Any) -> float | None:
    return None if value is None else float(value.item() if isinstance(value, torch.Tensor) else value)


class RunEvents(Callback):
    """Emits a ``step`` event after every optimizer step (rank 0), with throughput and ETA."""

    def __init__(self, log: EventLog, max_steps: int) -> None:
        self.events, self.max_steps = log, max_steps
        self._last_step = -1
        self._rate: float | None = None
        self._t = 0.0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last_step, self._t, self._rate = trainer.global_step, time.perf_counter(), None
        if trainer.is_global_zero:
            self.events.emit("status", state="training", message=f"training from step {trainer.global_step}")
            self.events.emit("start", step=trainer.global_step, max_steps=self.max_steps)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        step = trainer.global_step
        if step == self._last_step or not trainer.is_global_zero:
            return
        now = time.perf_counter()
        rate = (step - self._last_step) / max(now - self._t, 1e-9)
        self._rate = rate if self._rate is None else 0.8 * self._rate + 0.2 * rate
        self._last_step, self._t = step, now
        metrics = getattr(pl_module, "last_metrics", {})
        self.events.emit(
            "step", step=step, max_steps=self.max_steps, loss=_metric(metrics.get("loss")),
            instance_loss=_metric(metrics.get("instance_loss")), prior_loss=_metric(metrics.get("prior_loss")),
            lr=_metric(metrics.get("lr")), steps_per_s=self._rate, eta_s=(self.max_steps - step) / self._rate,
        )


class StepCheckpoints(Callback):
    """``checkpoint-{step}.ckpt`` every ``every_n_steps`` optimizer steps and at the end of training; only the
    newest ``total_limit`` files of the folder are kept (across resumes, the one resumed from included)."""

    def __init__(self, dirpath: str | os.PathLike, every_n_steps: int, total_limit: int | None, log: EventLog,
                 existing: Callable[[], list[Path]], keep: Callable[[], set[Path]] = set) -> None:
        self.dirpath, self.every, self.total_limit, self.events = Path(dirpath), every_n_steps, total_limit, log
        self.existing = existing  # the folder's checkpoints, oldest step first
        self.keep = keep  # checkpoints never pruned (the best step's)
        self._saved = -1

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._saved = trainer.global_step  # a resumed run already has this step on disk

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        step = trainer.global_step
        if step and step % self.every == 0 and step != self._saved:
            self._save(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step > 0 and trainer.global_step != self._saved:
            self._save(trainer)

    def _save(self, trainer: pl.Trainer) -> None:
        step = trainer.global_step
        path = self.dirpath / f"checkpoint-{step}.ckpt"
        trainer.save_checkpoint(path, weights_only=False)  # full state, to resume; every rank calls it; rank 0 writes
        self._saved = step
        if trainer.is_global_zero:
            self.events.emit("checkpoint", step=step, path=str(path))
            self._prune()

    def _prune(self) -> None:
        if not self.total_limit:
            return
        keep = self.keep()
        regular = [p for p in self.existing() if p not in keep]
        for old in regular[: -self.total_limit]:
            old.unlink(missing_ok=True)


class ValidationImages(Callback):
    """Every ``every_n_steps`` steps, sample each validation prompt at fixed seeds; save, log, emit."""

    def __init__(self, log: EventLog, out_dir: Path, prompts: list[str], every_n_steps: int, num_images: int,
                 num_inference_steps: int, guidance_scale: float, seed: int) -> None:
        self.events, self.out_dir, self.prompts = log, Path(out_dir), prompts
        self.every, self.num_images, self.steps, self.guidance, self.seed = every_n_steps, num_images, num_inference_steps, guidance_scale, seed
        self._done = -1

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, *args: Any) -> None:
        step = trainer.global_step
        if not self.prompts or not self.every or step % self.every or step == self._done or not trainer.is_global_zero:
            return
        self._done = step
        images, paths, prompts = [], [], []
        folder = self.out_dir / f"step-{step:06d}"
        folder.mkdir(parents=True, exist_ok=True)
        for p, prompt in enumerate(self.prompts):
            batch = pl_module.sample(prompt, [self.seed + i for i in range(self.num_images)], self.steps, self.guidance)
            for i, image in enumerate(batch):
                path = folder / f"{p}-{i}.png"
                with atomic_open(path) as fh:
                    image.save(fh, format="PNG")
                images.append(image), paths.append(str(path)), prompts.append(prompt)
        for logger in trainer.loggers:
            experiment = getattr(logger, "experiment", None)
            if hasattr(experiment, "add_image"):
                import numpy as np

                for i, (image, prompt) in enumerate(zip(images, prompts)):
                    experiment.add_image(f"validation/{i}: {prompt}", np.asarray(image), step, dataformats="HWC")
        self.events.emit("validation", step=step, images=images, paths=paths, prompts=prompts)
