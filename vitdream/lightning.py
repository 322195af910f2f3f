"""PyTorch Lightning pieces shared by the Lightning-based trainers (public Lightning API only).

- :class:`StopControl` -- ends ``fit`` at the next optimizer step once the run's ``stop_requested``
  event is set (so a checkpoint written then is exact);
- :class:`AtomicCheckpointIO` -- checkpoints written through :func:`vitdream.atomic.atomic_open`.

Imported only by trainers while they train (it imports Lightning).
"""

from __future__ import annotations

import threading
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.callbacks import Callback

from vitdream.atomic import atomic_open


class StopControl(Callback):
    """Sets ``trainer.should_stop`` at the first optimizer-step boundary after ``requested`` is set."""

    def __init__(self, requested: threading.Event) -> None:
        self.requested = requested
        self.stopped_at: int | None = None
        self._last_step = -1

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last_step = trainer.global_step

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if trainer.global_step == self._last_step:
            return  # mid-accumulation: no optimizer step yet, stop at the boundary so checkpoints are exact
        self._last_step = trainer.global_step
        stop = self.requested.is_set()
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if stop:
            trainer.should_stop = True
            self.stopped_at = trainer.global_step


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file, fsynced, then renamed: a kill never leaves a torn file."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        with atomic_open(path) as fh:
            torch.save(checkpoint, fh)
