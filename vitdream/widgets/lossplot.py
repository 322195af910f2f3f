"""The training dashboard's loss and learning-rate plot, drawn into one reused matplotlib figure.

A new figure per redraw leaves cyclic garbage (figure <-> axes <-> artists) behind; with torch,
transformers and diffusers loaded, the full collections it triggers took 1.1-1.2 s here, holding the
GIL: a new notebook cell waited that long while training ran. Updating the lines of one figure left
no such garbage (no full collection in 25 s of training; longest main-thread stall 42 ms).
"""

from __future__ import annotations

import io
import threading
from typing import Any

from vitdream.widgets.theme import plot_style

CURVES = (("loss", "total"), ("instance_loss", "instance"), ("prior_loss", "prior"))


class LossPlot:
    """``png(steps, epochs)``: loss curves (left; per-epoch validation loss as points, when a trainer
    reports it) and learning rate (right) against the optimizer step."""

    def __init__(self) -> None:
        from matplotlib.figure import Figure

        self._lock = threading.Lock()
        with plot_style():  # legible on light and dark themes alike
            self.figure = Figure(figsize=(8, 2.6), dpi=80)
            self.ax, self.ax_lr = self.figure.subplots(1, 2, gridspec_kw={"width_ratios": [3, 1.3]})
            self.lines = {key: self.ax.plot([], [], label=label, lw=1.2)[0] for key, label in CURVES}
            self.lines["val_loss"] = self.ax.plot([], [], "o-", label="validation", lw=1.2)[0]
            (self.lr_line,) = self.ax_lr.plot([], [], color="tab:purple", lw=1.2)
            self.ax.set_xlabel("step"), self.ax.set_ylabel("loss"), self.ax.grid(alpha=0.3)
            self.ax_lr.set_xlabel("step"), self.ax_lr.set_title("learning rate", fontsize=9), self.ax_lr.grid(alpha=0.3)
            self.ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        self._legend_keys: tuple[str, ...] = ()

    def png(self, steps: list[dict[str, Any]], epochs: list[dict[str, Any]] = ()) -> bytes:
        with self._lock, plot_style():
            shown = []
            for key, line in self.lines.items():
                rows = epochs if key == "val_loss" else steps
                ys = [r.get(key) for r in rows]
                line.set_data([r["step"] for r in rows], [float("nan") if y is None else y for y in ys])
                if any(y is not None for y in ys):
                    shown.append(key)
            x = [s["step"] for s in steps]
            self.lr_line.set_data(x, [s.get("lr") or 0.0 for s in steps])
            if tuple(shown) != self._legend_keys:  # a new legend only when the curves shown change
                self._legend_keys = tuple(shown)
                self.ax.legend(handles=[self.lines[k] for k in shown], loc="upper right", fontsize=8)
            for ax in (self.ax, self.ax_lr):
                ax.relim()
                ax.autoscale_view()
            self.figure.tight_layout()
            buffer = io.BytesIO()
            self.figure.savefig(buffer, format="png")
        return buffer.getvalue()
