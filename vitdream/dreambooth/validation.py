"""Live evaluation of a DreamBooth run: at step 0 (the base model) and every ``validation_steps`` steps,
generate a fixed validation set and score it with the run's evaluators.

The validation set: each subject prompt (``config.subject_prompts``: the instance prompt and
recontextualisations) and the class prompt, ``evaluation_num_images`` images each at seeds
``seed, seed+1, ...`` -- the same at every step, so steps compare image for image. Its metrics
(:func:`vitdream.evaluation.evaluate_images`): ``subject_fidelity``, ``prompt_fidelity``, ``PRES`` (drift),
``DIV``, every other evaluator metric as ``"<id>/<metric>"``, and the copy alarm's ``copy_similarity``
(the highest cosine similarity of a sample to its nearest instance image, found through a FAISS index
over the instance embeddings) and ``copies`` (samples at or above ``copy_threshold``).

Each validation writes ``validation/step-NNNNNN/eval-*.png`` and ``evaluation.json`` (prompts, seeds,
copies), appends a row to ``metrics.csv`` in the run folder (the history that ``run.metrics``,
``run.best_step`` and a resume read), logs ``eval/<metric>`` to the run's loggers (TensorBoard, CSV) and
emits an ``evaluation`` event. A new best step (:mod:`vitdream.dreambooth.best`) gets a checkpoint, kept
whatever ``checkpoints_total_limit`` says; ``early_stopping_patience`` validations without a new best
stop the run.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from vitdream.atomic import atomic_open, atomic_write_text
from vitdream.dreambooth.best import BestStepRule
from vitdream.errors import VitdreamError
from vitdream.events import EventLog

HEADLINE = ("subject_fidelity", "prompt_fidelity", "PRES", "DIV", "copy_similarity", "copies")


def step_folder(output_dir: Path, step: int) -> Path:
    return Path(output_dir) / "validation" / f"step-{step:06d}"


# -- the history on disk ------------------------------------------------------------------------------------------
def read_history(path: Path) -> list[dict[str, Any]]:
    """The rows of ``metrics.csv`` (numbers as floats, ``step`` and ``copies`` as ints), oldest first."""
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="", encoding="utf-8") as fh:
        for raw in csv.DictReader(fh):
            row: dict[str, Any] = {}
            for key, value in raw.items():
                row[key] = float(value) if value not in ("", None) else float("nan")
            row["step"] = int(row["step"])
            if not math.isnan(row.get("copies", float("nan"))):
                row["copies"] = int(row["copies"])
            rows.append(row)
    return sorted(rows, key=lambda r: r["step"])


def write_history(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = ["step", *HEADLINE]
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    for row in sorted(rows, key=lambda r: r["step"]):
        writer.writerow({k: "" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()})
    atomic_write_text(path, buffer.getvalue())


def saved_samples(output_dir: Path, step: int) -> dict[str, Any]:
    """``paths``, ``prompts``, ``seeds`` and ``copies`` of a step's saved validation samples (empty if none)."""
    folder = step_folder(output_dir, step)
    try:
        record = json.loads((folder / "evaluation.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    samples = record.get("samples", [])
    return {"paths": [str(folder / s["path"]) for s in samples], "prompts": [s["prompt"] for s in samples],
            "seeds": [s["seed"] for s in samples], "copies": record.get("copies", [])}


# -- the copy alarm -------------------------------------------------------------------------------------------
class CopyAlarm:
    """Each sample's nearest instance image (cosine similarity), through a FAISS index over instance embeddings."""

    def __init__(self, instance_vectors: np.ndarray, threshold: float) -> None:
        from vitdream.components import create

        vectors = np.asarray(instance_vectors, dtype=np.float32)
        self.threshold = threshold
        self.index = create("indexes", "faiss-flat", dim=vectors.shape[1])
        self.index.add(vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12),
                       np.arange(len(vectors), dtype=np.int64))

    def nearest(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(similarity, instance index) of each row's nearest instance image."""
        vectors = np.asarray(vectors, dtype=np.float32)
        scores, ids = self.index.search(vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12), 1)
        return scores[:, 0].astype(np.float64), ids[:, 0]


# -- the callback --------------------------------------------------------------------------------------------------
class LiveEvaluation(Callback):
    """Scores the validation set at step 0 and every ``validation_steps`` steps (see the module docstring)."""

    def __init__(self, config: Any, log: EventLog, output_dir: Path, instance_images: Callable[[], list[Any]]) -> None:
        self.config, self.events, self.output_dir = config, log, Path(output_dir)
        self.instance_images = instance_images
        self.rule = BestStepRule(config.max_prompt_fidelity_drop, config.max_drift)
        self.history_path = self.output_dir / "metrics.csv"
        self.history: list[dict[str, Any]] = []
        self.best_step: int | None = None
        self._ready = False
        self._done = -1

    @property
    def kept(self) -> set[Path]:
        """Checkpoints the best-step rule needs (never pruned)."""
        if self.best_step is None:
            return set()
        return {self.output_dir / "checkpoints" / f"checkpoint-{self.best_step}.ckpt"}

    # -- Lightning hooks -------------------------------------------------------------------------------------------
    def on_train_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        step = trainer.global_step
        self._done = step
        self.history = [r for r in read_history(self.history_path) if r["step"] <= step]  # a resume rewinds
        self.best_step = self.rule.pick(self.history)
        if trainer.is_global_zero:
            write_history(self.history_path, self.history)
            seen = {e["step"] for e in self.events.of_type("evaluation")}
            for row in self.history:  # a resumed run (new process) shows the metrics and samples it had
                if row["step"] not in seen:
                    self.events.emit("evaluation", step=row["step"], metrics=row, restored=True, best_step=self.best_step,
                                     **saved_samples(self.output_dir, row["step"]))
            if step == 0 and not any(r["step"] == 0 for r in self.history):
                self._evaluate(pl_module, 0)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, *args: Any) -> None:
        step = trainer.global_step
        every = self.config.validation_steps
        if not step or step % every or step == self._done:
            return
        self._done = step
        decision = {"save": False, "stop": False}
        if trainer.is_global_zero:
            previous = self.best_step
            self._evaluate(pl_module, step)
            decision["save"] = self.best_step == step and self.best_step != previous
            decision["stop"] = self._patience_spent(step)
        if trainer.world_size > 1:
            decision = trainer.strategy.broadcast(decision, src=0)
        if decision["save"]:
            path = self.output_dir / "checkpoints" / f"checkpoint-{step}.ckpt"
            if not path.exists():
                trainer.save_checkpoint(path, weights_only=False)  # full state; every rank calls it; rank 0 writes
                if trainer.is_global_zero:
                    self.events.emit("checkpoint", step=step, path=str(path), reason="best step")
        if decision["stop"]:
            trainer.should_stop = True
            if trainer.is_global_zero:
                self.events.emit("early_stop", step=step, best_step=self.best_step,
                                 message=f"no new best step in {self.config.early_stopping_patience} validations")

    def _patience_spent(self, step: int) -> bool:
        patience = self.config.early_stopping_patience
        if not patience:
            return False
        since = self.best_step if self.best_step is not None else 0
        return sum(1 for r in self.history if since < r["step"] <= step) >= patience

    # -- one validation --------------------------------------------------------------------------------------------
    def _setup(self) -> None:
        from vitdream.components import load_evaluators

        self.evaluators = load_evaluators(self.config.evaluator_specs)
        self.references = list(self.instance_images())
        if not self.references:
            raise VitdreamError("live evaluation: no instance images to compare with")
        self.embedding = next((e for e in self.evaluators if e.has_embeddings), None)
        self.alarm = None
        if self.embedding is not None:
            self.alarm = CopyAlarm(self.embedding.embed(self.references), self.config.copy_threshold)
        self._ready = True

    def _evaluate(self, module: Any, step: int) -> dict[str, Any]:
        from vitdream.evaluation import evaluate_images

        t0 = time.perf_counter()
        if not self._ready:
            self._setup()
        c = self.config
        prompts = c.subject_prompts + ([c.class_prompt] if c.class_prompt else [])
        seeds = [c.seed + i for i in range(c.evaluation_num_images)]
        images = module.sample(prompts, seeds, c.evaluation_inference_steps, c.validation_guidance_scale)
        by_prompt = {p: images[i * len(seeds):(i + 1) * len(seeds)] for i, p in enumerate(prompts)}
        subject = {p: by_prompt[p] for p in c.subject_prompts}
        class_images = by_prompt.get(c.class_prompt) if c.class_prompt else None
        metrics, rows = evaluate_images(subject, class_images, self.references, evaluators=self.evaluators,
                                        class_prompt=c.class_prompt or "")
        samples = [{"prompt": p, "seed": s} for p in prompts for s in seeds]
        copies: list[dict[str, Any]] = []
        if self.alarm is not None:
            similarity, nearest = self.alarm.nearest(self.embedding.embed(images))
            for i, sample in enumerate(samples):
                sample.update(nearest_instance=int(nearest[i]), similarity=float(similarity[i]))
                if similarity[i] >= self.alarm.threshold:
                    copies.append({"sample": i, **sample})
            metrics["copy_similarity"] = float(similarity.max())
        metrics["copies"] = len(copies)
        paths = self._save(step, images, samples, rows, metrics, copies)
        row = {"step": step, **{k: metrics.get(k, float("nan")) for k in HEADLINE},
               **{k: v for k, v in metrics.items() if k not in HEADLINE}, "seconds": time.perf_counter() - t0}
        self.history = [r for r in self.history if r["step"] != step] + [row]
        self.best_step = self.rule.pick(self.history)
        write_history(self.history_path, self.history)
        self._log(module, step, row, images, prompts)
        self.events.emit("evaluation", step=step, metrics=row, per_prompt=rows, images=images, paths=paths,
                         prompts=[s["prompt"] for s in samples], seeds=[s["seed"] for s in samples], copies=copies,
                         best_step=self.best_step, seconds=row["seconds"])
        return row

    def _save(self, step: int, images: list[Any], samples: list[dict[str, Any]], rows: list[dict[str, Any]],
              metrics: dict[str, Any], copies: list[dict[str, Any]]) -> list[str]:
        folder = step_folder(self.output_dir, step)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for i, (image, sample) in enumerate(zip(images, samples)):
            path = folder / f"eval-{i:02d}.png"
            with atomic_open(path) as fh:
                image.save(fh, format="PNG")
            sample["path"] = path.name
            paths.append(str(path))
        record = {"step": step, "samples": samples, "per_prompt": rows, "metrics": metrics, "copies": copies,
                  "copy_threshold": self.config.copy_threshold}
        atomic_write_text(folder / "evaluation.json", json.dumps(record, indent=1, default=float))
        return paths

    def _log(self, module: Any, step: int, row: dict[str, Any], images: list[Any], prompts: list[str]) -> None:
        trainer = getattr(module, "_trainer", None)
        loggers = trainer.loggers if trainer is not None else []
        values = {f"eval/{k}": float(v) for k, v in row.items() if k != "step" and isinstance(v, (int, float))
                  and not math.isnan(v)}
        for logger in loggers:
            logger.log_metrics(values, step=step)
            experiment = getattr(logger, "experiment", None)
            if hasattr(experiment, "add_image"):
                from vitdream.base.results import image_row

                experiment.add_image("evaluation/samples", np.asarray(image_row(images)), step, dataformats="HWC")


# -- side by side --------------------------------------------------------------------------------------------------
def validated_steps(output_dir: Path) -> list[int]:
    """Steps whose validation samples are on disk."""
    found = [int(p.parent.name.split("-")[1]) for p in (Path(output_dir) / "validation").glob("step-*/evaluation.json")]
    return sorted(found)


def short_prompt(prompt: str, instance_prompt: str) -> str:
    """What tells a validation prompt apart: ``"on a blue background"``, ``"(instance)"``, or the prompt."""
    if prompt == instance_prompt:
        return "(instance)"
    return prompt[len(instance_prompt):].strip() if prompt.startswith(instance_prompt) else prompt


def comparison_sheet(output_dir: Path, steps: list[tuple[str, int]], max_images: int | None = None) -> Any:
    """One row per ``(label, step)``: that step's validation samples in their fixed order (same prompts and
    seeds in every row), captioned with the prompt's distinguishing words and the seed."""
    from PIL import Image, ImageDraw, ImageFont

    from vitdream.base.results import image_row

    rows = []
    for label, step in steps:
        folder = step_folder(output_dir, step)
        if not (folder / "evaluation.json").is_file():
            listed = ", ".join(map(str, validated_steps(output_dir))) or "none"
            raise VitdreamError(f"step {step}: no validation samples in {folder} (validated steps: {listed})")
        samples = json.loads((folder / "evaluation.json").read_text(encoding="utf-8"))["samples"][:max_images]
        instance = samples[0]["prompt"]
        images = [Image.open(folder / s["path"]).convert("RGB") for s in samples]
        captions = [f"{short_prompt(s['prompt'], instance)[:18]} s{s['seed']}" for s in samples]
        rows.append((label, image_row(images, captions, min_side=96)))
    font = ImageFont.load_default()
    label_w = 90
    sheet = Image.new("RGB", (label_w + max(r.width for _, r in rows), sum(r.height + 4 for _, r in rows)), "white")
    draw, y = ImageDraw.Draw(sheet), 0
    for label, row in rows:
        draw.text((4, y + row.height // 2 - 6), label, fill="black", font=font)
        sheet.paste(row, (label_w, y))
        y += row.height + 4
    return sheet
