"""Base class of evaluators: score images against reference images and/or prompts.

An evaluator implements :meth:`Evaluator._score` (decoded images, their prompts, the reference
images -> one value per image for each metric it names in ``metrics``) and, when it has an
embedding space, :meth:`Evaluator._embed`. The base does the rest, the same for every evaluator:

- ``score(images, prompts=None, references=None)``: a batch in (a list, folder, glob ...; one image is a
  batch of one), a :class:`Scores` out; inputs that do not load are listed in its ``failures`` and
  never stop the batch; a prompt per image; ``uses`` says which of ``prompts``/``references`` it needs
  and a missing one is a clear error;
- ``embed(images)``: ``(n, dim)`` float rows (what DreamBooth's diversity, drift and copy checks compare),
  or None for an evaluator without embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

import numpy as np

from vitdream.base import batching
from vitdream.base.options import Component
from vitdream.errors import VitdreamError
from vitdream.images import BadImage, load_images


@dataclass
class Scores:
    """What :meth:`Evaluator.score` returns: ``values[metric]`` is a float array with a value per image that
    loaded (``indices[r]``: the input position of row ``r``); ``failures`` the inputs that did not load."""

    evaluator: str
    values: dict[str, np.ndarray]
    indices: np.ndarray
    failures: list[BadImage] = field(default_factory=list)

    def __getitem__(self, metric: str) -> np.ndarray:
        if metric not in self.values:
            raise KeyError(f"{metric!r}: evaluator {self.evaluator!r} gives {', '.join(self.values)}")
        return self.values[metric]

    def mean(self, metric: str) -> float:
        """The mean of ``metric`` over the images (NaN when none loaded)."""
        values = self[metric]
        return float(np.mean(values)) if len(values) else float("nan")

    @property
    def summary(self) -> dict[str, float]:
        """``{metric: mean}``."""
        return {metric: self.mean(metric) for metric in self.values}


class Evaluator(Component):
    """Scores images against references and/or prompts. Implement :meth:`_score`; see the module docstring."""

    #: the metrics :meth:`_score` returns, higher is better unless listed in ``lower_is_better``
    metrics: ClassVar[tuple[str, ...]] = ()
    lower_is_better: ClassVar[frozenset[str]] = frozenset()
    #: what :meth:`score` needs besides the images: "prompts", "references" or both
    uses: ClassVar[frozenset[str]] = frozenset()
    #: which DreamBooth metric each of its metrics stands for: "subject_fidelity" and/or "prompt_fidelity"
    provides: ClassVar[dict[str, str]] = {}

    def _score(self, images: list[Any], prompts: list[str] | None, references: list[Any] | None) -> dict[str, Any]:
        """``{metric: (len(images),) values}`` for decoded PIL ``images`` (and their ``prompts``)."""
        raise NotImplementedError(f"evaluator {self.id or type(self).__name__!r}: implement _score (see vitdream.base.evaluator)")

    def _embed(self, images: list[Any]) -> np.ndarray | None:
        """``(len(images), dim)`` embeddings of decoded images; None: this evaluator has no embedding space."""
        return None

    # -- what callers use ------------------------------------------------------------------------------
    @property
    def has_embeddings(self) -> bool:
        """Whether :meth:`embed` gives vectors (the class implements :meth:`_embed`)."""
        return type(self)._embed is not Evaluator._embed

    def score(self, images: Any, prompts: Sequence[str] | str | None = None, references: Any = None) -> Scores:
        """Per-image values of every metric of this evaluator (see the module docstring)."""
        name = self.id or type(self).__name__
        sources = [images] if batching.is_single(images) else batching.as_sources(images)
        if isinstance(prompts, str):
            prompts = [prompts] * len(sources)
        if "prompts" in self.uses and prompts is None:
            raise VitdreamError(f"evaluator {name!r} scores images against their prompts: pass prompts=")
        if prompts is not None and len(prompts) != len(sources):
            raise VitdreamError(f"evaluator {name!r}: {len(sources)} images but {len(prompts)} prompts")
        refs = None
        if references is not None:
            refs = [im for im in load_images(batching.as_sources(references)).images if im is not None]
            if not refs:
                raise VitdreamError(f"evaluator {name!r}: none of the reference images loaded")
        if "references" in self.uses and refs is None:
            raise VitdreamError(f"evaluator {name!r} compares images with reference images: pass references=")
        loaded = load_images(sources)
        ok = [i for i, im in enumerate(loaded.images) if im is not None]
        values: dict[str, np.ndarray] = {m: np.zeros(0) for m in self.metrics}
        if ok:
            raw = self._score([loaded.images[i] for i in ok], None if prompts is None else [prompts[i] for i in ok], refs)
            values = {m: np.asarray(v, dtype=np.float64).reshape(-1) for m, v in raw.items()}
            wrong = {m: v.shape[0] for m, v in values.items() if v.shape[0] != len(ok)}
            if wrong or set(values) != set(self.metrics):
                raise VitdreamError(f"evaluator {name!r}: _score must return one value per image for each of "
                                    f"{self.metrics} (got {sorted(values)}, lengths {wrong or 'ok'})")
        return Scores(name, values, np.asarray(ok, dtype=np.int64), list(loaded.failures))

    def embed(self, images: Any) -> np.ndarray | None:
        """float ``(n, dim)`` embeddings of ``images`` (all must load), or None without an embedding space."""
        loaded = load_images([images] if batching.is_single(images) else batching.as_sources(images))
        if loaded.failures:
            bad = loaded.failures[0]
            raise VitdreamError(f"evaluator {self.id!r}: image {bad.source} did not load ({bad.reason})")
        vectors = self._embed(list(loaded.images))
        return None if vectors is None else np.asarray(vectors, dtype=np.float64)
