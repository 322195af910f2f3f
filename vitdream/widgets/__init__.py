"""Notebook widgets: thin ipywidgets views over the Python API. Imported lazily."""

from __future__ import annotations

import importlib
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
