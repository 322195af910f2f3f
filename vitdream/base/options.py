"""Typed, validated options shared by every component (pydantic, unknown fields forbidden)."""

from __future__ import annotations

from abc import ABC
from typing import Any, ClassVar, TypeVar

import pydantic

from vitdream.errors import OptionsError

T = TypeVar("T", bound="Options")


class Options(pydantic.BaseModel):
    """Base class of every component's options. Subclass and add typed fields.

    ``Options.parse(owner, **values)`` raises :class:`OptionsError` naming each unknown or
    invalid field, the value given and the reason.
    """

    model_config = pydantic.ConfigDict(extra="forbid", validate_assignment=True, arbitrary_types_allowed=True)

    @classmethod
    def parse(cls: type[T], owner: str = "", **values: Any) -> T:
        try:
            return cls(**values)
        except pydantic.ValidationError as exc:
            raise OptionsError(format_validation_error(exc, owner or cls.__name__, cls)) from None


def format_validation_error(exc: pydantic.ValidationError, owner: str, model: type[pydantic.BaseModel]) -> str:
    """One line per bad field: ``owner: field 'x': reason (got value)``."""
    lines = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(options)"
        if err["type"] == "extra_forbidden":
            known = ", ".join(model.model_fields)
            lines.append(f"{owner}: unknown option {field!r} (known options: {known})")
        else:
            lines.append(f"{owner}: option {field!r}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


class Component(ABC):
    """Base of every pluggable component: an ``id`` and typed ``Options``."""

    id: ClassVar[str] = ""
    Options: ClassVar[type[Options]] = Options

    def __init__(self, **options: Any) -> None:
        self.options = self.Options.parse(self.id or type(self).__name__, **options)
