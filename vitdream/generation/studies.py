"""Guidance and sampler studies: the same prompts and fixed seeds under many settings, scored.

``guidance_study`` runs every prompt at every guidance scale with the same seeds; ``sampler_study``
every sampler at every step count. Each *cell* (a scale, or a sampler and step count) becomes a row
of :attr:`Study.table`: ``seconds_per_image`` (generation only), the evaluators' prompt-fidelity
metrics (the :mod:`evaluators <vitdream.base.evaluator>` plugin kind, averaged over images), and
``diversity`` -- the mean pairwise cosine distance of an evaluator's embeddings among the images of
one prompt (different seeds), averaged over prompts. A sampler study adds ``change_to_final``: the
mean absolute pixel difference (0-1) of each image from the same sampler's image at the most steps
(how far from converged). Seeds are batched (consecutive seeds in one ``generate`` call), a console
progress bar counts images, ``cancel`` (a ``threading.Event``) stops between and within batches
and keeps the finished rows, and ``on_row(study)`` runs after every row (live plots).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from vitdream.errors import GenerationCancelled, VitdreamError
from vitdream.evaluation import MetricsTable, diversity

DEFAULT_EVALUATORS: tuple[str, ...] = ("shapes-world", "vit-embedding")
MAX_BATCH = 8


@dataclass
class Study:
    """What a study returns: ``rows`` (see the module docstring), the ``images`` of every cell, ``failures``."""

    kind: str  # "guidance" or "sampler"
    prompts: list[str]
    seeds: list[int]
    rows: list[dict[str, Any]] = field(default_factory=list)
    images: dict[Any, list[Any]] = field(default_factory=dict)  # cell key -> images, prompt-major then seed
    fidelity: list[str] = field(default_factory=list)  # the prompt-fidelity columns
    failures: list[Any] = field(default_factory=list)
    cancelled: bool = False

    @property
    def table(self) -> MetricsTable:
        """One row per cell."""
        return MetricsTable(self.rows)

    def column(self, name: str) -> list[Any]:
        return [row.get(name, float("nan")) for row in self.rows]

    def plot(self, fig: Any = None) -> Any:
        """Per cell: prompt fidelity, diversity (and ``change_to_final``), seconds per image."""
        from vitdream.generation.study_plots import plot_study

        return plot_study(self, fig)

    def grid(self, prompt: int = 0, seed: int = 0, scale: int = 2) -> Any:
        """One row of images: the same prompt and seed in every cell, labelled with the cell."""
        from vitdream.base.results import image_row

        n = len(self.seeds)
        tiles = [images[prompt * n + seed] for images in self.images.values()]
        labels = [_label(key) for key in self.images]
        row = image_row(tiles, labels)
        return row.resize((row.width * scale, row.height * scale)) if scale > 1 else row

    def __repr__(self) -> str:
        state = " (cancelled)" if self.cancelled else ""
        return f"{self.kind} study, {len(self.prompts)} prompts x {len(self.seeds)} seeds{state}\n{self.table!r}"

    def _repr_html_(self) -> str:
        return self.table._repr_html_()


def _label(key: Any) -> str:
    if isinstance(key, tuple):
        return f"{key[0]} {key[1]}"
    return f"g={key:g}" if isinstance(key, float) else str(key)


def seed_batches(seeds: Sequence[int], limit: int = MAX_BATCH) -> list[tuple[int, int]]:
    """``[(first seed, count), ...]``: runs of consecutive seeds, at most ``limit`` long."""
    batches: list[tuple[int, int]] = []
    for seed in seeds:
        if batches and batches[-1][0] + batches[-1][1] == seed and batches[-1][1] < limit:
            batches[-1] = (batches[-1][0], batches[-1][1] + 1)
        else:
            batches.append((seed, 1))
    return batches


class _Runner:
    """Generates and scores the cells of a study."""

    def __init__(self, generator: Any, study: Study, evaluators: Any, references: Any, progress: bool,
                 cancel: threading.Event | None, on_row: Callable[[Study], Any] | None, total_cells: int) -> None:
        from vitdream.components import load_evaluators

        self.generator, self.study, self.references = generator, study, references
        self.evaluators = load_evaluators(list(evaluators))
        self.cancel, self.on_row = cancel, on_row
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total_cells * len(study.prompts) * len(study.seeds), desc=f"{study.kind} study",
                            unit="image")
        for evaluator in self.evaluators:
            study.fidelity.extend(c for metric, c in evaluator.provides.items() if metric == "prompt_fidelity"
                                  and self._scored(evaluator) and c not in study.fidelity)

    def _scored(self, evaluator: Any) -> bool:
        return "references" not in evaluator.uses or self.references is not None

    def cell(self, key: Any, label: dict[str, Any], settings: dict[str, Any],
             extra: Callable[[list[Any]], dict[str, float]] | None = None) -> bool:
        """Generate and score one cell (``extra(images)``: more columns); False when cancelled."""
        study, images = self.study, []
        start = time.perf_counter()
        try:
            for prompt in study.prompts:
                for first, count in seed_batches(study.seeds):
                    if self.cancel is not None and self.cancel.is_set():
                        raise GenerationCancelled("study cancelled")
                    images.extend(self.generator.generate(prompt, seed=first, num_images=count, cancel=self.cancel,
                                                          **settings))
                    if self.bar is not None:
                        self.bar.update(count)
        except GenerationCancelled:
            study.cancelled = True
            self.close()
            return False
        seconds = (time.perf_counter() - start) / max(1, len(images))
        study.images[key] = images
        study.rows.append({**label, "images": len(images), "seconds_per_image": seconds, **self.score(images),
                           **(extra(images) if extra else {})})
        if self.on_row is not None:
            self.on_row(study)
        return True

    def score(self, images: list[Any]) -> dict[str, float]:
        study = self.study
        prompts = [p for p in study.prompts for _ in study.seeds]
        out: dict[str, float] = {}
        with_embeddings = [e for e in self.evaluators if e.has_embeddings]
        for evaluator in self.evaluators:
            if self._scored(evaluator):
                scores = evaluator.score(images, prompts=prompts, references=self.references)
                study.failures.extend(scores.failures)
                for metric, values in scores.values.items():
                    if len(values) and not np.all(np.isnan(values)):
                        name = metric if metric not in out else f"{evaluator.id}:{metric}"
                        out[name] = float(np.nanmean(values))
            if evaluator.has_embeddings and len(study.seeds) > 1:
                vectors = evaluator.embed(images)
                n = len(study.seeds)
                name = "diversity" if len(with_embeddings) == 1 else f"diversity[{evaluator.id}]"
                out[name] = float(np.mean([diversity(vectors[i:i + n]) for i in range(0, len(vectors), n)]))
        return out

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _check(prompts: Any, seeds: Any) -> tuple[list[str], list[int]]:
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    seeds = [int(s) for s in seeds]
    if not prompts:
        raise VitdreamError("study: option 'prompts': give at least one prompt")
    if not seeds:
        raise VitdreamError("study: option 'seeds': give at least one seed")
    if len(set(seeds)) != len(seeds):
        raise VitdreamError(f"study: option 'seeds': {seeds} repeats a seed")
    return prompts, seeds


def guidance_study(generator: Any, prompts: str | Sequence[str], scales: Sequence[float] = (1, 2, 3, 5, 7.5, 10, 15),
                   seeds: Sequence[int] = range(8), evaluators: Sequence[Any] = DEFAULT_EVALUATORS, *,
                   references: Any = None, steps: int = 20, sampler: str = "ddim", progress: bool = True,
                   cancel: threading.Event | None = None, on_row: Callable[[Study], Any] | None = None,
                   **settings: Any) -> Study:
    """Every prompt at every guidance scale with the same ``seeds`` (see the module docstring)."""
    prompts, seeds = _check(prompts, seeds)
    if not scales:
        raise VitdreamError("guidance_study: option 'scales': give at least one guidance scale")
    study = Study("guidance", prompts, seeds)
    runner = _Runner(generator, study, evaluators, references, progress, cancel, on_row, len(scales))
    for scale in scales:
        if not runner.cell(float(scale), {"guidance_scale": float(scale)},
                           dict(guidance_scale=scale, steps=steps, sampler=sampler, **settings)):
            break
    runner.close()
    return study


def sampler_study(generator: Any, prompts: str | Sequence[str], samplers: Sequence[str] = ("ddim", "euler", "dpm-solver++"),
                  steps: Sequence[int] = (5, 10, 20, 50), seeds: Sequence[int] = range(4),
                  evaluators: Sequence[Any] = DEFAULT_EVALUATORS, *, references: Any = None,
                  guidance_scale: float = 7.5, progress: bool = True, cancel: threading.Event | None = None,
                  on_row: Callable[[Study], Any] | None = None, **settings: Any) -> Study:
    """Every sampler at every step count (most steps first, the reference for ``change_to_final``)."""
    prompts, seeds = _check(prompts, seeds)
    if not samplers or not steps:
        raise VitdreamError("sampler_study: give at least one sampler and one step count")
    study = Study("sampler", prompts, seeds)
    runner = _Runner(generator, study, evaluators, references, progress, cancel, on_row, len(samplers) * len(steps))
    order = sorted(set(int(s) for s in steps), reverse=True)
    for sampler in samplers:
        for count in order:
            def change(images: list[Any], final: Any = (sampler, order[0])) -> dict[str, float]:
                reference = study.images.get(final, images)
                return {"change_to_final": float(np.mean([pixel_change(a, b) for a, b in zip(images, reference)]))}

            if not runner.cell((sampler, count), {"sampler": sampler, "steps": count},
                               dict(guidance_scale=guidance_scale, steps=count, sampler=sampler, **settings), change):
                runner.close()
                return study
    runner.close()
    return study


def pixel_change(a: Any, b: Any) -> float:
    """Mean absolute difference of two images' RGB pixels, 0 (same) to 1."""
    return float(np.abs(np.asarray(a.convert("RGB"), np.float64) - np.asarray(b.convert("RGB"), np.float64)).mean() / 255)
