"""Exceptions raised by vitdream. Every message names the thing at fault and the reason."""

from __future__ import annotations


SINGULAR = {"backends": "backend", "trainers": "trainer", "samplers": "sampler", "indexes": "index", "evaluators": "evaluator"}


def singular(kind: str) -> str:
    """'indexes' -> 'index'."""
    return SINGULAR.get(kind, kind)


class VitdreamError(Exception):
    """Base class of every error vitdream raises on purpose."""


class UnknownIdError(VitdreamError, KeyError):
    """An id that no plugin registered. The message lists the ids that exist."""

    def __init__(self, kind: str, id: str, known: list[str]):
        self.kind, self.id, self.known = kind, id, list(known)
        listed = ", ".join(sorted(known)) or "(none registered)"
        super().__init__(f"unknown {singular(kind)} {id!r}; known: {listed}")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class DuplicateIdError(VitdreamError):
    """Two plugins registered the same id for the same kind."""

    def __init__(self, kind: str, id: str, first: str, second: str):
        self.kind, self.id, self.first, self.second = kind, id, first, second
        super().__init__(
            f"{singular(kind)} id {id!r} is registered by plugin {first!r} and again by plugin "
            f"{second!r}; the second registration was refused (rename one of them)"
        )


class OptionsError(VitdreamError, ValueError):
    """Unknown or invalid options. The message names each bad field and why."""


class ImageLoadError(VitdreamError, ValueError):
    """An image could not be read. ``source`` names the file (or input position), ``reason`` why,
    ``kind`` the class of failure (see :data:`vitdream.images.FAILURE_KINDS`)."""

    def __init__(self, source: str, reason: str, kind: str = "error"):
        self.source, self.reason, self.kind = source, reason, kind
        super().__init__(f"{source}: {reason}")

    def __reduce__(self):  # picklable across processes, kind included
        return (type(self), (self.source, self.reason, self.kind))


class ModelLoadError(VitdreamError, OSError):
    """A model reference could not be loaded (missing, not cached offline, unsafe weights...)."""


class GenerationCancelled(VitdreamError):
    """Generation stopped early because its ``cancel`` event was set."""
