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

import html
import io
import threading
import time
from typing import Any

import ipywidgets as W

from vitdream.widgets import make_callable
from vitdream.widgets.evaluation import EvaluationPanel, metric_curves

CURVES = (("loss", "total"), ("instance_loss", "instance"), ("prior_loss", "prior"))


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


class TrainDashboard(W.VBox):
    """Curves (total/instance/prior loss, LR, validation metrics), validation images, the samples of any
    validated step with copy flags, steps/s + ETA, best step, Start/Stop/Resume, errors."""

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
        self.errors = W.HTML()
        self.evaluation = EvaluationPanel()
        self.start_button = W.Button(description="Start", icon="play", button_style="success")
        self.stop_button = W.Button(description="Stop", icon="stop", button_style="danger")
        self.resume_button = W.Button(description="Resume", icon="repeat", button_style="info")
        self.start_button.on_click(lambda _: self._start(None))
        self.resume_button.on_click(lambda _: self._start("latest"))
        self.stop_button.on_click(lambda _: self._stop())
        buttons = W.HBox([self.start_button, self.stop_button, self.resume_button])
        super().__init__([buttons, self.status, self.progress, self.plot, self.images, self.evaluation, self.errors])
        run.subscribe(self._on_event, replay=True)
        self._renderer = threading.Thread(target=self._render_loop, name="vitdream-train-dashboard", daemon=True)
        self._renderer.start()
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
            elif kind == "validation":
                self.validation = event
            elif kind == "evaluation":
                self.evaluations = {**self.evaluations, event["step"]: event}
                self.best_step = event.get("best_step")
            elif kind == "error":
                self.error = event.get("traceback") or event.get("message", "")
        self._dirty.set()

    def _render_loop(self) -> None:
        while True:
            self._dirty.wait()
            self._dirty.clear()
            try:
                self.render()
            except Exception as exc:  # show, never die silently
                self.errors.value = f"<pre style='color:#b00'>dashboard error: {html.escape(repr(exc))}</pre>"
            time.sleep(self.throttle_s)

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
        self.errors.value = f"<pre style='color:#b00;white-space:pre-wrap'>{html.escape(error)}</pre>" if error else ""
        if steps or evaluations:
            self.plot.value = self._plot_png(steps, epochs, evaluations, best_step)
            self.plot.layout.width = "960px" if evaluations else "640px"
        self.evaluation.update(evaluations, best_step)
        if validation is not None and getattr(self, "_shown_validation", None) is not validation:
            self._shown_validation = validation
            self.images.children = [self._image_box(img, prompt, validation["step"])
                                    for img, prompt in zip(validation["images"], validation["prompts"])]
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

    def _plot_png(self, steps: list[dict[str, Any]], epochs: list[dict[str, Any]],
                  evaluations: dict[int, dict[str, Any]] | None = None, best_step: int | None = None) -> bytes:
        from matplotlib.figure import Figure

        if evaluations:
            fig = Figure(figsize=(12, 2.8), dpi=80)
            ax, ax_lr, ax_eval = fig.subplots(1, 3, gridspec_kw={"width_ratios": [3, 1.3, 3]})
            metric_curves(ax_eval, evaluations, best_step)
        else:
            fig = Figure(figsize=(8, 2.6), dpi=80)
            ax, ax_lr = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 1.3]})
        x = [s["step"] for s in steps]
        for key, label in CURVES:
            ys = [s.get(key) for s in steps]
            if any(y is not None for y in ys):
                ax.plot(x, [float("nan") if y is None else y for y in ys], label=label, lw=1.2)
        validation = [(e["step"], e["val_loss"]) for e in epochs if e.get("val_loss") is not None]
        if validation:
            ax.plot(*zip(*validation), "o-", label="validation", lw=1.2)
        ax.set_xlabel("step"), ax.set_ylabel("loss"), ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(loc="upper right", fontsize=8)
        ax_lr.plot(x, [s.get("lr") or 0.0 for s in steps], color="tab:purple", lw=1.2)
        ax_lr.set_xlabel("step"), ax_lr.set_title("learning rate", fontsize=9), ax_lr.grid(alpha=0.3)
        ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        return buffer.getvalue()

    @staticmethod
    def _image_box(image: Any, prompt: str, step: int) -> W.VBox:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        view = W.Image(value=buffer.getvalue(), format="png", layout=W.Layout(width="128px", height="128px"))
        return W.VBox([view, W.HTML(f"<small>step {step}: {html.escape(prompt)}</small>")])

    # -- buttons -----------------------------------------------------------------------------------------
    def _start(self, resume: str | None) -> None:
        try:
            self.run.start(resume=resume)
        except Exception as exc:
            self.errors.value = f"<pre style='color:#b00'>{html.escape(f'{type(exc).__name__}: {exc}')}</pre>"
        self._dirty.set()

    def _stop(self) -> None:
        self.run.stop(wait=False)
        with self._lock:
            self.message = "stopping at the next step, saving a checkpoint…"
        self._dirty.set()


make_callable(__name__)  # vd.widgets.train(...) works even where the package attribute is this module
