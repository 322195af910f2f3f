"""Crash-safe saves of a directory of files.

A saved index is a folder holding numbered snapshots and a ``CURRENT`` file naming the live one::

    photos.vdindex/
      CURRENT          -> "v000003"
      v000003/         manifest.json, items.json, embeddings.npy, vectors/...

:func:`write_snapshot` fills a new ``vNNNNNN.tmp`` folder, fsyncs every file and folder in it,
renames it to ``vNNNNNN``, then replaces ``CURRENT`` atomically (temp file + fsync + rename).
A crash at any point leaves ``CURRENT`` naming a complete snapshot; leftovers are removed by
the next successful save.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Callable

from vitdream.atomic import atomic_write_text, fsync_dir, fsync_tree

CURRENT = "CURRENT"
_SNAPSHOT = re.compile(r"^v(\d{6})$")


def current_snapshot(root: str | os.PathLike) -> Path:
    """The live snapshot folder of a saved index; a clear error if there is none."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no saved index here (not a folder)")
    pointer = root / CURRENT
    if not pointer.is_file():
        raise FileNotFoundError(f"{root}: not a vitdream index (no {CURRENT} file)")
    name = pointer.read_text().strip()
    if not _SNAPSHOT.match(name) or not (root / name).is_dir():
        raise FileNotFoundError(f"{root}: {CURRENT} names {name!r}, which is missing")
    return root / name


def write_snapshot(root: str | os.PathLike, fill: Callable[[Path], None]) -> Path:
    """Create a new snapshot of ``root`` with ``fill(folder)`` and make it the live one."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"{root}: exists and is not a folder")
    root.mkdir(parents=True, exist_ok=True)
    numbers = [int(m.group(1)) for p in root.iterdir() if (m := re.match(r"^v(\d{6})", p.name))]
    name = f"v{max(numbers, default=0) + 1:06d}"
    tmp = root / f"{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    fill(tmp)
    fsync_tree(tmp)
    os.replace(tmp, root / name)
    fsync_dir(root)
    atomic_write_text(root / CURRENT, name + "\n")
    _remove_stale(root, keep=name)
    return root / name


def _remove_stale(root: Path, keep: str) -> None:
    for path in root.iterdir():
        if path.name != keep and re.match(r"^v\d{6}", path.name) and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.name.startswith(f".{CURRENT}.tmp-"):
            path.unlink(missing_ok=True)
