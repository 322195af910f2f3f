"""What every ``vitdream`` sub-command shares, built-in or a plugin's: one error wrapper, one
``KEY=VALUE`` parser, and only the options a user set. Light (click and the errors only), so the
command modules of every package can use it without importing the CLI itself."""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import click


def fail_clearly(command: Callable[..., Any]) -> Callable[..., Any]:
    """Every command's error wrapper: vitdream errors (and missing files, bad values) become a one-line
    CLI error with exit status 1 instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from vitdream.errors import VitdreamError

        try:
            return command(*args, **kwargs)
        except (VitdreamError, FileNotFoundError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def given(**options: Any) -> dict[str, Any]:
    """The options a command's user actually set (not None/False), to pass to any backend: a plugin's
    backend need not know the built-in backends' options."""
    return {k: v for k, v in options.items() if v is not None and v is not False}


def parse_key_values(pairs: Sequence[str], option: str) -> dict[str, Any]:
    """The one ``KEY=VALUE`` parser of every command: ``("a=1", "b=[1, 2]", "c=text")`` -> ``{"a": 1,
    "b": [1, 2], "c": "text"}``; each value is read as YAML (so JSON too), a value YAML cannot read
    stays a string. A pair without ``=`` is an :class:`~vitdream.errors.OptionsError` naming ``option``."""
    import yaml

    from vitdream.errors import OptionsError

    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise OptionsError(f"{option} {pair!r}: expected KEY=VALUE")
        try:
            options[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            options[key.strip()] = value
    return options
