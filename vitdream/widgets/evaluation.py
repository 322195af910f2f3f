"""The live-evaluation part of the training dashboard: metric curves beside the loss, and the validation
samples of any validated step with copy flags. It reads ``evaluation`` events only (``step``, ``metrics``,
``images`` or ``paths``, ``prompts``, ``seeds``, ``copies``, ``best_step``), so any trainer emitting them shows."""

from __future__ import annotations

import html
import io
import math
from typing import Any

import ipywidgets as W

HEADLINE = ("subject_fidelity", "prompt_fidelity", "PRES", "DIV")
NOT_CURVES = {"step", "copies", "copy_similarity", "seconds", *HEADLINE}


def metric_curves(ax: Any, evaluations: dict[int, dict[str, Any]], best_step: int | None) -> None:
    """The metrics of every validation step on ``ax``: the four headline ones solid, evaluator-specific ones
    (``"<id>/<metric>"``) dashed; the best step a dotted line, steps with copies a red cross."""
    steps = sorted(evaluations)
    rows = [evaluations[s].get("metrics", {}) for s in steps]
    extra = sorted({k for r in rows for k in r if k not in NOT_CURVES})
    for key in (*HEADLINE, *extra):
        ys = [r.get(key, float("nan")) for r in rows]
        if any(isinstance(y, (int, float)) and not math.isnan(y) for y in ys):
            ax.plot(steps, ys, "o-" if key in HEADLINE else "o--", label=key, lw=1.2 if key in HEADLINE else 0.8, ms=3)
    copied = [s for s, r in zip(steps, rows) if r.get("copies")]
    if copied:
        ax.plot(copied, [0.0] * len(copied), "x", color="red", ms=8, mew=2, label="copy alarm")
    if best_step is not None:
        ax.axvline(best_step, color="black", ls=":", lw=1)
        ax.set_title(f"validation metrics (best step {best_step})", fontsize=9)
    else:
        ax.set_title("validation metrics", fontsize=9)
    ax.set_xlabel("step"), ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=6)


class MetricPlot:
    """``png(evaluations, best_step)``: :func:`metric_curves` in one reused figure (redrawn once per validation)."""

    def __init__(self) -> None:
        from matplotlib.figure import Figure

        from vitdream.widgets.theme import plot_style

        with plot_style():
            self.figure = Figure(figsize=(4.5, 2.6), dpi=80)
            self.ax = self.figure.subplots()

    def png(self, evaluations: dict[int, dict[str, Any]], best_step: int | None) -> bytes:
        from vitdream.widgets.theme import plot_style

        with plot_style():
            self.ax.clear()
            metric_curves(self.ax, evaluations, best_step)
            self.figure.tight_layout()
            buffer = io.BytesIO()
            self.figure.savefig(buffer, format="png")
        return buffer.getvalue()


def _png(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class EvaluationPanel(W.VBox):
    """Pick a validated step; see its samples (same prompts and seeds at every step), copies flagged."""

    def __init__(self) -> None:
        self.picker = W.Dropdown(description="samples of", options=[], layout=W.Layout(width="260px"))
        self.summary = W.HTML()
        self.samples = W.HBox(layout=W.Layout(flex_flow="row wrap"))
        self.evaluations: dict[int, dict[str, Any]] = {}
        self._follow = True  # show the newest step until the user picks another
        self._shown: Any = None
        self.picker.observe(self._picked, names="value")
        super().__init__([W.HBox([self.picker, self.summary]), self.samples])
        self.layout.display = "none"

    def update(self, evaluations: dict[int, dict[str, Any]], best_step: int | None) -> None:
        """Show ``evaluations`` (step -> event); call from the dashboard's render thread."""
        self.evaluations = evaluations
        if not evaluations:
            self.layout.display = "none"
            return
        self.layout.display = None
        steps = sorted(evaluations)
        options = [(f"step {s}" + (" (best)" if s == best_step else ""), s) for s in steps]
        if options != list(self.picker.options):
            current = self.picker.value
            self._setting = True
            self.picker.options = options
            self.picker.value = steps[-1] if self._follow or current not in steps else current
            self._setting = False
        self._draw(self.picker.value)

    def _picked(self, change: dict[str, Any]) -> None:
        if getattr(self, "_setting", False) or change["new"] is None:
            return
        self._follow = change["new"] == max(self.evaluations, default=None)
        self._draw(change["new"])

    def _draw(self, step: int | None) -> None:
        event = self.evaluations.get(step)
        if event is None or event is self._shown:
            return
        self._shown = event
        metrics = event.get("metrics", {})
        shown = [f"{k} {metrics[k]:.3f}" for k in (*HEADLINE, "copy_similarity")
                 if isinstance(metrics.get(k), (int, float)) and not math.isnan(metrics[k])]
        self.summary.value = "<small>" + " · ".join(shown) + "</small>"
        copies = {c["sample"]: c for c in event.get("copies", [])}
        images = event.get("images") or [_open(p) for p in event.get("paths", [])]
        prompts, seeds = event.get("prompts", []), event.get("seeds", [])
        boxes = []
        for i, image in enumerate(images):
            caption = f"{html.escape(prompts[i] if i < len(prompts) else '')}, seed {seeds[i] if i < len(seeds) else '?'}"
            if i in copies:
                copy = copies[i]
                caption += (f"<br><b style='color:#c00'>&#9888; this is a copy of instance image "
                            f"{copy['nearest_instance']} ({copy['similarity']:.3f})</b>")
            view = W.Image(value=_png(image), format="png", layout=W.Layout(width="96px", height="96px"))
            boxes.append(W.VBox([view, W.HTML(f"<div class='vd-eval-sample' style='width:120px;font-size:10px'>{caption}</div>")]))
        self.samples.children = boxes


def _open(path: str) -> Any:
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGB")
