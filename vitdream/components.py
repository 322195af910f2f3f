"""Look up and build registered components by kind, id or task."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vitdream.errors import UnknownIdError, VitdreamError
from vitdream.plugins import get_registry
from vitdream.registry import Entry

if TYPE_CHECKING:  # pragma: no cover
    from vitdream.base import Trainer


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
