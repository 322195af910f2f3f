"""Embedding search over image files: ``build_index`` / ``load_index`` return an :class:`ImageIndex`.

    idx = vd.build_index("photos/", embedder=vd.load_embedder(), kind="faiss-flat", out="photos.vdindex")
    idx.search("query.jpg", top_k=10)      # [Hit(path, score, id), ...]; a list of queries -> a list per query

Index kinds come from plugins (``vitdream plugins``): ``faiss-flat`` (exact), ``faiss-hnsw``,
``faiss-ivf``, ``faiss-ivfpq`` (compressed), or any third-party :class:`vitdream.base.VectorIndex`. ``kind=None`` uses
``$VITDREAM_INDEX_KIND`` (default ``faiss-flat``) with options from ``$VITDREAM_INDEX_OPTIONS``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from vitdream.search.image_index import AddReport, Hit, ImageIndex, IndexMismatchError

__all__ = ["AddReport", "Hit", "ImageIndex", "IndexMismatchError", "build_index", "load_index"]


def build_index(
    source: str | os.PathLike | Sequence[Any],
    embedder: Any = None,
    kind: str | None = None,
    *,
    out: str | os.PathLike | None = None,
    model: str | os.PathLike | None = None,
    layer: int = -1,
    pool: str = "cls",
    checkpoint_seconds: float = 60.0,
    progress: bool | None = None,
    **index_options: Any,
) -> ImageIndex:
    """Embed every image of ``source`` (folder, glob or list of paths) into a new index.

    ``embedder``: an Embedder (default ``vd.load_embedder(model)``). ``kind``: index kind id;
    extra keywords are its options (``ef_search=``, ``nprobe=``...). With ``out``, the index is
    saved there (atomically, also every ``checkpoint_seconds`` while building); if ``out``
    already holds an index, it is extended: files already in it (same path, mtime and size)
    are not embedded again. A folder is read by content; image files that fail are listed in
    ``index.failures``, files that are not images in ``index.skipped`` (see ``index.last_report``).
    """
    if embedder is None and model is not None:
        from vitdream.vision import load_embedder

        embedder = load_embedder(model)
    if out is not None and (Path(out) / "CURRENT").exists():
        index = ImageIndex.load(out, embedder=embedder)  # refuses a different embedder
        if (kind and kind != index.kind) or index_options:
            index.rebuild(kind or index.kind, **{**index.index_options, **index_options})
    else:
        if embedder is None:
            from vitdream.vision import load_embedder

            embedder = load_embedder(model)
        index = ImageIndex(embedder, kind, layer=layer, pool=pool, index_options=index_options or None)
    index.add(source, checkpoint=out, checkpoint_seconds=checkpoint_seconds, progress=progress)
    if out is not None:
        index.save(out)
    return index


def load_index(path: str | os.PathLike, embedder: Any = None) -> ImageIndex:
    """Load an index saved with ``save``/``build_index(out=...)``; see :meth:`ImageIndex.load`."""
    return ImageIndex.load(path, embedder=embedder)
