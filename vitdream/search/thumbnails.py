"""Small JPEG thumbnails, made on first request and cached in memory (LRU) and on disk.

The disk cache lives in ``vitdream.loading.cache_dir("thumbnails")``,
keyed by path, mtime, size and thumbnail size, so an edited file gets a fresh thumbnail.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections import OrderedDict
from pathlib import Path

from vitdream.atomic import atomic_write_bytes
from vitdream.errors import ImageLoadError
from vitdream.loading import cache_dir


def default_cache_dir() -> Path:
    return cache_dir("thumbnails")


class ThumbnailCache:
    """``get(path, size)`` -> JPEG bytes or None (unreadable file). Thread-safe."""

    def __init__(self, folder: str | os.PathLike | None = None, max_items: int = 2048, disk: bool = True) -> None:
        self.folder = Path(folder) if folder is not None else default_cache_dir()
        self.max_items, self.disk = max_items, disk
        self._memory: OrderedDict[str, bytes | None] = OrderedDict()
        self._lock = threading.Lock()
        self.made = 0  # thumbnails generated (not served from a cache): for tests and stats

    def get(self, path: str | os.PathLike, size: int = 128) -> bytes | None:
        path = os.path.abspath(os.fspath(path))
        try:
            stat = os.stat(path)
        except OSError:
            return None
        key = hashlib.sha1(f"{path}|{stat.st_mtime_ns}|{stat.st_size}|{size}".encode()).hexdigest()
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                return self._memory[key]
        data = self._read_disk(key)
        if data is None:
            data = self._make(path, size)
            if data is not None:
                self._write_disk(key, data)
        with self._lock:
            self._memory[key] = data
            while len(self._memory) > self.max_items:
                self._memory.popitem(last=False)
        return data

    def _make(self, path: str, size: int) -> bytes | None:
        from vitdream.images import load_image

        try:
            image = load_image(path)
        except ImageLoadError:
            return None
        image.thumbnail((size, size))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
        self.made += 1
        return buffer.getvalue()

    def _read_disk(self, key: str) -> bytes | None:
        if not self.disk:
            return None
        try:
            return (self.folder / key[:2] / f"{key}.jpg").read_bytes()
        except OSError:
            return None

    def _write_disk(self, key: str, data: bytes) -> None:
        if not self.disk:
            return
        try:
            atomic_write_bytes(self.folder / key[:2] / f"{key}.jpg", data, durable=False)  # a cache: no fsync
        except OSError:
            pass  # read-only home: memory cache only
