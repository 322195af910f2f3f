"""Lightning callbacks of a DreamBooth run: the event stream, Stop, validation images, atomic checkpoints.

Events are plain dicts with a ``"type"``: ``status`` (``state``, ``message``), ``start``
(``step``, ``max_steps``), ``step`` (``step``, ``loss``, ``instance_loss``, ``prior_loss``, ``lr``,
``steps_per_s``, ``eta_s``), ``validation`` (``step``, ``images``, ``paths``, ``prompts``),
``checkpoint`` (``step``, ``path``) and ``error`` (``message``, ``traceback``). The dashboard and
any ``run.subscribe(fn)`` consumer read them; a consumer that raises is dropped, never the run.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.callbacks import Callback, ModelCheckpoint

Event = dict[str, Any]


class EventLog:
    """Thread-safe list of events plus subscribers called (in the training thread) for each new one."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._subscribers: list[Callable[[Event], None]] = []
        self._lock = threading.Lock()

    def emit(self, type: str, **fields: Any) -> Event:
        event = {"type": type, "time": time.time(), **fields}
        with self._lock:
            self.events.append(event)
            subscribers = list(self._subscribers)
        for fn in subscribers:
            try:
                fn(event)
            except Exception:  # a broken consumer must not break training
                self.unsubscribe(fn)
        return event

    def subscribe(self, fn: Callable[[Event], None], replay: bool = False) -> None:
        with self._lock:
            self._subscribers.append(fn)
            past = list(self.events) if replay else []
        for event in past:
            fn(event)

    def unsubscribe(self, fn: Callable[[Event], None]) -> None:
        with self._lock:
            if fn in self._subscribers:
                self._subscribers.remove(fn)

    def of_type(self, type: str) -> list[Event]:
        with self._lock:
            return [e for e in self.events if e["type"] == type]


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


class StopControl(Callback):
    """``request()`` stops training at the next optimizer-step boundary; the final checkpoint is then saved."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.stopped_at: int | None = None

    def request(self) -> None:
        self.requested.set()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if trainer.fit_loop._should_accumulate():
            return  # mid-accumulation: stop at the step boundary so the checkpoint is exact
        stop = self.requested.is_set()
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if stop:
            trainer.should_stop = True
            self.stopped_at = trainer.global_step


class DreamBoothCheckpoint(ModelCheckpoint):
    """``checkpoint-{step}.ckpt`` every N steps, newest ``total_limit`` kept, and one at the end of training."""

    def __init__(self, dirpath: str | os.PathLike, every_n_steps: int, total_limit: int | None, log: EventLog) -> None:
        super().__init__(
            dirpath=dirpath, filename="checkpoint-{step}", auto_insert_metric_name=False, monitor="step",
            mode="max", save_top_k=total_limit or -1, every_n_train_steps=every_n_steps, save_on_train_epoch_end=False,
        )
        self.events = log

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        if trainer.is_global_zero:
            self.events.emit("checkpoint", step=trainer.global_step, path=filepath)

    def _should_remove_checkpoint(self, trainer: pl.Trainer, previous: str, current: str) -> bool:
        """Prune past checkpoints of this folder, including the one we resumed from (already loaded, and
        superseded by ``current``, written before this is called): ``checkpoints_total_limit`` holds across resumes."""
        return previous != current and Path(previous).resolve().parent == Path(self.dirpath).resolve()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._last_global_step_saved != trainer.global_step and trainer.global_step > 0:
            self._save_topk_checkpoint(trainer, self._monitor_candidates(trainer))
            self._last_global_step_saved = trainer.global_step


class ValidationImages(Callback):
    """Every ``every_n_steps`` steps, sample each validation prompt at fixed seeds; save, log, emit."""

    def __init__(self, log: EventLog, out_dir: Path, prompts: list[str], every_n_steps: int, num_images: int,
                 num_inference_steps: int, guidance_scale: float, seed: int) -> None:
        self.events, self.out_dir, self.prompts = log, Path(out_dir), prompts
        self.every, self.num_images, self.steps, self.guidance, self.seed = every_n_steps, num_images, num_inference_steps, guidance_scale, seed
        self._done = -1

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, *args: Any) -> None:
        step = trainer.global_step
        if not self.prompts or step % self.every or step == self._done or not trainer.is_global_zero:
            return
        self._done = step
        images, paths, prompts = [], [], []
        folder = self.out_dir / f"step-{step:06d}"
        folder.mkdir(parents=True, exist_ok=True)
        for p, prompt in enumerate(self.prompts):
            batch = pl_module.sample(prompt, [self.seed + i for i in range(self.num_images)], self.steps, self.guidance)
            for i, image in enumerate(batch):
                path = folder / f"{p}-{i}.png"
                image.save(path)
                images.append(image), paths.append(str(path)), prompts.append(prompt)
        for logger in trainer.loggers:
            experiment = getattr(logger, "experiment", None)
            if hasattr(experiment, "add_image"):
                import numpy as np

                for i, (image, prompt) in enumerate(zip(images, prompts)):
                    experiment.add_image(f"validation/{i}: {prompt}", np.asarray(image), step, dataformats="HWC")
        self.events.emit("validation", step=step, images=images, paths=paths, prompts=prompts)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file, fsynced, then renamed: a kill never leaves a torn file."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as fh:
            torch.save(checkpoint, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
