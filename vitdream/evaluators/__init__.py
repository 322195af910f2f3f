"""Built-in evaluators (the ``register_evaluators`` plugin kind) and how a name becomes one.

- ``vit-embedding``: subject fidelity, the mean cosine similarity of each image's embedding to the reference
  images' (any ViT through ``vd.load_embedder``: the embedded mini ViT, ``facebook/dino-vits16`` for the
  DreamBooth paper's DINO score);
- ``clip``: CLIP-I (image-image) and CLIP-T (image-prompt) cosine similarities with any CLIP checkpoint;
- ``shapes-world``: whether each image shows what its shapes-world prompt names (prompt fidelity).
"""

from __future__ import annotations

from typing import Any, Sequence

from vitdream.errors import VitdreamError

__all__ = ["load_evaluator", "load_evaluators"]


def load_evaluator(spec: Any, **options: Any) -> Any:
    """An :class:`~vitdream.base.Evaluator`: one given as is, a registered id (``"clip"``), or
    ``{"id": "clip", **options}``; ``options`` go to its constructor."""
    from vitdream.base import Evaluator
    from vitdream.components import create

    if isinstance(spec, Evaluator):
        return spec
    if isinstance(spec, dict):
        spec = dict(spec)
        name = spec.pop("id", None)
        if not isinstance(name, str):
            raise VitdreamError(f"evaluator {spec!r}: a mapping needs an 'id' naming a registered evaluator")
        return create("evaluators", name, **spec, **options)
    if isinstance(spec, str):
        return create("evaluators", spec, **options)
    raise VitdreamError(f"evaluator: expected an id, a {{'id': ...}} mapping or an Evaluator, got {spec!r}")


def load_evaluators(specs: Sequence[Any] | Any) -> list[Any]:
    """:func:`load_evaluator` of each of ``specs`` (one spec alone is a list of one)."""
    if isinstance(specs, (str, dict)) or not isinstance(specs, Sequence):
        specs = [specs]
    return [load_evaluator(spec) for spec in specs]
