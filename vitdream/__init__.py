"""vitdream: a Jupyter lab for vision transformers and DreamBooth.

``import vitdream`` is light: torch, transformers, diffusers and faiss are imported only when a
feature that needs them is first used. Public names resolve lazily (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> "module:attribute" (or "module" for a submodule)
_LAZY: dict[str, str] = {
    "hookimpl": "vitdream.hookspecs:hookimpl",
    "hookspec": "vitdream.hookspecs:hookspec",
    "plugins": "vitdream.plugins",  # a callable module: vd.plugins() lists plugins
    "load_plugins": "vitdream.plugins:load_plugins",
    "register_plugin": "vitdream.plugins:register_plugin",
    "unregister_plugin": "vitdream.plugins:unregister_plugin",
    "components": "vitdream.components",
    "base": "vitdream.base",
    "errors": "vitdream.errors",
    "images": "vitdream.images",
    "load_image": "vitdream.images:load_image",
    "load_images": "vitdream.images:load_images",
    "load_classifier": "vitdream.vision:load_classifier",
    "load_embedder": "vitdream.vision:load_embedder",
    "finetune": "vitdream.notebook:finetune",
    "build_index": "vitdream.search:build_index",
    "load_index": "vitdream.search:load_index",
    "load_generator": "vitdream.generation:load_generator",
    "read_settings": "vitdream.generation.provenance:read_settings",
    "dreambooth": "vitdream.dreambooth:dreambooth",
    "create_run": "vitdream.components:create_run",
    "evaluate_dreambooth": "vitdream.evaluation:evaluate_dreambooth",
    "load_evaluator": "vitdream.components:load_evaluator",
    "datasets": "vitdream.datasets",
    "widgets": "vitdream.widgets",
    "assets": "vitdream.assets",
    "doctor": "vitdream.health:doctor",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'vitdream' has no attribute {name!r}")
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    value = getattr(module, attr) if attr else module
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext vitdream``: adds the ``%vitdream`` line magic."""
    from vitdream.magic import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from vitdream.magic import unload_ipython_extension as _unload

    _unload(ipython)
