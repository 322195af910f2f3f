"""DreamBooth evaluation on the shapes world, after the DreamBooth paper (Ruiz et al., 2023, section 4.1).

The paper measures personalised models with DINO / CLIP image embeddings. Here the embedded mini ViT
stands in for them (any :class:`vitdream.base.Embedder` can), and the world's plain backgrounds make
prompt fidelity measurable from pixels:

====================  ==========================================================================  =========
metric                what it is                                                                   better
====================  ==========================================================================  =========
``subject_fidelity``  mean cosine similarity of embeddings, every generated subject image (the     higher
                      instance prompt in each context) against every real subject image (DINO)
``prompt_fidelity``   fraction of those generations showing what the prompt asks for: the named   higher
                      background colour (read from the image border) and the class noun's shape
                      (the classifier's top-1 label ends with it)
``PRES``              prior preservation: mean cosine similarity of *class-prompt* generations      lower
                      ("a photo of a star") to the real subject. High = the subject leaks into
                      the whole class ("language drift")
``DIV``               diversity: mean pairwise cosine *distance* among generations of the same     higher
                      prompt (the paper uses LPIPS), averaged over prompts
====================  ==========================================================================  =========

>>> result = vd.evaluate_dreambooth({"with prior": run1, "without prior": run2})
>>> result            # the table (one row per model), the plot and sample grids in a notebook
>>> result.metrics["with prior"]["PRES"]

Everything is seeded: same models and arguments give the same numbers.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vitdream.datasets.reading import background_of, border_pixels  # noqa: F401 -- background_of: public here too
from vitdream.errors import VitdreamError

METRICS: tuple[str, ...] = ("subject_fidelity", "prompt_fidelity", "PRES", "DIV")
#: True: higher is better
HIGHER_IS_BETTER: dict[str, bool] = {"subject_fidelity": True, "prompt_fidelity": True, "PRES": False, "DIV": True}
DEFAULT_CONTEXTS: tuple[str, ...] = ("blue", "white")
_BACKGROUND_IN_PROMPT = re.compile(r"\bon an? (\w+) background\b")


# -- the metrics, on plain arrays ----------------------------------------------------------------------
def _unit_rows(x: Any) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise VitdreamError(f"expected a non-empty (n, dim) array of embeddings, got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise VitdreamError("an embedding is all zeros: its cosine similarity is undefined")
    return x / norms


def cosine_matrix(a: Any, b: Any) -> np.ndarray:
    """``(len(a), len(b))`` cosine similarities of the rows of ``a`` and ``b``."""
    return _unit_rows(a) @ _unit_rows(b).T


def mean_cosine(a: Any, b: Any) -> float:
    """Mean cosine similarity over every pair (one row of ``a``, one row of ``b``)."""
    return float(cosine_matrix(a, b).mean())


def subject_fidelity(generated: Any, real: Any) -> float:
    """The paper's DINO / CLIP-I score: mean pairwise cosine similarity, generated vs real subject embeddings."""
    return mean_cosine(generated, real)


def prior_preservation(class_generated: Any, real: Any) -> float:
    """The paper's PRES: mean pairwise cosine similarity of class-prompt generations to the real subject
    (lower is better: the class has kept its own look)."""
    return mean_cosine(class_generated, real)


def diversity(embeddings: Any) -> float:
    """The paper's DIV with cosine distance in place of LPIPS: mean of ``1 - cos`` over distinct pairs.

    0 when every image is the same; needs at least two images.
    """
    x = _unit_rows(embeddings)
    n = x.shape[0]
    if n < 2:
        raise VitdreamError("diversity needs at least two images of the same prompt")
    sims = x @ x.T
    upper = sims[np.triu_indices(n, k=1)]
    return float(np.mean(1.0 - upper))


def isolate_subject(image: Any, fill: Sequence[int] = (20, 20, 20), tolerance: float = 60.0) -> Any:
    """The image with its plain background painted ``fill`` (the world's black): every pixel within
    ``tolerance`` (RGB distance) of the border's median colour. Embeddings of the result compare
    subjects, not contexts -- the role object-centric photos play for DINO in the paper."""
    from PIL import Image

    array = np.asarray(image.convert("RGB"), dtype=np.float64)
    median = np.median(border_pixels(array), axis=0)
    background = np.sqrt(((array - median) ** 2).sum(axis=-1)) < tolerance
    out = array.copy()
    out[background] = fill
    return Image.fromarray(out.astype(np.uint8))


def background_in_prompt(prompt: str) -> str | None:
    """``"... on a blue background"`` -> ``"blue"``; None when the prompt names no background."""
    match = _BACKGROUND_IN_PROMPT.search(prompt)
    return match.group(1) if match else None


def shape_of(label: str) -> str:
    """The shape in a world label (``"red star"`` -> ``"star"``)."""
    return label.strip().split()[-1] if label.strip() else ""


def world_checks(images: Sequence[Any], prompts: Sequence[str], classifier: Any = None) -> list[dict[str, bool]]:
    """Per image, whether it shows each attribute its shapes-world prompt names
    (:func:`vitdream.datasets.reading.parse_caption`), plus ``"all"``: colours, pattern and background
    by the model-free pixel reader (:func:`vitdream.datasets.reading.read_look`), the shape by
    ``classifier``'s top-1 label (default: the embedded mini ViT)."""
    from vitdream.datasets.reading import parse_caption, read_look

    if len(images) != len(prompts):
        raise VitdreamError(f"world_checks: {len(images)} images but {len(prompts)} prompts")
    wanted = [parse_caption(p) for p in prompts]
    labels: list[str | None] = [None] * len(images)
    if any("shape" in w for w in wanted):
        if classifier is None:
            from vitdream.vision import load_classifier

            classifier = load_classifier(progress=False)
        labels = [p[0].label if p else None for p in classifier.classify(list(images), top_k=1)]
    rows = []
    for image, want, label in zip(images, wanted, labels):
        look = read_look(image)
        row = {key: getattr(look, key) == value for key, value in want.items() if key != "shape"}
        if want.get("pattern") == "plain" and "colour2" not in want:
            row["pattern"] = look.pattern == "plain"
        if "shape" in want:
            row["shape"] = label is not None and shape_of(label) == want["shape"]
        row["all"] = all(row.values())
        rows.append(row)
    return rows


# -- results ----------------------------------------------------------------------------------------------
class MetricsTable:
    """A small table (rows of dicts) with a readable text and HTML repr; ``to_pandas()`` when pandas is there."""

    def __init__(self, rows: Sequence[Mapping[str, Any]], index: str | None = None) -> None:
        self.rows = [dict(r) for r in rows]
        self.index = index
        columns: list[str] = []
        for row in self.rows:
            columns.extend(k for k in row if k not in columns)
        self.columns = columns

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, column: str) -> list[Any]:
        if column not in self.columns:
            raise KeyError(f"{column!r}; columns: {', '.join(self.columns)}")
        return [row.get(column) for row in self.rows]

    def to_pandas(self) -> Any:
        import pandas as pd

        frame = pd.DataFrame(self.rows, columns=self.columns)
        return frame.set_index(self.index) if self.index else frame

    @staticmethod
    def _fmt(value: Any) -> str:
        if isinstance(value, float):
            return "nan" if math.isnan(value) else f"{value:.3f}"
        return str(value)

    def __repr__(self) -> str:
        cells = [[self._fmt(r.get(c, "")) for c in self.columns] for r in self.rows]
        widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(self.columns)]
        line = lambda values: "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths)))  # noqa: E731
        return "\n".join([line(self.columns), line(["-" * w for w in widths]), *(line(r) for r in cells)])

    def _repr_html_(self) -> str:
        import html

        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(self._fmt(r.get(c, '')))}</td>" for c in self.columns) + "</tr>"
            for r in self.rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def as_table(rows: Sequence[Mapping[str, Any]], index: str | None = None) -> Any:
    """A pandas DataFrame when pandas is installed, else a :class:`MetricsTable`."""
    table = MetricsTable(rows, index)
    try:
        return table.to_pandas()
    except ImportError:
        return table


@dataclass
class DreamBoothEvaluation:
    """What :func:`evaluate_dreambooth` returns.

    ``metrics``: ``{model name: {metric: value}}``; ``table``: the same, one row per model
    (DataFrame-like); ``per_prompt``: one row per model and prompt; ``images``:
    ``{model name: {prompt: [PIL images]}}``; ``settings``: how the images were made.
    """

    metrics: dict[str, dict[str, float]]
    per_prompt_rows: list[dict[str, Any]]
    images: dict[str, dict[str, list[Any]]]
    settings: dict[str, Any]
    real_images: list[Any] = field(default_factory=list)

    @property
    def table(self) -> Any:
        return as_table([{"model": name, **values} for name, values in self.metrics.items()], index="model")

    @property
    def per_prompt(self) -> Any:
        return as_table(self.per_prompt_rows)

    def __getitem__(self, model: str) -> dict[str, float]:
        return self.metrics[model]

    def plot(self, ax: Any = None) -> Any:
        """Bar charts of the four metrics, one bar per model; returns the matplotlib Figure."""
        import matplotlib.pyplot as plt
        from matplotlib.figure import Figure

        names = list(self.metrics)
        if ax is None:
            fig = Figure(figsize=(3.0 * len(METRICS), 3.0), layout="constrained")
            axes = fig.subplots(1, len(METRICS))
        else:
            axes = np.atleast_1d(ax)
            fig = axes[0].figure
        colours = plt.get_cmap("tab10").colors
        for axis, metric in zip(axes, METRICS):
            values = [self.metrics[n].get(metric, float("nan")) for n in names]
            bars = axis.bar(range(len(names)), values, color=[colours[i % 10] for i in range(len(names))])
            axis.bar_label(bars, fmt="%.2f", fontsize=8)
            axis.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
            axis.set_title(f"{metric} ({'higher' if HIGHER_IS_BETTER[metric] else 'lower'} is better)", fontsize=9)
            finite = [v for v in values if not math.isnan(v)]
            top = max(finite + [1.0 if metric == "prompt_fidelity" else 0.0])
            axis.set_ylim(min(0.0, min(finite or [0.0])), top * 1.15 if top > 0 else 1.0)
        return fig

    def grid(self, model: str | None = None, max_images: int = 8, scale: int = 2) -> Any:
        """The generated images as one labelled sheet: a row per (model, prompt)."""
        from PIL import Image, ImageDraw, ImageFont

        rows = [(m, p, imgs[:max_images]) for m, prompts in self.images.items() if model in (None, m)
                for p, imgs in prompts.items()]
        if self.real_images and model is None:
            rows.insert(0, ("real", "the real subject", self.real_images[:max_images]))
        if not rows:
            raise VitdreamError(f"no images for model {model!r}; models: {', '.join(self.images)}")
        side = max(im.width for _, _, imgs in rows for im in imgs) * scale
        label_w, gap = 280, 2
        cols = max(len(imgs) for _, _, imgs in rows)
        sheet = Image.new("RGB", (label_w + cols * (side + gap), len(rows) * (side + gap)), "white")
        draw, font = ImageDraw.Draw(sheet), ImageFont.load_default()
        for r, (m, p, imgs) in enumerate(rows):
            y = r * (side + gap)
            draw.text((4, y + side // 2 - 12), f"{m}", fill="black", font=font)
            draw.text((4, y + side // 2 + 2), f"{p}", fill="dimgray", font=font)
            for c, image in enumerate(imgs):
                sheet.paste(image.convert("RGB").resize((side, side), Image.Resampling.NEAREST),
                            (label_w + c * (side + gap), y))
        return sheet

    def __repr__(self) -> str:
        table = self.table
        text = repr(table) if isinstance(table, MetricsTable) else table.to_string(float_format=lambda v: f"{v:.3f}")
        s = self.settings
        return (f"DreamBooth evaluation ({s.get('num_images')} images per prompt, guidance {s.get('guidance_scale')}, "
                f"{s.get('steps')} steps, seed {s.get('seed')}; embeddings: {s.get('embedder')})\n{text}")

    def _repr_html_(self) -> str:
        import base64
        import html
        import io

        table = self.table
        table_html = table._repr_html_() if hasattr(table, "_repr_html_") else html.escape(repr(table))
        buf = io.BytesIO()
        self.plot().savefig(buf, format="png", dpi=80)
        plot = base64.b64encode(buf.getvalue()).decode()
        s = self.settings
        caption = (f"{s.get('num_images')} images per prompt, guidance {s.get('guidance_scale')}, {s.get('steps')} "
                   f"steps, seed {s.get('seed')}; embeddings: {html.escape(str(s.get('embedder')))}")
        return (f"<div><b>DreamBooth evaluation</b> <small>({caption})</small>{table_html}"
                f"<img src='data:image/png;base64,{plot}'/></div>")


# -- turning what the user has into a generator -------------------------------------------------------------
def _is_run(obj: Any) -> bool:
    return hasattr(obj, "config") and hasattr(obj, "load_checkpoint") and hasattr(getattr(obj, "config"), "instance_prompt")


def as_generator(source: Any) -> Any:
    """A generator (``generate(prompt, ...)``) for a DreamBooth run, a generator, a diffusers pipeline,
    a model directory / hub id, or None (the embedded mini SD)."""
    from vitdream import load_generator  # the root's lazy name: vitdream.generation imports this module

    if _is_run(source):
        if getattr(source, "running", False):
            raise VitdreamError("this DreamBooth run is still training: wait() for it (or stop() it) first")
        module = source.module if getattr(source, "module", None) is not None else source.load_checkpoint()
        module.eval()
        return load_generator(module.make_pipeline())
    if hasattr(source, "generate"):
        return source
    return load_generator(source)


def _model_name(source: Any) -> str:
    if source is None:
        return "base"
    if _is_run(source):
        return os.path.basename(str(source.config.output_dir).rstrip("/")) or "run"
    return os.path.basename(str(source).rstrip("/")) if isinstance(source, (str, os.PathLike)) else type(source).__name__


def _real_images(subject: Any) -> list[Any]:
    from vitdream.images import expand_sources, load_images

    if hasattr(subject, "images") and not isinstance(subject, (str, os.PathLike)):
        return list(subject.images)
    result = load_images(expand_sources(subject))
    images = [im for im in result.images if im is not None]
    if not images:
        raise VitdreamError(f"subject: no usable real images in {subject!r}")
    return images


# -- the evaluation -----------------------------------------------------------------------------------------
def default_evaluators(embedder: Any, classifier: Any = None, class_noun: str | None = None, *, layer: int = -1,
                       pool: str = "cls", isolate: bool = True) -> list[Any]:
    """``vit-embedding`` over ``embedder`` (subject fidelity, PRES, DIV) and ``shapes-world`` over ``classifier``
    (prompt fidelity; the shape is ``class_noun`` where a prompt names none)."""
    from vitdream.components import create

    return [create("evaluators", "vit-embedding", embedder=embedder, layer=layer, pool=pool, isolate=isolate),
            create("evaluators", "shapes-world", classifier=classifier, shape=class_noun)]


def headline_evaluator(evaluators: Sequence[Any], metric: str) -> tuple[Any, str] | tuple[None, None]:
    """The first evaluator that ``provides`` DreamBooth's ``metric`` and the name of its own metric for it."""
    for evaluator in evaluators:
        if metric in getattr(evaluator, "provides", {}):
            return evaluator, evaluator.provides[metric]
    return None, None


def evaluate_images(
    generated: Mapping[str, Sequence[Any]],
    class_images: Sequence[Any] | None,
    real_images: Sequence[Any],
    embedder: Any = None,
    *,
    classifier: Any = None,
    class_noun: str | None = None,
    layer: int = -1,
    pool: str = "cls",
    isolate: bool = True,
    evaluators: Sequence[Any] | None = None,
    class_prompt: str = "",
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """The four metrics of already generated images: ``generated`` maps each subject prompt to its images,
    ``class_images`` are the class-prompt generations. Returns ``(metrics, per-prompt rows)``.

    ``evaluators`` (:class:`~vitdream.base.Evaluator` objects) compute them: ``subject_fidelity`` and ``PRES``
    come from the first that provides subject fidelity (scored against ``real_images``), ``prompt_fidelity``
    from the first that provides prompt fidelity, ``DIV`` from the first with embeddings; every other metric
    of every evaluator is added as ``"<evaluator id>/<metric>"``. Default: :func:`default_evaluators` of
    ``embedder`` and ``classifier`` (``isolate``: paint plain backgrounds black before embedding, so the
    similarities measure the subject and not its context)."""
    if evaluators is None:
        evaluators = default_evaluators(embedder, classifier, class_noun, layer=layer, pool=pool, isolate=isolate)
    prompts = [p for p, images in generated.items() if images]
    if not prompts:
        raise VitdreamError("evaluate: no generated subject images")
    images = [im for p in prompts for im in generated[p]]
    owner = [p for p in prompts for _ in generated[p]]
    per_image: dict[str, np.ndarray] = {}
    fidelity, fidelity_metric = headline_evaluator(evaluators, "subject_fidelity")
    judge, judge_metric = headline_evaluator(evaluators, "prompt_fidelity")
    for evaluator in evaluators:
        needs = getattr(evaluator, "uses", frozenset())
        scores = evaluator.score(images, prompts=owner, references=real_images if "references" in needs or evaluator is fidelity else None)
        if scores.failures:
            raise VitdreamError(f"evaluator {evaluator.id!r}: generated image {scores.failures[0].index} did not load")
        for metric, values in scores.values.items():
            name = ("subject_fidelity" if evaluator is fidelity and metric == fidelity_metric else
                    "prompt_fidelity" if evaluator is judge and metric == judge_metric else f"{evaluator.id}/{metric}")
            per_image.setdefault(name, values)
    embedding = next((e for e in evaluators if e.has_embeddings), None)
    vectors = embedding.embed(images) if embedding is not None else None
    rows, divs = [], []
    owner_array = np.array(owner, dtype=object)
    for prompt in prompts:
        mask = owner_array == prompt
        row: dict[str, Any] = {"prompt": prompt}
        for name, values in per_image.items():
            picked = values[mask]
            row[name.removeprefix("shapes-world/")] = float(np.nanmean(picked)) if np.isfinite(picked).any() else float("nan")
        row["DIV"] = diversity(vectors[mask]) if vectors is not None and mask.sum() > 1 else float("nan")
        if not math.isnan(row["DIV"]):
            divs.append(row["DIV"])
        rows.append({k: v for k, v in row.items() if not (isinstance(v, float) and math.isnan(v) and k.endswith("_ok"))})
    metrics = {
        "subject_fidelity": float(np.mean(per_image["subject_fidelity"])) if "subject_fidelity" in per_image else float("nan"),
        "prompt_fidelity": float(np.mean(per_image["prompt_fidelity"])) if "prompt_fidelity" in per_image else float("nan"),
        "PRES": float("nan"),
        "DIV": float(np.mean(divs)) if divs else float("nan"),
    }
    metrics.update({name: float(np.nanmean(v)) for name, v in per_image.items() if name not in metrics and np.isfinite(v).any()})
    if class_images:
        row = {"prompt": "(class) PRES"}
        if fidelity is not None:
            metrics["PRES"] = fidelity.score(list(class_images), prompts=[class_prompt] * len(class_images),
                                             references=real_images).mean(fidelity_metric)
            row["PRES"] = metrics["PRES"]
        row["DIV"] = diversity(embedding.embed(list(class_images))) if embedding is not None and len(class_images) > 1 else float("nan")
        if judge is not None:
            checked = judge.score(list(class_images), prompts=[class_prompt] * len(class_images))
            if np.isfinite(checked.values.get("shape_ok", np.zeros(0))).any():
                row["shape_ok"] = float(np.nanmean(checked["shape_ok"]))
        rows.append(row)
    return metrics, rows


def evaluate_dreambooth(
    run_or_model: Any = None,
    *,
    subject: Any = None,
    instance_prompt: str | None = None,
    class_prompt: str | None = None,
    class_noun: str | None = None,
    contexts: Sequence[str] | None = None,
    prompts: Sequence[str] | None = None,
    num_images: int = 8,
    guidance_scale: float = 7.5,
    steps: int = 20,
    sampler: str = "ddim",
    seed: int = 0,
    embedder: Any = None,
    classifier: Any = None,
    layer: int = -1,
    pool: str = "cls",
    isolate: bool = True,
    reference: bool = True,
    progress: bool = True,
    evaluators: Sequence[Any] | None = None,
) -> DreamBoothEvaluation:
    """Evaluate DreamBooth models as the DreamBooth paper does (see the module docstring for the metrics).

    ``run_or_model``: a DreamBooth run (``vd.dreambooth(...)``, trained), a generator, a diffusers pipeline,
    an exported model directory, None (the embedded base model) -- or a dict ``{name: any of those}`` to
    compare several on the same prompts and seeds (one table row each).

    ``subject``: the real subject images -- a :class:`~vitdream.datasets.subject.Subject`, a folder, glob or
    list (default: the run's ``instance_images``, else the demo subject). ``instance_prompt`` /
    ``class_prompt`` default to the run's (else the subject's). The subject prompts are
    ``instance_prompt`` alone and ``"{instance_prompt} on a {c} background"`` for each of ``contexts``
    (default: blue, white -- backgrounds the demo subject was never shown on); ``prompts`` replaces them.
    Each prompt gets ``num_images`` images, seeds ``seed .. seed + num_images - 1``, identical across models.

    ``embedder`` (default: the embedded mini ViT) gives the embeddings (``layer``, ``pool``); ``classifier``
    (default: the embedder when it classifies) checks the class noun's shape. ``isolate`` (default) paints
    plain backgrounds black before embedding, so similarities compare subjects, not contexts. ``reference=True`` adds a
    "real images" row when the subject can render held-out pictures (the demo subject does): what a
    perfect model would score.

    ``evaluators``: registered evaluator ids, ``{"id": ..., **options}`` mappings or
    :class:`~vitdream.base.Evaluator` objects that compute the metrics (see :func:`evaluate_images`), e.g.
    ``[{"id": "vit-embedding", "model": "facebook/dino-vits16"}, {"id": "clip"}]`` for the paper's DINO,
    CLIP-I and CLIP-T; default: ``vit-embedding`` over ``embedder`` and ``shapes-world`` over ``classifier``.
    """
    from tqdm.auto import tqdm

    if not isinstance(num_images, int) or num_images < 1:
        raise VitdreamError(f"num_images: expected a positive integer, got {num_images!r}")
    sources = dict(run_or_model) if isinstance(run_or_model, Mapping) else {_model_name(run_or_model): run_or_model}
    if not sources:
        raise VitdreamError("evaluate_dreambooth: no models given")
    first_run = next((s for s in sources.values() if _is_run(s)), None)
    if subject is None:
        if first_run is not None:
            subject = first_run.config.instance_data_dir
        else:
            from vitdream.datasets.subject import dreambooth_subject

            subject = dreambooth_subject()
    real_images = _real_images(subject)
    instance_prompt = (instance_prompt or (first_run.config.instance_prompt if first_run else None)
                       or getattr(subject, "instance_prompt", None))
    class_prompt = class_prompt or (first_run.config.class_prompt if first_run else None) or getattr(subject, "class_prompt", None)
    if not instance_prompt:
        raise VitdreamError("instance_prompt: give the prompt that names the subject (e.g. 'a photo of sks star')")
    class_noun = class_noun or getattr(subject, "class_noun", None) or (instance_prompt.split()[-1] if instance_prompt else None)
    if prompts is None:
        contexts = tuple(DEFAULT_CONTEXTS if contexts is None else contexts)
        prompts = [instance_prompt] + [f"{instance_prompt} on a {c} background" for c in contexts]
    prompts = list(prompts)
    if evaluators is None:
        if embedder is None:
            from vitdream.vision import load_embedder

            embedder = load_embedder()
        if classifier is None and hasattr(embedder, "classify"):
            classifier = embedder
        evaluators = default_evaluators(embedder, classifier, class_noun, layer=layer, pool=pool, isolate=isolate)
    else:
        from vitdream.components import load_evaluators

        evaluators = load_evaluators(evaluators)

    settings = {"num_images": num_images, "guidance_scale": guidance_scale, "steps": steps, "sampler": sampler,
                "seed": seed, "layer": layer, "pool": pool, "isolate": isolate, "prompts": prompts, "class_prompt": class_prompt,
                "embedder": getattr(getattr(embedder, "options", None), "model", None) or "vitdream:mini-vit",
                "evaluators": [e.id for e in evaluators]}
    metrics: dict[str, dict[str, float]] = {}
    per_prompt: list[dict[str, Any]] = []
    images: dict[str, dict[str, list[Any]]] = {}
    work = [(name, p) for name in sources for p in prompts + ([class_prompt] if class_prompt else [])]
    bar = tqdm(total=len(work), desc="evaluate_dreambooth", disable=not progress)
    for name, source in sources.items():
        generator = as_generator(source)
        made: dict[str, list[Any]] = {}
        for prompt in prompts + ([class_prompt] if class_prompt else []):
            made[prompt] = list(generator.generate(prompt, guidance_scale=guidance_scale, steps=steps, seed=seed,
                                                   sampler=sampler, num_images=num_images))
            bar.update(1)
        class_images = made.get(class_prompt) if class_prompt else None
        values, rows = evaluate_images({p: made[p] for p in prompts}, class_images, real_images,
                                       evaluators=evaluators, class_prompt=class_prompt or "")
        metrics[name] = values
        per_prompt.extend({"model": name, **row} for row in rows)
        images[name] = made
    bar.close()
    if reference and hasattr(subject, "more"):
        contexts_of = [background_in_prompt(p) for p in prompts]
        held_out = {p: subject.more(num_images, seed=seed + 1000 + i, backgrounds=[c] if c else None)
                    for i, (p, c) in enumerate(zip(prompts, contexts_of))}
        values, rows = evaluate_images(held_out, None, real_images, evaluators=evaluators)
        metrics = {"real images": values, **metrics}
        per_prompt = [{"model": "real images", **row} for row in rows] + per_prompt
    return DreamBoothEvaluation(metrics, per_prompt, images, settings, real_images)
