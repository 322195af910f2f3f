"""Crash-safe writes, the one way vitdream writes files: write to a temp name beside the target,
fsync, rename onto the target, fsync the folder. A crash leaves the old file (or folder) intact.

- :func:`atomic_path` -- a temp path for a library that writes by file name (ONNX, torch, ...);
- :func:`atomic_open` -- a file object (``image.save(fh, format="PNG")``, ``torch.save(obj, fh)``);
- :func:`atomic_write_text` / :func:`atomic_write_bytes` -- whole contents at once;
- :func:`atomic_dir` -- a whole folder (``save_pretrained``), swapped in with two renames.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Callable, Iterator

FILE_MODE = 0o644  # what a plain open() gives under the usual umask (mkstemp makes 0o600)


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename inside it survives a crash (no-op on Windows)."""
    if os.name == "nt":  # pragma: no cover - directories cannot be opened on Windows
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file under ``root``, then every folder (children first)."""
    for folder, _, files in os.walk(root, topdown=False):
        for name in files:
            with open(os.path.join(folder, name), "rb") as fh:
                os.fsync(fh.fileno())
        fsync_dir(Path(folder))


@contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "", durable: bool = True) -> Iterator[Path]:
    """A fresh temp path beside ``target`` (ending in ``suffix``, for libraries that look at it);
    fsynced and renamed onto ``target`` when the block succeeds, deleted when it raises.
    ``durable=False`` skips the fsyncs (caches: the rename alone keeps readers from torn files)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.tmp-", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if durable:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    if durable:
        fsync_dir(target.parent)


@contextmanager
def atomic_open(target: str | os.PathLike, mode: str = "wb", durable: bool = True) -> Iterator[IO]:
    """``open(target, mode)`` (text modes: UTF-8) that replaces ``target`` only once the block succeeded."""
    encoding = None if "b" in mode else "utf-8"
    with atomic_path(target, durable=durable) as tmp, open(tmp, mode, encoding=encoding) as fh:
        yield fh
        fh.flush()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w") as fh:
        fh.write(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb", durable=durable) as fh:
        fh.write(data)


def atomic_dir(directory: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_dir)``, fsync it, then swap it in as ``directory`` (a previous one is
    renamed aside first and deleted only after the swap). Returns the resolved ``directory``."""
    target = Path(directory).expanduser().resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes 0o700
        write(tmp)
        fsync_tree(tmp)
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
        os.replace(tmp, target)
        fsync_dir(target.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
