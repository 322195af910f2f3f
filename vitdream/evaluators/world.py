"""``shapes-world``: attribute correctness in the embedded shapes world (prompt fidelity)."""

from __future__ import annotations

from functools import cached_property
from typing import Any, ClassVar, Optional

import numpy as np

from vitdream.base import Evaluator, Options
from vitdream.evaluation import world_checks

ATTRIBUTES = ("shape", "colour", "colour2", "pattern", "background")


class ShapesWorldOptions(Options):
    classifier: Any = None  # reads the shape (top-1 label); default: the embedded mini ViT
    model: Optional[str] = None  # or a classifier to load with vd.load_classifier(model)
    shape: Optional[str] = None  # the shape to check where a prompt names none (the class noun, e.g. "star")


class ShapesWorldEvaluator(Evaluator):
    """Prompt fidelity in the shapes world: the image shows every attribute its prompt names."""

    id: ClassVar[str] = "shapes-world"
    Options: ClassVar[type[Options]] = ShapesWorldOptions
    metrics: ClassVar[tuple[str, ...]] = ("prompt_fidelity", *(f"{a}_ok" for a in ATTRIBUTES))
    uses: ClassVar[frozenset[str]] = frozenset({"prompts"})
    provides: ClassVar[dict[str, str]] = {"prompt_fidelity": "prompt_fidelity"}

    @cached_property
    def classifier(self) -> Any:
        """The given classifier, else one loaded once per evaluator (the options are not changed)."""
        if self.options.classifier is not None:
            return self.options.classifier
        from vitdream.vision import load_classifier

        return load_classifier(self.options.model, progress=False)

    def _score(self, images: list[Any], prompts: list[str] | None, references: list[Any] | None) -> dict[str, Any]:
        from vitdream.datasets.reading import parse_caption

        prompts = list(prompts or [])
        if self.options.shape:  # a prompt without a shape of its own asks for the class noun's
            prompts = [p if "shape" in parse_caption(p) else f"{self.options.shape} {p}" for p in prompts]
        needs_shape = any("shape" in parse_caption(p) for p in prompts)
        rows = world_checks(images, prompts, self.classifier if needs_shape else None)
        out = {"prompt_fidelity": np.array([row["all"] for row in rows], dtype=np.float64)}
        for attribute in ATTRIBUTES:  # NaN where the prompt does not name the attribute
            out[f"{attribute}_ok"] = np.array([float(row[attribute]) if attribute in row else np.nan for row in rows])
        return out
