"""Notebook widgets: thin ipywidgets views over the Python API. Imported lazily."""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

_WIDGETS: dict[str, str] = {
    "classify": "vitdream.widgets.classify:classify",
    "search": "vitdream.widgets.search:search",
    "train": "vitdream.widgets.train:train",
    "generate": "vitdream.widgets.generate:generate",
}


def __getattr__(name: str) -> Any:
    target = _WIDGETS.get(name)
    if target is None:
        raise AttributeError(f"module 'vitdream.widgets' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # importing vitdream.widgets.<name> set this attribute to the submodule: override it
    return value


def __dir__() -> list[str]:
    return sorted(_WIDGETS)


class _WidgetModule(types.ModuleType):
    """A widget's module that calls its widget function: ``vd.widgets.search(...)`` works even after
    ``import vitdream.widgets.search`` made the package attribute the module rather than the function."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self, self.__name__.rsplit(".", 1)[1])(*args, **kwargs)


def make_callable(module_name: str) -> None:
    """Called at the end of each widget module (see :class:`_WidgetModule`)."""
    sys.modules[module_name].__class__ = _WidgetModule
