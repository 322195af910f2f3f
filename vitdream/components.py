"""Look up and build registered components by kind, id or task."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from vitdream.errors import UnknownIdError, VitdreamError
from vitdream.plugins import get_registry
from vitdream.registry import Entry

if TYPE_CHECKING:  # pragma: no cover
    from vitdream.base import Evaluator, Trainer


def get_entry(kind: str, id: str) -> Entry:
    """The registry entry of ``id``; an unknown id raises an error listing the known ones."""
    return get_registry().get(kind, id)


def create(kind: str, id: str, *args: Any, **options: Any) -> Any:
    """Instantiate component ``id`` of ``kind`` with ``options``."""
    return get_entry(kind, id).create(*args, **options)


def create_run(trainer: str, *args: Any, **options: Any) -> "Trainer":
    """An unstarted run of the registered ``trainer`` (``"dreambooth"``, ``"vit-finetune"``, a plugin's...):
    ``fit()`` blocks, ``start()`` trains in the background, ``vd.widgets.train(run)`` watches it."""
    return create("trainers", trainer, *args, **options)


def backends_for(task: str) -> list[Entry]:
    """Backends whose ``tasks`` metadata includes ``task``, most recently registered first.

    Third-party plugins load after the built-ins, so they get the first chance to claim a model.
    """
    return [e for e in reversed(get_registry().entries("backends")) if task in e.meta.get("tasks", ())]


def resolve_backend(task: str, model: str | None, backend: str | None = None) -> Entry:
    """The backend to use for ``task``: the one named, or the first whose ``accepts(model)`` is true."""
    if backend is not None:
        entry = get_entry("backends", backend)
        if task not in entry.meta.get("tasks", ()):
            raise VitdreamError(f"backend {backend!r} cannot {task} (its tasks: {entry.meta.get('tasks')})")
        return entry
    candidates = backends_for(task)
    if not candidates:
        raise UnknownIdError("backends", f"<any that can {task}>", get_registry().ids("backends"))
    for entry in candidates:
        accepts = getattr(entry.load(), "accepts", None)
        if accepts is None or accepts(model):
            return entry
    raise VitdreamError(
        f"no backend accepts model {model!r} for {task}; tried {', '.join(e.id for e in candidates)}"
    )


def load_evaluator(spec: Any, **options: Any) -> "Evaluator":
    """An :class:`~vitdream.base.Evaluator`: one given as is, a registered id (``"clip"``), or
    ``{"id": "clip", **options}``; ``options`` go to its constructor."""
    from vitdream.base import Evaluator

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


def load_evaluators(specs: Any) -> list["Evaluator"]:
    """:func:`load_evaluator` of each of ``specs`` (one spec alone is a list of one)."""
    if isinstance(specs, (str, dict)) or not isinstance(specs, Sequence):
        specs = [specs]
    return [load_evaluator(spec) for spec in specs]
