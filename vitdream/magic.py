"""The ``%vitdream`` IPython line magic: the CLI inside a notebook (``%vitdream plugins``)."""

from __future__ import annotations

import shlex
from typing import Any

import click


def vitdream_magic(line: str) -> None:
    """Run a ``vitdream`` sub-command, e.g. ``%vitdream plugins --json``."""
    from vitdream.cli import build_cli

    try:
        build_cli().main(args=shlex.split(line), prog_name="%vitdream", standalone_mode=False)
    except click.exceptions.Exit:
        pass
    except click.ClickException as exc:
        exc.show()


def load_ipython_extension(ipython: Any) -> None:
    from vitdream import cli, plugins

    plugins.reset()  # %reload_ext picks up newly installed plugins
    cli._commands_added = False
    ipython.register_magic_function(vitdream_magic, magic_kind="line", magic_name="vitdream")


def unload_ipython_extension(ipython: Any) -> None:
    ipython.magics_manager.magics["line"].pop("vitdream", None)
