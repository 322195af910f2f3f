"""Live loss/accuracy curves of ``vd.finetune`` (a thin view over its ``step``/``epoch`` events).

``curves = FinetuneCurves(); display(curves); vd.finetune(..., on_event=curves)``. (``vd.finetune(...,
live=True)`` shows the dashboard every trainer has, ``vd.widgets.train``.) Events are recorded as they come (any thread);
the plot is redrawn at most every ``throttle_s`` seconds by setting the image widget's value.
"""

from __future__ import annotations

import io
import threading
import time
from typing import Any

import ipywidgets as W


class FinetuneCurves(W.VBox):
    """Train loss/accuracy per optimizer step, validation loss/accuracy per epoch."""

    def __init__(self, throttle_s: float = 1.0) -> None:
        self.throttle_s = throttle_s
        self.steps: list[dict[str, Any]] = []
        self.epochs: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._drawn_at = 0.0
        self.plot = W.Image(format="png", layout=W.Layout(width="640px"))
        self.status = W.HTML("waiting for the first step…")
        super().__init__([self.status, self.plot])

    def __call__(self, event: dict[str, Any]) -> None:
        with self._lock:
            (self.steps if event["type"] == "step" else self.epochs).append(event)
        final = event["type"] == "epoch"
        if final or time.monotonic() - self._drawn_at >= self.throttle_s:
            self.render()

    def render(self) -> None:
        """Redraw now (values set directly; safe from the training thread)."""
        with self._lock:
            steps, epochs = list(self.steps), list(self.epochs)
        self._drawn_at = time.monotonic()
        if steps:
            last = steps[-1]
            val = f", val acc {epochs[-1]['val_acc']:.3f}" if epochs and epochs[-1].get("val_acc") is not None else ""
            self.status.value = f"epoch {last['epoch']} · step {last['step']} · loss {last['train_loss'] or float('nan'):.4f}{val}"
        self.plot.value = draw(steps, epochs)


def draw(steps: list[dict[str, Any]], epochs: list[dict[str, Any]]) -> bytes:
    """A PNG with loss (left) and accuracy (right) against optimizer steps."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 3), dpi=80)
    loss_ax, acc_ax = figure.subplots(1, 2)
    for ax, key, title in ((loss_ax, "loss", "loss"), (acc_ax, "acc", "accuracy")):
        points = [(e["step"], e[f"train_{key}"]) for e in steps if e.get(f"train_{key}") is not None]
        if points:
            ax.plot(*zip(*points), label="train", lw=1)
        val = [(e["step"], e[f"val_{key}"]) for e in epochs if e.get(f"val_{key}") is not None]
        if val:
            ax.plot(*zip(*val), "o-", label="validation")
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.legend(loc="best", fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
