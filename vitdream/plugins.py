"""The plugin manager: loads built-in, entry-point and file plugins, and fills the registry.

Loading order: built-ins (``vitdream.default_plugins``), then installed packages exposing an
entry point in group ``vitdream``, then ``*.py`` files in ``$VITDREAM_PLUGINS_DIR``. Each plugin
is imported, validated (``check_pending`` catches misspelled hooks) and asked to register
inside its own ``try``: a plugin that fails is recorded with its error and skipped.

``VITDREAM_LOAD_PLUGINS`` -- a comma-separated allow-list of entry-point plugin names; set but
empty means built-ins only.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable

import pluggy

from vitdream import hookspecs
from vitdream.registry import KINDS, Registrar, Registry

ENTRY_POINT_GROUP = "vitdream"

DEFAULT_PLUGINS: tuple[str, ...] = (
    "vitdream.default_plugins.vision",
    "vitdream.default_plugins.diffusion",
    "vitdream.default_plugins.faiss_index",
    "vitdream.default_plugins.dreambooth",
    "vitdream.default_plugins.evaluators",
)


@dataclass
class PluginInfo:
    """What ``vitdream plugins`` shows for one plugin."""

    name: str
    version: str | None
    source: str  # "built-in", "entry point", "file" or "runtime"
    hooks: list[str] = field(default_factory=list)
    registered: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in KINDS})
    error: str | None = None
    module: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "source": self.source,
            "hooks": list(self.hooks),
            "registered": {k: list(v) for k, v in self.registered.items()},
            "error": self.error,
            "module": self.module,
        }


def _format_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class PluginHost:
    """Owns one pluggy manager, the registry and the per-plugin report."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.registry = Registry()
        self.infos: dict[str, PluginInfo] = {}
        self.tracebacks: dict[str, str] = {}
        self._loaded = False
        self._lock = threading.RLock()

    # -- loading ---------------------------------------------------------------------------
    def load(self, plugins_dir: str | os.PathLike | None = None) -> "PluginHost":
        """Load every plugin once; later calls return at once (idempotent)."""
        with self._lock:
            if self._loaded:
                return self
            for name in DEFAULT_PLUGINS:
                self._add(name, lambda name=name: importlib.import_module(name), "built-in", _vitdream_version())
            for ep in _allowed_entry_points():
                version = ep.dist.version if getattr(ep, "dist", None) else None
                self._add(ep.name, ep.load, "entry point", version)
            directory = plugins_dir or os.environ.get("VITDREAM_PLUGINS_DIR")
            if directory:
                for path in sorted(Path(directory).glob("*.py")):
                    self._add(path.stem, lambda path=path: _import_file(path), "file", None)
            self._loaded = True
            return self

    def register(self, plugin: Any, name: str | None = None, source: str = "runtime") -> PluginInfo:
        """Register a plugin object (module, class or instance) at run time, e.g. from a notebook."""
        with self._lock:
            self.load()
            name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
            return self._add(name, lambda: plugin, source, getattr(plugin, "__version__", None))

    def unregister(self, name: str) -> None:
        """Remove a plugin and everything it registered."""
        with self._lock:
            plugin = self.pm.get_plugin(name)
            if plugin is not None:
                self.pm.unregister(plugin)
            self.infos.pop(name, None)
            for kind in KINDS:
                for id in [e.id for e in self.registry.entries(kind) if e.plugin == name]:
                    del self.registry._entries[kind][id]

    def _add(self, name: str, importer: Any, source: str, version: str | None) -> PluginInfo:
        if name in self.infos:
            self.unregister(name)
        info = PluginInfo(name=name, version=version, source=source)
        self.infos[name] = info
        try:
            plugin = importer()
            info.module = getattr(plugin, "__name__", None)
            if info.version is None:
                info.version = getattr(plugin, "__version__", None)
            self.pm.register(plugin, name=name)
            try:
                self.pm.check_pending()
            except pluggy.PluginValidationError:
                self.pm.unregister(name=name)
                raise
            info.hooks = sorted(h.name for h in (self.pm.get_hookcallers(plugin) or []))
            self._call_registration_hooks(name, plugin, info)
        except Exception as exc:  # a broken plugin must never break the host
            info.error = _format_error(exc)
            self.tracebacks[name] = traceback.format_exc()
        info.registered = self.registry.by_plugin(name)
        return info

    def _call_registration_hooks(self, name: str, plugin: Any, info: PluginInfo) -> None:
        errors = []
        for kind in KINDS:
            hook = getattr(self.pm.hook, f"register_{kind}")
            for impl in hook.get_hookimpls():
                if impl.plugin is not plugin:
                    continue
                try:
                    impl.function(register=Registrar(self.registry, kind, name))
                except Exception as exc:
                    errors.append(f"register_{kind}: {_format_error(exc)}")
                    self.tracebacks[name] = traceback.format_exc()
        if errors:
            info.error = "; ".join(errors)

    # -- queries ---------------------------------------------------------------------------
    def report(self) -> list[PluginInfo]:
        self.load()
        return list(self.infos.values())

    def add_commands(self, cli: Any) -> None:
        """Call ``register_commands`` plugin by plugin, recording any that fail."""
        self.load()
        for impl in reversed(self.pm.hook.register_commands.get_hookimpls()):
            try:
                impl.function(cli=cli)
            except Exception as exc:
                info = self.infos.get(impl.plugin_name)
                if info is not None:
                    info.error = f"register_commands: {_format_error(exc)}"


def _vitdream_version() -> str:
    from vitdream import __version__

    return __version__


def _allowed_entry_points() -> Iterable[importlib.metadata.EntryPoint]:
    allow_env = os.environ.get("VITDREAM_LOAD_PLUGINS")
    allowed = None if allow_env is None else {n.strip() for n in allow_env.split(",") if n.strip()}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist_name = ep.dist.name if getattr(ep, "dist", None) else None
        if allowed is None or ep.name in allowed or dist_name in allowed:
            yield ep


def _import_file(path: Path) -> ModuleType:
    module_name = f"vitdream_file_plugin_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path}: not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


_host: PluginHost | None = None
_host_lock = threading.Lock()


def get_host() -> PluginHost:
    """The process-wide plugin host, loaded on first use."""
    global _host
    with _host_lock:
        if _host is None:
            _host = PluginHost()
    return _host.load()


def reset() -> None:
    """Forget every loaded plugin (tests, ``%reload_ext vitdream``). The next use reloads."""
    global _host
    with _host_lock:
        _host = None


def load_plugins() -> PluginHost:
    """Load all plugins (idempotent) and return the host."""
    return get_host()


def get_registry() -> Registry:
    return get_host().registry


def plugins() -> list[dict[str, Any]]:
    """Every plugin as a dict: name, version, source, hooks, registered, error."""
    return [info.to_dict() for info in get_host().report()]


def register_plugin(plugin: Any, name: str | None = None) -> dict[str, Any]:
    """Register a plugin object now (a module, class or instance with ``@hookimpl`` methods)."""
    return get_host().register(plugin, name=name).to_dict()


def unregister_plugin(name: str) -> None:
    get_host().unregister(name)


class _CallableModule(type(sys)):
    """Lets ``vd.plugins()`` list the plugins while ``vitdream.plugins`` stays this module."""

    def __call__(self) -> list[dict[str, Any]]:
        return plugins()


sys.modules[__name__].__class__ = _CallableModule
