"""Base classes of image classification and embedding backends.

The base class holds the contract; a backend implements one small method (a backend that overrides
``classify``/``embed`` itself still works, but then owns the contract below):

- :class:`Classifier`: ``labels`` and ``_scores(prepared) -> (n, num_labels)`` float array;
- :class:`Embedder`: ``_embed(prepared, layer, pool) -> (n, dim)`` float array.

Both may override ``_prepare(image)`` (PIL image -> what ``_scores``/``_embed`` take; it runs in the
decode threads, default: the image itself). The base does everything else, the same for every backend:

- one image (a path to a file, bytes, a PIL image, an HxW[xC] array) -> one result, and bad input
  raises :class:`~vitdream.errors.ImageLoadError` naming it;
- a batch (a list, tuple, folder, glob, (n, H, W, C) array or other iterable) -> a result per input
  that carries ``failures`` (:class:`~vitdream.base.results.Classifications` /
  :class:`~vitdream.base.results.Embeddings`); bad inputs never stop the batch;
- decoding in threads, batches of ``options.batch_size`` (default 16), ``options.workers`` threads,
  a progress bar from 64 inputs (``progress=`` per call, else ``options.progress``).
"""

from __future__ import annotations

from typing import Any, ClassVar, Optional

import numpy as np
from pydantic import Field

from vitdream.base import batching
from vitdream.base.options import Component, Options
from vitdream.base.results import Classifications, Embeddings, Prediction, top_k
from vitdream.errors import VitdreamError
from vitdream.images import BadImage, load_image

DEFAULT_BATCH_SIZE = 16
POOLS = ("cls", "mean")


class ImageBackendOptions(Options):
    """Options every image backend has (subclass it for more): ``vd.load_classifier(model)`` passes
    ``model``; the batched input path reads the other three."""

    model: Optional[str] = None  # hub id, local directory, plugin-defined name, or None for the default
    batch_size: int = Field(DEFAULT_BATCH_SIZE, ge=1)
    workers: Optional[int] = Field(None, ge=1)  # decode/preprocess threads (default: min(4, CPUs))
    progress: Optional[bool] = None  # None: a progress bar from 64 images on


class ImageBackend(Component):
    """What classifiers and embedders share: model-reference matching and the batched input path."""

    Options: ClassVar[type[Options]] = ImageBackendOptions

    @classmethod
    def accepts(cls, model: str | None) -> bool:
        """Whether this backend can load ``model`` (a hub id, directory or None = default)."""
        return True

    def _prepare(self, image: Any) -> Any:
        """One decoded PIL image -> one item of what the model step takes (runs in decode threads)."""
        return image

    def _missing(self, name: str) -> NotImplementedError:
        return NotImplementedError(f"{self.id or type(self).__name__}: implement {name} (see vitdream.base.vision)")

    def _prepared_one(self, image: Any) -> list[Any]:
        return [self._prepare(load_image(image))]

    def _batches(self, sources: list[Any], failures: list[BadImage], desc: str, progress: bool | None = None):
        """Prepared batches of ``sources`` in input order; bad ones land in ``failures``."""
        options = self.options  # an ImageBackendOptions, or options of a backend that predates it
        return batching.iter_batches(
            sources, self._prepare, getattr(options, "batch_size", DEFAULT_BATCH_SIZE), failures,
            workers=getattr(options, "workers", None),
            progress=getattr(options, "progress", None) if progress is None else progress, desc=desc,
        )


class Classifier(ImageBackend):
    """An image classifier. Implement :attr:`labels` and :meth:`_scores`; see the module docstring."""

    tasks: ClassVar[frozenset[str]] = frozenset({"classify"})

    @property
    def labels(self) -> list[str]:
        """Class names, in score-column order (an AttributeError until a backend defines them)."""
        raise AttributeError(f"{self.id or type(self).__name__}: implement labels (see vitdream.base.vision)")

    def _scores(self, prepared: list[Any]) -> np.ndarray:
        """Class scores ``(len(prepared), len(labels))`` of a batch of prepared images."""
        raise self._missing("_scores")

    def classify(self, images: Any, top_k: int = 5, *, progress: bool | None = None) -> list[Prediction] | Classifications:
        """Top-``top_k`` predictions, best first. One image -> ``list[Prediction]``; a batch ->
        :class:`~vitdream.base.results.Classifications` (``None`` for each input in ``failures``)."""
        if top_k < 1:
            raise VitdreamError(f"top_k must be at least 1 (got {top_k})")
        if batching.is_single(images):
            return self._top_k(self._scores(self._prepared_one(images)), top_k)[0]
        sources = batching.as_sources(images)
        out = [None] * len(sources)
        failures: list[BadImage] = []
        for batch in self._batches(sources, failures, "classify", progress):
            for i, predictions in zip(batch.indices, self._top_k(self._scores(batch.arrays), top_k)):
                out[i] = predictions
        return Classifications(out, sorted(failures, key=lambda f: f.index))

    def _top_k(self, scores: np.ndarray, k: int) -> list[list[Prediction]]:
        labels = self.labels
        return [top_k(row, labels, k) for row in np.asarray(scores)]

    def attention_map(self, image: Any) -> np.ndarray | None:
        """A (grid, grid) map in [0, 1] of where the model looks in ``image``; None if the backend has none."""
        return None

    def model_view(self, image: Any) -> Any:
        """The image as the model sees it (what :meth:`attention_map` is laid over); default: as loaded."""
        return np.asarray(load_image(image))


class Embedder(ImageBackend):
    """An image embedder. Implement :meth:`_embed`; see the module docstring."""

    tasks: ClassVar[frozenset[str]] = frozenset({"embed"})
    _embed_settings: dict[str, Any] = {"layer": -1, "pool": "cls", "normalize": False}

    def _embed(self, prepared: list[Any], layer: int, pool: str) -> np.ndarray:
        """float ``(len(prepared), dim)`` vectors of a batch of prepared images."""
        raise self._missing("_embed")

    @property
    def embedding_dim(self) -> int | None:
        """The vectors' dimension, when known before embedding anything."""
        return None

    def embed(
        self, images: Any, layer: int = -1, pool: str = "cls", normalize: bool = False, *, progress: bool | None = None
    ) -> Embeddings:
        """float32 :class:`~vitdream.base.results.Embeddings` ``(n_ok, dim)``, a row per input that loaded.

        ``layer``: -1 = the model's final output, else a backend-defined layer index; ``pool``: "cls"
        or "mean"; ``normalize``: L2-normalised rows. One image gives a ``(1, dim)`` array and raises
        on bad input.
        """
        if pool not in POOLS:
            raise VitdreamError(f"pool must be 'cls' or 'mean' (got {pool!r})")
        self._check_layer(layer)
        self._embed_settings = {"layer": layer, "pool": pool, "normalize": bool(normalize)}
        if batching.is_single(images):
            return Embeddings.wrap(self._vectors(self._prepared_one(images), layer, pool, normalize), [0], [])
        sources = batching.as_sources(images)
        rows, indices, failures = [], [], []
        for batch in self._batches(sources, failures, "embed", progress):
            rows.append(self._vectors(batch.arrays, layer, pool, normalize))
            indices.extend(batch.indices)
        array = np.concatenate(rows) if rows else np.zeros((0, self.embedding_dim or 0), np.float32)
        return Embeddings.wrap(array, indices, sorted(failures, key=lambda f: f.index))

    def _check_layer(self, layer: int) -> None:
        """Raise :class:`~vitdream.errors.VitdreamError` for a layer this backend does not have."""
        if layer != -1:
            raise VitdreamError(f"{self.id or type(self).__name__}: only layer=-1 (the final output) is available (got {layer!r})")

    def _vectors(self, prepared: list[Any], layer: int, pool: str, normalize: bool) -> np.ndarray:
        vectors = np.asarray(self._embed(prepared, layer, pool), dtype=np.float32)
        if normalize:
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)
        return vectors

    def describe(self, **settings: Any) -> dict[str, Any]:
        """What identifies the embedding space (stored in index manifests; a loaded index reloads its
        embedder with ``vd.load_embedder(model, backend=backend)``): ``backend``, ``model``, ``layer``,
        ``pool``, ``normalize`` (default: those of the last :meth:`embed` call; override with
        ``settings``), ``dim`` when known, plus :meth:`_identity`."""
        info: dict[str, Any] = {"backend": self.id, "model": getattr(self.options, "model", None), **self._identity(),
                                **self._embed_settings, **settings}
        if self.embedding_dim is not None:
            info.setdefault("dim", self.embedding_dim)
        return info

    def _identity(self) -> dict[str, Any]:
        """Backend facts that tell embedding spaces apart: model reference, weights fingerprint..."""
        return {}
