"""Vision: classify images and embed them with ViT-family models (the ``transformers-vit`` backend).

``load_classifier`` / ``load_embedder`` pick the backend through the plugin registry, so a third-party
backend that accepts the model reference is used the same way. ``finetune`` trains a new head (and
optionally the last encoder layers) on ``folder/<class>/*.jpg``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from vitdream.base import Classifier, Embedder
    from vitdream.vision.finetuning import FinetuneResult

__all__ = ["load_classifier", "load_embedder", "finetune"]


def _load(task: str, model: Any, backend: str | None, options: dict[str, Any]) -> Any:
    from vitdream.components import resolve_backend

    ref = os.fspath(model) if isinstance(model, os.PathLike) else model
    return resolve_backend(task, ref, backend).create(model=ref, **options)


def load_classifier(model: str | os.PathLike | None = None, *, backend: str | None = None, **options: Any) -> "Classifier":
    """A classifier for ``model`` (hub id, local directory, or None = the embedded mini ViT).

    Options of the built-in backend: ``device``, ``dtype``, ``allow_pickle``, ``revision``,
    ``batch_size``, ``workers``, ``progress`` (see ``vitdream.vision.backend.ViTOptions``).
    """
    return _load("classify", model, backend, options)


def load_embedder(model: str | os.PathLike | None = None, *, backend: str | None = None, **options: Any) -> "Embedder":
    """An embedder for ``model``; ``embed(images, layer=-1, pool="cls", normalize=False)``."""
    return _load("embed", model, backend, options)


def finetune(data: str | os.PathLike, model: str | os.PathLike | None = None, **options: Any) -> "FinetuneResult":
    """Fine-tune a ViT on ``data/<class>/*`` and block (see :func:`vitdream.vision.finetuning.finetune`;
    ``vd.finetune`` is :func:`vitdream.notebook.finetune`, which can also show the live dashboard)."""
    from vitdream.vision.finetuning import finetune as _finetune

    return _finetune(data, model, **options)
