"""``vd.widgets.train(run)``: the live dashboard of any training run, a thin view over its event stream.

It uses only the run protocol of :class:`vitdream.base.Trainer` (``subscribe``, ``start``, ``stop``,
``running``, ``state``, ``max_steps``, ``latest_checkpoint``), so DreamBooth, ViT fine-tuning and
third-party trainers show the same way. Training runs in a background thread (``run.start()``); the
dashboard subscribes to the run's events
and redraws in its own thread at most every ``throttle_s`` seconds by setting widget values directly
(no ``with output:`` from threads), so the kernel stays responsive. Re-displaying it in another cell
shows the same live dashboard; calling ``train(run)`` again returns it too.
"""

from __future__ import annotations

import atexit
import html
import io
import threading
import time
import weakref
from typing import Any

import ipywidgets as W

from vitdream.widgets import make_callable
from vitdream.widgets.evaluation import EvaluationPanel, MetricPlot
from vitdream.widgets.help import TOOLTIPS
from vitdream.widgets.record import StaticRecord, plain_text
from vitdream.widgets.theme import legible_button

_LIVE: "weakref.WeakSet[TrainDashboard]" = weakref.WeakSet()


@atexit.register
def _stop_renderers() -> None:
    """End every renderer thread before the interpreter tears down native libraries (a thread still
    drawing then can abort the process, e.g. beside ONNX Runtime's thread pool)."""
    for dashboard in list(_LIVE):
        dashboard.stop_rendering()


def train(run: Any, *, throttle_s: float = 0.5, start: bool = False) -> "TrainDashboard":
    """The dashboard of ``run`` (any :class:`vitdream.base.Trainer`); ``start=True`` also starts training in the background."""
    dashboard = getattr(run, "_dashboard", None)
    if dashboard is None:
        dashboard = TrainDashboard(run, throttle_s=throttle_s)
        run._dashboard = dashboard
    if start and not run.running:
        run.start()
    return dashboard


def _fmt_time(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:
        return "–"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else f"{seconds // 60}:{seconds % 60:02d}"


class TrainDashboard(StaticRecord, W.VBox):
    """Curves (total/instance/prior loss, LR; validation metrics beside them), validation images, the samples
    of any validated step with copy flags, steps/s + ETA, best step, Start/Stop/Resume, errors."""

    def __init__(self, run: Any, throttle_s: float = 0.5) -> None:
        self.run, self.throttle_s = run, throttle_s
        self.steps: list[dict[str, Any]] = []
        self.epochs: list[dict[str, Any]] = []  # per-epoch validation metrics (val_loss, val_acc), when a trainer has them
        self.state, self.message, self.error = run.state, "", ""
        self.max_steps = run.max_steps or 1
        self.validation: dict[str, Any] | None = None
        self.evaluations: dict[int, dict[str, Any]] = {}  # step -> "evaluation" event (live DreamBooth metrics)
        self.best_step: int | None = None
        self._lock = threading.Lock()
        self._dirty = threading.Event()
        self._render_lock = threading.Lock()
        self.status = W.HTML()
        # max_steps may be unknown (None) until fit() starts; start and step events carry the settled value
        self.progress = W.IntProgress(min=0, max=run.max_steps or 1, description="step")
        self.plot = W.Image(format="png", layout=W.Layout(width="640px"))
        self.images = W.HBox()
        self.metrics_plot = W.Image(format="png", layout=W.Layout(width="360px", display="none"))
        self.metrics_plot.add_class("vd-metric-curves")
        self.evaluation = EvaluationPanel()
        self.errors = W.HTML()
        self.start_button = W.Button(description="Start", icon="play", button_style="success")
        self.stop_button = W.Button(description="Stop", icon="stop", button_style="danger")
        self.resume_button = W.Button(description="Resume", icon="repeat", button_style="info")
        for button, tip in ((self.start_button, "start"), (self.stop_button, "stop"), (self.resume_button, "resume")):
            button.tooltip = TOOLTIPS[tip]
            legible_button(button)
        self.start_button.on_click(lambda _: self._start(None))
        self.resume_button.on_click(lambda _: self._start("latest"))
        self.stop_button.on_click(lambda _: self._stop())
        buttons = W.HBox([self.start_button, self.stop_button, self.resume_button])
        super().__init__([buttons, self.status, self.progress, W.HBox([self.plot, self.metrics_plot]), self.images,
                          self.evaluation, self.errors])
        run.subscribe(self._on_event, replay=True)
        self._closed = threading.Event()
        self._renderer = threading.Thread(target=self._render_loop, name="vitdream-train-dashboard", daemon=True)
        self._renderer.start()
        _LIVE.add(self)
        self.render()

    # -- events (training thread): record only, never draw --------------------------------------------
    def _on_event(self, event: dict[str, Any]) -> None:
        with self._lock:
            kind = event["type"]
            if kind == "step":
                self.steps.append(event)
            elif kind == "epoch":
                self.epochs.append(event)
            elif kind == "status":
                self.state, self.message = event["state"], event.get("message", "")
                if event["state"] == "stopped":
                    self.message = "stopped, checkpoint saved" + (f" ({event['checkpoint']})" if event.get("checkpoint") else "")
                if event["state"] in ("preparing",):
                    self.error = ""
            elif kind == "start":
                self.steps = [s for s in self.steps if s["step"] <= event["step"]]  # a resume rewinds the curve
                self.epochs = [e for e in self.epochs if e["step"] <= event["step"]]
                self.evaluations = {k: v for k, v in self.evaluations.items() if k <= event["step"]}
                self.max_steps = event.get("max_steps") or self.max_steps
            elif kind == "evaluation":
                self.evaluations = {**self.evaluations, event["step"]: event}
                self.best_step = event.get("best_step")
            elif kind == "validation":
                self.validation = event
            elif kind == "error":
                self.error = event.get("traceback") or event.get("message", "")
        self._dirty.set()

    def _render_loop(self) -> None:
        while not self._closed.is_set():
            self._dirty.wait()
            self._dirty.clear()
            if self._closed.is_set():
                return
            try:
                self.render()
            except Exception as exc:  # show, never die silently
                self.errors.value = f"<pre style='color:var(--jp-error-color1,#b00)'>dashboard error: {html.escape(repr(exc))}</pre>"
            time.sleep(self.throttle_s)

    def stop_rendering(self, timeout: float = 5.0) -> None:
        """Stop the renderer thread (the widgets keep their last values)."""
        self._closed.set()
        self._dirty.set()
        self._renderer.join(timeout)

    def close(self) -> None:
        self.stop_rendering()
        super().close()

    # -- drawing --------------------------------------------------------------------------------------
    def render(self) -> None:
        """Update every widget from the recorded events (called by the throttled renderer thread)."""
        with self._render_lock:
            self._render()

    def _render(self) -> None:
        with self._lock:
            steps, state, message, error, validation = list(self.steps), self.state, self.message, self.error, self.validation
            epochs, evaluations, best_step = list(self.epochs), self.evaluations, self.best_step
        last = steps[-1] if steps else {}
        running = self.run.running
        self.start_button.disabled = running
        self.resume_button.disabled = running or self.run.latest_checkpoint() is None
        self.stop_button.disabled = not running
        self.progress.max = max(1, int(last.get("max_steps") or self.max_steps))
        self.progress.value = int(last.get("step", 0))
        self.errors.value = f"<pre style='color:var(--jp-error-color1,#b00);white-space:pre-wrap'>{html.escape(error)}</pre>" if error else ""
        if steps:
            self.plot.value = self._plot_png(steps, epochs)
        if evaluations and evaluations is not getattr(self, "_drawn_evaluations", None):  # redrawn per validation
            self._drawn_evaluations = evaluations
            if getattr(self, "_metric_plot", None) is None:
                self._metric_plot = MetricPlot()
            self.metrics_plot.value = self._metric_plot.png(evaluations, best_step)
            self.metrics_plot.layout.display = None
        self.evaluation.update(evaluations, best_step)
        if validation is not None and getattr(self, "_shown_validation", None) is not validation:
            self._shown_validation = validation
            self._show_validation(validation)
        self.status.value = self._status_html(state, message, last, epochs[-1] if epochs else {}, best_step)  # last: drawn

    def _status_html(self, state: str, message: str, last: dict[str, Any], epoch: dict[str, Any],
                     best_step: int | None = None) -> str:
        parts = [f"<b>{html.escape(state)}</b>", html.escape(message), f"step {last.get('step', 0)}/{self.progress.max}"]
        if last.get("loss") is not None:
            parts.append(f"loss {last['loss']:.4f}")
        if epoch.get("val_acc") is not None:
            parts.append(f"val acc {epoch['val_acc']:.3f}")
        if last.get("steps_per_s"):
            parts.append(f"{last['steps_per_s']:.2f} steps/s, ETA {_fmt_time(last.get('eta_s'))}")
        if best_step is not None:
            parts.append(f"best step {best_step}")
        return " &nbsp;·&nbsp; ".join(p for p in parts if p)

    def _plot_png(self, steps: list[dict[str, Any]], epochs: list[dict[str, Any]]) -> bytes:
        if getattr(self, "_loss_plot", None) is None:
            from vitdream.widgets.lossplot import LossPlot

            self._loss_plot = LossPlot()  # one figure, updated: see lossplot.py
        return self._loss_plot.png(steps, epochs)

    def _show_validation(self, validation: dict[str, Any]) -> None:
        """Validation images by value: the image and caption widgets are reused, never re-created."""
        boxes = list(self.images.children)
        pairs = list(zip(validation["images"], validation["prompts"]))
        while len(boxes) < len(pairs):
            boxes.append(W.VBox([W.Image(format="png", layout=W.Layout(width="128px", height="128px")), W.HTML()]))
        for box, (image, prompt) in zip(boxes, pairs):
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            box.children[0].value = buffer.getvalue()
            box.children[1].value = f"<small>step {validation['step']}: {html.escape(prompt)}</small>"
        if len(self.images.children) != len(pairs):
            self.images.children = boxes[: len(pairs)]

    # -- static record (widgets/record.py) ------------------------------------------------------------
    record_name = "vitdream training dashboard"
    record_interval_s = 3.0

    def record_text(self) -> str:
        return "\n".join(t for t in (plain_text(self.status.value), plain_text(self.errors.value)) if t)

    def record_images(self) -> list[bytes]:
        views = [box.children[0].value for box in self.images.children if box.children]
        return [v for v in [self.plot.value, self.metrics_plot.value, *views] if v]

    def record_sources(self) -> list[Any]:
        return [self.status, self.errors]

    # -- buttons -----------------------------------------------------------------------------------------
    def _start(self, resume: str | None) -> None:
        try:
            self.run.start(resume=resume)
        except Exception as exc:
            self.errors.value = f"<pre style='color:var(--jp-error-color1,#b00)'>{html.escape(f'{type(exc).__name__}: {exc}')}</pre>"
        self._dirty.set()

    def _stop(self) -> None:
        self.run.stop(wait=False)
        with self._lock:
            self.message = "stopping at the next step, saving a checkpoint…"
        self._dirty.set()


make_callable(__name__)  # vd.widgets.train(...) works even where the package attribute is this module
