"""Old names kept working: each use warns once per call site with a :class:`DeprecationWarning`."""

from __future__ import annotations

import warnings


def renamed(old: str, new: str, where: str, stacklevel: int = 3) -> None:
    """Warn that ``where``'s ``old`` is now called ``new``."""
    warnings.warn(f"{where}: {old!r} is deprecated, use {new!r}", DeprecationWarning, stacklevel=stacklevel + 1)


def renamed_count(top_k: int, k: int | None, where: str) -> int:
    """``top_k``, or the deprecated ``k`` when a caller still passes it (how many results: one name, ``top_k``)."""
    if k is None:
        return top_k
    renamed("k", "top_k", where, stacklevel=3)
    return k
