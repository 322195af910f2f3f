"""The package's layering, read from its source (AST, no imports): the kernel depends on nothing above it,
no backend imports a widget, the event stream has no Lightning, and packages import each other without cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import vitdream

ROOT = Path(vitdream.__file__).parent
# The kernel: what plugin authors implement against and every layer may use.
KERNEL = {"vitdream.base", "vitdream.errors", "vitdream.events", "vitdream.images", "vitdream.image_failures", "vitdream.atomic",
          "vitdream.loading", "vitdream.registry", "vitdream.hookspecs", "vitdream.commands"}
BACKENDS = {"vitdream.vision", "vitdream.generation", "vitdream.dreambooth", "vitdream.search",
            "vitdream.datasets", "vitdream.evaluation", "vitdream.evaluators", "vitdream.lightning", "vitdream.components"}
VIEWS = {"vitdream.widgets", "vitdream.notebook"}  # the only layer that displays widgets


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def imported(path: Path, top_level_only: bool = False) -> set[str]:
    """Every module ``path`` imports (absolute imports; ``if TYPE_CHECKING`` blocks skipped)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if top_level_only and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                for alias in child.names:
                    sub = f"{child.module}.{alias.name}"
                    found.add(sub if sub in MODULES else child.module)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def in_layer(module: str, layer: set[str]) -> bool:
    return package(module) in layer


def test_the_walk_sees_the_whole_package():
    assert {"vitdream.base.vision", "vitdream.events", "vitdream.widgets.train", "vitdream.vision.finetuning"} <= set(MODULES)
    assert "vitdream.events" in imported(MODULES["vitdream.base.training"])


@pytest.mark.parametrize("module", sorted(m for m in MODULES if in_layer(m, KERNEL)))
def test_the_kernel_depends_only_on_the_kernel(module):
    own = {m for m in imported(MODULES[module]) if m.startswith("vitdream.")}
    assert {m for m in own if not in_layer(m, KERNEL)} == set()


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not in_layer(m, VIEWS) and m != "vitdream"))
def test_nothing_below_the_views_imports_a_widget(module):
    assert {m for m in imported(MODULES[module]) if in_layer(m, VIEWS)} == set()


def test_events_and_the_kernel_never_import_lightning_or_torch_at_import_time():
    for module, path in MODULES.items():
        if in_layer(module, KERNEL):
            heavy = {m for m in imported(path, top_level_only=True) if m.split(".")[0] in ("torch", "pytorch_lightning", "lightning", "lightning_fabric", "transformers", "diffusers")}
            assert heavy == set(), module
    assert not {m for m in imported(MODULES["vitdream.events"]) if "lightning" in m}


def package_cycles() -> list[set[str]]:
    edges: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        for target in imported(path):
            a, b = package(module), package(target)
            if target in MODULES and a != b and "vitdream" not in (a, b):  # the root only holds lazy names
                edges.setdefault(a, set()).add(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[set[str]] = []

    def connect(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(component)

    for v in sorted(edges):
        if v not in index:
            connect(v)
    return cycles


def test_no_import_cycles_between_packages():
    assert package_cycles() == []


def test_backends_and_widgets_only_meet_through_the_kernel_contract():
    """Widgets import backends' public API only; no backend imports another backend's widget or
    vision imports dreambooth (ViT fine-tuning shares vitdream.events and vitdream.lightning instead)."""
    vision = {m for name, p in MODULES.items() if name.startswith("vitdream.vision") for m in imported(p)}
    assert not {m for m in vision if m.startswith(("vitdream.dreambooth", "vitdream.widgets"))}
