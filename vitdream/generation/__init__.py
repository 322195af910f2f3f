"""Text-to-image generation: the diffusers Stable Diffusion backend, samplers and classifier-free guidance."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from vitdream.base import Generator


def load_generator(model: Any = None, *, backend: str | None = None, **options: Any) -> "Generator":
    """A :class:`vitdream.base.Generator` for ``model`` (None: the embedded mini SD).

    ``model`` may be a local diffusers directory (e.g. a DreamBooth export), a hub id, or an
    already-built diffusers pipeline. ``options`` go to the backend (``device``, ``dtype``,
    ``lora``, ``allow_pickle``...). ``backend`` picks a registered backend by id.
    """
    import os

    from vitdream.components import resolve_backend

    ref = os.fspath(model) if isinstance(model, (str, os.PathLike)) else None
    entry = resolve_backend("generate", ref, backend)
    return entry.create(model=model, **options)


def list_samplers() -> list[dict[str, Any]]:
    """Every registered sampler: id, plugin, description, deterministic (for a seed), stochastic."""
    from vitdream.plugins import get_registry

    rows = []
    for entry in get_registry().entries("samplers"):
        info = entry.info()
        info.setdefault("deterministic", bool(getattr(entry.load(), "deterministic", True)))
        info.setdefault("stochastic", bool(getattr(entry.load(), "stochastic", False)))
        rows.append(info)
    return rows


def __getattr__(name: str) -> Any:
    if name == "load_pipeline":
        from vitdream.generation.loading import load_pipeline

        return load_pipeline
    raise AttributeError(f"module 'vitdream.generation' has no attribute {name!r}")
