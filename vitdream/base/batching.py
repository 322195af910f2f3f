"""Batch inference plumbing: decode + preprocess in worker threads while the model runs.

:func:`iter_batches` loads images through the safe loader (:func:`vitdream.images.load_image`)
in a thread pool, keeps a bounded window of work in flight (memory stays flat on 100k files),
and yields batches in input order. Bad images never stop the batch: each one is appended to
``failures`` as a :class:`~vitdream.images.BadImage`.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from vitdream.errors import ImageLoadError
from vitdream.images import BadImage, describe_source, expand_sources, load_image

PROGRESS_MIN_IMAGES = 64  # show a progress bar (when progress=None) from this many inputs


@dataclass
class Batch:
    """Positions in the input (``indices``) and their preprocessed arrays."""

    indices: list[int]
    arrays: list[np.ndarray]


def is_single(images: Any) -> bool:
    """True for one image (path to a file, bytes, PIL image, HxW[xC] array); False for a batch."""
    if isinstance(images, (str, os.PathLike)):
        text = os.fspath(images)
        return not (os.path.isdir(text) or any(ch in text for ch in "*?["))
    if isinstance(images, (bytes, bytearray)):
        return True
    ndim = getattr(images, "ndim", None)
    if ndim is not None:
        return ndim <= 3
    return not isinstance(images, (list, tuple)) and not hasattr(images, "__iter__")


def as_sources(images: Any) -> list[Any]:
    """A folder, glob, list, tuple, (n, H, W, C) array or other iterable -> list of sources."""
    if isinstance(images, (str, os.PathLike)):
        return expand_sources(images)
    if getattr(images, "ndim", None) == 4:
        return list(images)
    return list(images)


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def iter_batches(
    sources: Sequence[Any],
    prepare: Callable[[Any], np.ndarray],
    batch_size: int,
    failures: list[BadImage],
    *,
    workers: int | None = None,
    progress: bool | None = None,
    desc: str = "images",
) -> Iterator[Batch]:
    """Load and ``prepare`` every source in threads; yield full batches in input order."""
    from tqdm.auto import tqdm

    n = len(sources)
    show = n >= PROGRESS_MIN_IMAGES if progress is None else progress
    workers = workers or default_workers()

    def task(i: int) -> np.ndarray:
        source = sources[i]
        return prepare(load_image(source, name=describe_source(source, i)))

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vitdream-decode") as pool, tqdm(
        total=n, desc=desc, unit="img", disable=not show, leave=False
    ) as bar:
        pending: deque[tuple[int, Future]] = deque()
        upcoming = iter(range(n))
        for i in upcoming:
            pending.append((i, pool.submit(task, i)))
            if len(pending) >= max(2 * batch_size, 2 * workers):
                break
        batch = Batch([], [])
        while pending:
            i, future = pending.popleft()
            nxt = next(upcoming, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(task, nxt)))
            try:
                arr = future.result()
            except ImageLoadError as exc:
                failures.append(BadImage(i, exc.source, exc.reason, exc.kind))
                bar.update(1)
                continue
            except Exception as exc:  # e.g. a valid image the preprocessing cannot handle
                failures.append(BadImage(i, describe_source(sources[i], i), f"preprocessing failed: {type(exc).__name__}: {exc}"))
                bar.update(1)
                continue
            batch.indices.append(i)
            batch.arrays.append(arr)
            if len(batch.indices) == batch_size:
                yield batch
                bar.update(len(batch.indices))
                batch = Batch([], [])
        if batch.indices:
            yield batch
            bar.update(len(batch.indices))
