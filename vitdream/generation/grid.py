"""Lay generated images out in one labelled row (guidance sweeps): :func:`image_row` and
:class:`ImageList` live in :mod:`vitdream.base.results`; this module keeps the old import path."""

from vitdream.base.results import ImageList, image_row

__all__ = ["ImageList", "image_row"]
