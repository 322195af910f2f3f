"""The generate widget's study tab: a guidance or sampler study of the widget's prompt, plotted live,
with one image per setting (the first seed) under the plot.

Runs on the widget's background worker (its cancel event: **Cancel**, or any new request, stops it and
keeps the finished rows). After every row the figure and the table are redrawn (a matplotlib
``Figure`` rendered to PNG, no pyplot in the thread).
"""

from __future__ import annotations

import html
import io
import threading
from typing import Any, Sequence

import ipywidgets as w

from vitdream.errors import VitdreamError

GUIDANCE, SAMPLERS = "guidance scales", "samplers x steps"


def parse_numbers(text: str, field: str, cast: Any = float) -> list[Any]:
    """``"1, 2, 7.5"`` -> ``[1.0, 2.0, 7.5]``; a clear error naming ``field`` otherwise."""
    try:
        values = [cast(part) for part in text.replace(";", ",").split(",") if part.strip()]
    except ValueError:
        raise VitdreamError(f"study: {field}: {text!r} is not a comma-separated list of numbers") from None
    if not values:
        raise VitdreamError(f"study: {field}: give at least one value")
    return values


class StudyTab(w.VBox):
    """Controls, a cell progress bar, the live plot and the table of a study."""

    def __init__(self, owner: Any, evaluators: Sequence[Any] | None = None) -> None:
        from vitdream.generation import list_samplers
        from vitdream.widgets.generate import show_png

        self.owner = owner
        self.evaluators = evaluators
        self._evaluators: list[Any] | None = None  # loaded on the first study, kept for the next ones
        self.result: Any = None
        self.kind = w.ToggleButtons(options=[GUIDANCE, SAMPLERS], value=GUIDANCE, style={"button_width": "auto"})
        self.scales = w.Text(value="1, 2, 3, 5, 7.5, 10, 15", description="scales")
        ids = [r["id"] for r in list_samplers()]
        self.samplers = w.SelectMultiple(options=ids, value=[i for i in ("ddim", "euler", "dpm-solver++") if i in ids],
                                         description="samplers", rows=min(4, len(ids)))
        self.step_counts = w.Text(value="5, 10, 20, 50", description="steps")
        self.num_seeds = w.IntSlider(value=4, min=1, max=16, description="seeds")
        self.run_button = w.Button(description="Run study", button_style="primary")
        self.cancel_button = w.Button(description="Cancel", disabled=True)
        self.progress = w.IntProgress(value=0, min=0, max=1, layout=w.Layout(width="256px"))
        # flex-start: a VBox would otherwise stretch the images to its width
        self.plot = w.Image(format="png", layout=w.Layout(align_self="flex-start", max_width="100%"))
        self.grid = w.Image(format="png", layout=w.Layout(align_self="flex-start", max_width="100%"))
        for image, css in ((self.plot, "vd-study-plot"), (self.grid, "vd-study-grid")):
            image.add_class(css)
            show_png(image, None)
        self.table = w.HTML()
        self.run_button.on_click(lambda _b: owner.request("study"))
        self.cancel_button.on_click(lambda _b: owner._cancel.set())
        self.kind.observe(lambda _c: self._show_fields(), names="value")
        self.fields = w.HBox([self.scales])
        super().__init__([
            w.HTML("Same prompt, fixed seeds (from the image tab's seed), every setting scored: prompt fidelity, "
                   "diversity, seconds per image."),
            self.kind, self.fields, w.HBox([self.num_seeds, self.run_button, self.cancel_button, self.progress]),
            self.plot, self.grid, self.table,
        ])

    def _show_fields(self) -> None:
        self.fields.children = [self.scales] if self.kind.value == GUIDANCE else [self.samplers, self.step_counts]

    def run(self, cancel: threading.Event) -> None:
        """Run the study the controls describe (on the widget's worker thread)."""
        from vitdream.components import load_evaluators
        from vitdream.generation.studies import DEFAULT_EVALUATORS, guidance_study, sampler_study

        owner = self.owner
        settings = owner._settings()
        prompt = settings.pop("prompt")
        first = settings.pop("seed")
        seeds = range(first, first + self.num_seeds.value)
        if self._evaluators is None:
            self._evaluators = load_evaluators(list(self.evaluators or DEFAULT_EVALUATORS))
        common = dict(seeds=seeds, evaluators=self._evaluators, progress=False, cancel=cancel,
                      on_row=self.show, negative_prompt=settings["negative_prompt"])
        self.cancel_button.disabled = False
        try:
            if self.kind.value == GUIDANCE:
                scales = parse_numbers(self.scales.value, "scales")
                self.progress.value, self.progress.max = 0, len(scales)
                study = guidance_study(owner.generator, prompt, scales, steps=settings["steps"],
                                       sampler=settings["sampler"], **common)
            else:
                steps = parse_numbers(self.step_counts.value, "steps", int)
                if not self.samplers.value:
                    raise VitdreamError("study: pick at least one sampler")
                self.progress.value, self.progress.max = 0, len(steps) * len(self.samplers.value)
                study = sampler_study(owner.generator, prompt, list(self.samplers.value), steps,
                                      guidance_scale=settings["guidance_scale"], **common)
        finally:
            self.cancel_button.disabled = True
        self.show(study)
        done = "cancelled after" if study.cancelled else "done:"
        owner._say(f"study {done} {len(study.rows)} settings x {len(study.seeds)} seeds", error=False)

    def show(self, study: Any) -> None:
        """Redraw the plot and the table from ``study`` (called after every row)."""
        from matplotlib.figure import Figure

        from vitdream.generation.study_plots import plot_study
        from vitdream.widgets.generate import png_bytes, show_png

        self.result = study
        self.progress.value = len(study.rows)
        figure = plot_study(study, Figure(figsize=(3.0 * 4, 2.6)))
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=80)
        show_png(self.plot, buffer.getvalue())
        show_png(self.grid, png_bytes(study.grid(prompt=0, seed=0, scale=2), None))  # one image per setting
        self.table.value = study.table._repr_html_()
        self.owner._say(html.escape(f"study: {len(study.rows)} of {self.progress.max} settings"), error=False)
