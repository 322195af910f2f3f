"""An image-folder dataset (``root/<class>/*.jpg``) for fine-tuning, through the safe loader.

Classes are the sorted sub-folder names. The validation split is stratified and seeded. Bad images
are skipped by the collate function and reported in ``failures`` (with ``num_workers=0``, the
default; worker processes skip them too but cannot report back).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np

from vitdream.errors import VitdreamError
from vitdream.images import IMAGE_EXTENSIONS, BadImage, describe_source, load_image


def scan_folder(root: str | os.PathLike) -> tuple[list[str], list[tuple[str, int]]]:
    """(class names, [(path, class index)]) of ``root/<class>/**/<image>``."""
    root = Path(root)
    if not root.is_dir():
        raise VitdreamError(f"{root}: not a folder (expected folder/<class>/*.jpg)")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    items = [
        (str(f), label)
        for label, name in enumerate(classes)
        for f in sorted((root / name).rglob("*"))
        if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
    ]
    if len(classes) < 2:
        raise VitdreamError(f"{root}: found {len(classes)} class folder(s); fine-tuning needs at least 2 (folder/<class>/*.jpg)")
    empty = [name for i, name in enumerate(classes) if not any(label == i for _, label in items)]
    if empty:
        raise VitdreamError(f"{root}: class folder(s) without images: {', '.join(empty)}")
    return classes, items


def split(items: list[tuple[str, int]], val_fraction: float, seed: int) -> tuple[list, list]:
    """Stratified (train, val): at least one validation image per class when ``val_fraction > 0``."""
    rng = random.Random(seed)
    train, val = [], []
    for label in sorted({label for _, label in items}):
        group = [item for item in items if item[1] == label]
        rng.shuffle(group)
        n_val = 0 if val_fraction <= 0 else max(1, round(len(group) * val_fraction))
        if n_val >= len(group):
            n_val = len(group) - 1
        val.extend(group[:n_val])
        train.extend(group[n_val:])
    return train, val


class FolderDataset:
    """Map-style dataset of (uint8 HxWx3 array, label) or ``None`` for a bad image."""

    def __init__(self, items: list[tuple[str, int]], preprocessor: Any, augment: bool = False) -> None:
        self.items, self.preprocessor, self.augment = items, preprocessor, augment
        self.failures: list[BadImage] = []

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Any:
        path, label = self.items[index]
        try:
            array = self.preprocessor.resize_crop(load_image(path, name=describe_source(path)))
        except VitdreamError as exc:
            if not any(f.source == path for f in self.failures):
                self.failures.append(BadImage(index, path, getattr(exc, "reason", str(exc)), getattr(exc, "kind", "error")))
            return None
        if self.augment and random.random() < 0.5:
            array = np.ascontiguousarray(array[:, ::-1])  # horizontal flip
        return array, label


class Collate:
    """Drops bad images; normalises the batch in one vectorised step."""

    def __init__(self, preprocessor: Any) -> None:
        self.preprocessor = preprocessor

    def __call__(self, batch: list[Any]) -> Any:
        import torch

        good = [item for item in batch if item is not None]
        if not good:
            return None
        pixels = self.preprocessor.normalize([array for array, _ in good])
        return pixels, torch.tensor([label for _, label in good], dtype=torch.long)
