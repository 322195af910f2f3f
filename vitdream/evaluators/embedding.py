"""``vit-embedding``: subject fidelity in the embedding space of any ViT (``vd.load_embedder``)."""

from __future__ import annotations

from functools import cached_property
from typing import Any, ClassVar, Literal, Optional

import numpy as np

from vitdream.base import Evaluator, Options
from vitdream.evaluation import cosine_matrix, isolate_subject


class VitEmbeddingOptions(Options):
    model: Optional[str] = None  # vd.load_embedder(model): None = the embedded mini ViT, "facebook/dino-vits16" ...
    embedder: Any = None  # an embedder already loaded (anything with embed(images, layer=, pool=)); wins over model
    layer: int = -1
    pool: Literal["cls", "mean"] = "cls"
    isolate: bool = False  # paint plain backgrounds black first (shapes world: compare subjects, not contexts)


class VitEmbeddingEvaluator(Evaluator):
    """Subject fidelity: mean cosine similarity of each image's ViT embedding to every reference image's."""

    id: ClassVar[str] = "vit-embedding"
    Options: ClassVar[type[Options]] = VitEmbeddingOptions
    metrics: ClassVar[tuple[str, ...]] = ("subject_fidelity",)
    uses: ClassVar[frozenset[str]] = frozenset({"references"})
    provides: ClassVar[dict[str, str]] = {"subject_fidelity": "subject_fidelity"}

    @cached_property
    def embedder(self) -> Any:
        """The given embedder, else one loaded once per evaluator (the options are not changed)."""
        if self.options.embedder is not None:
            return self.options.embedder
        from vitdream.vision import load_embedder

        return load_embedder(self.options.model, progress=False)

    def _embed(self, images: list[Any]) -> np.ndarray:
        if self.options.isolate:
            images = [isolate_subject(im) for im in images]
        return np.asarray(self.embedder.embed(images, layer=self.options.layer, pool=self.options.pool), dtype=np.float64)

    def _score(self, images: list[Any], prompts: list[str] | None, references: list[Any] | None) -> dict[str, Any]:
        return {"subject_fidelity": cosine_matrix(self._embed(images), self._embed(references)).mean(axis=1)}
