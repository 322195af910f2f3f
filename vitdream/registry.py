"""Typed registrars handed to the ``register_*`` hooks, and the registry they fill.

A plugin registers a class, a factory, or a lazy ``"module:attribute"`` string. Nothing is
instantiated (and nothing heavy imported) until :meth:`Entry.load` is called.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Iterator

from vitdream.errors import DuplicateIdError, UnknownIdError, VitdreamError, singular

KINDS: tuple[str, ...] = ("backends", "trainers", "samplers", "indexes", "evaluators")


@dataclass
class Entry:
    """One registered component: its id, where it comes from and how to build it."""

    kind: str
    id: str
    target: Any  # a class, a factory callable, or "module:attribute"
    plugin: str
    description: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    _loaded: Any = field(default=None, repr=False)

    def load(self) -> Any:
        """Return the class or factory, importing it on first use."""
        if self._loaded is None:
            if isinstance(self.target, str):
                module, _, attr = self.target.partition(":")
                if not attr:
                    raise VitdreamError(
                        f"{singular(self.kind)} {self.id!r} of plugin {self.plugin!r}: target "
                        f"{self.target!r} must look like 'package.module:Attribute'"
                    )
                obj: Any = importlib.import_module(module)
                for part in attr.split("."):
                    obj = getattr(obj, part)
                self._check_declared(obj)
                self._loaded = obj
            else:
                self._loaded = self.target
        return self._loaded

    def _check_declared(self, target: Any) -> None:
        """A lazy target's metadata is stated at registration (so listing plugins imports nothing); a
        class that also declares ``id`` or ``tasks`` must agree, so the two can never drift apart."""
        declared = {"id": getattr(target, "id", None) or None, "tasks": getattr(target, "tasks", None)}
        registered = {"id": self.id, "tasks": self.meta.get("tasks")}
        for key in ("id", "tasks"):
            mine, theirs = declared[key], registered[key]
            if mine is None or theirs is None:
                continue
            if (sorted(mine) if key == "tasks" else mine) != (sorted(theirs) if key == "tasks" else theirs):
                raise VitdreamError(
                    f"{singular(self.kind)} {self.id!r} of plugin {self.plugin!r}: registered with {key} {theirs!r} "
                    f"but {self.target} declares {mine!r}; make them agree"
                )

    def create(self, *args: Any, **kwargs: Any) -> Any:
        """Instantiate the component."""
        return self.load()(*args, **kwargs)

    def info(self) -> dict[str, Any]:
        return {"id": self.id, "plugin": self.plugin, "description": self.description, **self.meta}


def _class_attr(target: Any, name: str, default: Any = None) -> Any:
    return default if isinstance(target, str) else getattr(target, name, default)


class Registry:
    """All registered components, by kind then id, in registration order."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}

    def add(self, entry: Entry) -> Entry:
        if entry.kind not in self._entries:
            raise VitdreamError(f"unknown kind {entry.kind!r}; kinds are {', '.join(KINDS)}")
        existing = self._entries[entry.kind].get(entry.id)
        if existing is not None:
            raise DuplicateIdError(entry.kind, entry.id, existing.plugin, entry.plugin)
        self._entries[entry.kind][entry.id] = entry
        return entry

    def get(self, kind: str, id: str) -> Entry:
        try:
            return self._entries[kind][id]
        except KeyError:
            raise UnknownIdError(kind, id, list(self._entries.get(kind, {}))) from None

    def ids(self, kind: str) -> list[str]:
        return list(self._entries[kind])

    def entries(self, kind: str) -> list[Entry]:
        return list(self._entries[kind].values())

    def by_plugin(self, plugin: str) -> dict[str, list[str]]:
        return {kind: [e.id for e in ents.values() if e.plugin == plugin] for kind, ents in self._entries.items()}

    def __iter__(self) -> Iterator[Entry]:
        for ents in self._entries.values():
            yield from ents.values()

    def __contains__(self, key: tuple[str, str]) -> bool:
        kind, id = key
        return id in self._entries.get(kind, {})


class Registrar:
    """The ``register`` callable a ``register_<kind>`` hook receives.

    ``register(target, id=None, description=None, **meta)`` where ``target`` is a class, a
    factory, or ``"module:attribute"``. With a class, ``id`` and ``description`` default to its
    ``id`` attribute and the first line of its docstring. Extra keywords become metadata shown
    by ``vitdream plugins`` (e.g. ``tasks=("classify",)`` or ``deterministic=True``).
    Returns the :class:`Entry`.
    """

    def __init__(self, registry: Registry, kind: str, plugin: str):
        self.registry, self.kind, self.plugin = registry, kind, plugin

    def __call__(self, target: Any, id: str | None = None, description: str | None = None, **meta: Any) -> Entry:
        id = id or _class_attr(target, "id")
        if not id or not isinstance(id, str):
            raise VitdreamError(
                f"plugin {self.plugin!r} registered a {singular(self.kind)} without an id "
                f"(pass id=... or give the class an 'id' attribute)"
            )
        if description is None:
            doc = _class_attr(target, "__doc__") or ""
            description = doc.strip().splitlines()[0] if doc.strip() else ""
        for key in ("tasks", "deterministic"):
            value = _class_attr(target, key)
            if value is not None and key not in meta:
                meta[key] = sorted(value) if isinstance(value, (set, frozenset)) else value
        if "tasks" in meta and not isinstance(meta["tasks"], str):
            meta["tasks"] = list(meta["tasks"])
        return self.registry.add(Entry(self.kind, id, target, self.plugin, description, meta))
