"""The hooks a vitdream plugin can implement.

Every spec here is a documented do-nothing function: the host calls it, plugins answer.
Built-in features use these same hooks (see ``vitdream/default_plugins/``).

Registration hooks receive a ``register`` callable (a :class:`vitdream.registry.Registrar`)
and hand it classes, factories or ``"module:attribute"`` strings -- never instances -- so
heavy libraries are imported only when a component is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    import click

    from vitdream.registry import Registrar

PROJECT = "vitdream"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_backends(register: Registrar) -> None:
    """Register model backends: classifiers, embedders and image generators.

    ``register(BackendClass)`` or ``register("pkg.module:BackendClass", id="my-backend",
    tasks=("classify", "embed"))``. A backend class subclasses one or more of
    :class:`vitdream.base.Classifier`, :class:`vitdream.base.Embedder`,
    :class:`vitdream.base.Generator`.
    """


@hookspec
def register_trainers(register: Registrar) -> None:
    """Register trainers (subclasses of :class:`vitdream.base.Trainer`), e.g. DreamBooth."""


@hookspec
def register_samplers(register: Registrar) -> None:
    """Register diffusion samplers (subclasses of :class:`vitdream.base.Sampler`)."""


@hookspec
def register_indexes(register: Registrar) -> None:
    """Register vector-index kinds (subclasses of :class:`vitdream.base.VectorIndex`)."""


@hookspec
def register_evaluators(register: Registrar) -> None:
    """Register evaluators (subclasses of :class:`vitdream.base.Evaluator`): they score images against
    reference images and/or prompts (``vd.evaluate_dreambooth``, live DreamBooth validation)."""


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add sub-commands to the ``vitdream`` command-line tool (a :class:`click.Group`).

    The same commands are reachable from the ``%vitdream`` IPython line magic.
    """
