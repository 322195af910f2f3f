"""Base class of trainers: one run protocol for every training plugin.

A run is created unstarted (``vd.dreambooth(...)``, ``vd.components.create("trainers", id, ...)``)
and then, whatever the trainer:

- ``fit(resume=None)`` trains in this thread until done or stopped; returns the run;
- ``start(resume=None)`` runs :meth:`fit` in a background thread; ``wait()``; ``running``;
- ``stop(wait=True)`` ends training at the next optimizer step (with a checkpoint where the trainer
  keeps them); ``latest_checkpoint()``; ``fit(resume="latest")`` continues where resumable;
- ``events`` / ``subscribe(fn, replay=False)`` / ``history()`` -- the :mod:`vitdream.events` stream;
- ``state`` -- idle | preparing | training | stopped | finished | failed (trainers may add steps,
  e.g. "class images"); ``error`` / ``traceback`` of a failed run;
- ``progress`` -- a console progress bar while training (public, default True);
- ``export(directory)`` -- the trained model, written atomically;
- ``max_steps`` -- the planned number of optimizer steps when known (dashboards), else None.

A trainer implements :meth:`_fit` (emit ``start``/``step`` events into ``self.log``, poll
:attr:`stop_requested` at step boundaries, return a :class:`RunEnd`) and :meth:`export`.
"""

from __future__ import annotations

import os
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from vitdream.base.options import Component
from vitdream.errors import VitdreamError
from vitdream.events import EventLog


@dataclass(frozen=True)
class RunEnd:
    """How :meth:`Trainer._fit` ended: at optimizer step ``step``, ``stopped`` early on request or not."""

    step: int
    stopped: bool = False


class Trainer(Component):
    """A training run with the protocol of the module docstring. Implement :meth:`_fit` and :meth:`export`."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.log = EventLog()
        self.log.subscribe(self._track_state)
        self.state = "idle"
        self.error: BaseException | None = None
        self.traceback: str | None = None
        self.progress = True
        self.callbacks: list[Any] = []  # extra framework callbacks (e.g. Lightning) for the next fit
        self.stop_requested = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the part a trainer implements ---------------------------------------------------------------
    def _fit(self, resume: str | os.PathLike | None) -> RunEnd:
        """Train (blocking). Emit events into ``self.log``; stop at a step boundary once
        :attr:`stop_requested` is set; raise on failure (the base records and re-raises)."""
        raise NotImplementedError(f"trainer {self.id or type(self).__name__!r}: implement _fit() (see vitdream.base.training)")

    def export(self, directory: str | os.PathLike) -> Path:
        """Write the trained model into ``directory`` (atomically); returns it."""
        raise NotImplementedError(f"trainer {self.id or type(self).__name__!r} cannot export")

    @property
    def max_steps(self) -> int | None:
        """Planned optimizer steps, when known before training (dashboards also read ``start`` events)."""
        return None

    def latest_checkpoint(self) -> Path | None:
        """The checkpoint ``fit(resume="latest")`` would continue from; None: nothing to resume."""
        return None

    # -- events ----------------------------------------------------------------------------------------
    @property
    def events(self) -> list[dict[str, Any]]:
        return self.log.events

    def subscribe(self, fn: Callable[[dict[str, Any]], None], replay: bool = False) -> None:
        """Call ``fn(event)`` for each new event (in the training thread); ``replay`` sends past ones first."""
        self.log.subscribe(fn, replay=replay)

    def unsubscribe(self, fn: Callable[[dict[str, Any]], None]) -> None:
        self.log.unsubscribe(fn)

    def history(self) -> list[dict[str, Any]]:
        """The ``step`` events."""
        return self.log.of_type("step")

    def _track_state(self, event: dict[str, Any]) -> None:
        if event["type"] == "status":
            self.state = event["state"]

    def _set_state(self, state: str, message: str = "", **fields: Any) -> None:
        self.log.emit("status", state=state, message=message, **fields)

    # -- running ---------------------------------------------------------------------------------------
    def fit(self, resume: str | os.PathLike | None = None) -> "Trainer":
        """Train until done or :meth:`stop`; ``resume``: ``"latest"`` or a checkpoint path (where supported)."""
        try:
            self.error = self.traceback = None
            end = self._fit(resume)
        except BaseException as exc:
            self.error, self.traceback = exc, traceback.format_exc()
            self._set_state("failed", f"{type(exc).__name__}: {exc}")
            self.log.emit("error", message=f"{type(exc).__name__}: {exc}", traceback=self.traceback)
            raise
        finally:
            self.stop_requested.clear()
        latest = self.latest_checkpoint()
        checkpoint = None if latest is None else str(latest)
        if end.stopped:
            saved = ", checkpoint saved" if latest is not None else ""
            self._set_state("stopped", f"stopped at step {end.step}{saved}", checkpoint=checkpoint)
        else:
            self._set_state("finished", f"finished at step {end.step}", checkpoint=checkpoint)
        return self

    def start(self, resume: str | os.PathLike | None = None) -> threading.Thread:
        """Run :meth:`fit` in a background thread; errors land in ``error``/``traceback`` and the events."""
        if self.running:
            raise VitdreamError("this run is already training; stop() it first")

        def target() -> None:
            try:
                self.fit(resume=resume)
            except BaseException:
                pass  # recorded by fit()

        self._thread = threading.Thread(target=target, name=f"vitdream-{self.id or 'trainer'}", daemon=True)
        self._thread.start()
        return self._thread

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, wait: bool = True, timeout: float | None = None) -> Path | None:
        """Stop at the next optimizer step; with ``wait``, block until then and return the latest checkpoint."""
        self.stop_requested.set()
        if wait:
            self.wait(timeout)
            return self.latest_checkpoint()
        return None

    def wait(self, timeout: float | None = None) -> "Trainer":
        """Block until a background run ends."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self
