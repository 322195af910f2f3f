"""Tiny, randomly initialised ViT-family image classifiers for tests and demos (no downloads).

Each builder saves the model with ``save_pretrained`` (safetensors) plus a PIL image processor into
``path`` and returns the directory, ready for ``vd.load_classifier(path)`` or plain transformers::

    from vitdream.testing.vit import tiny_vit
    path = tiny_vit(tmp_path / "vit", labels=["cat", "dog", "bird"])
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

DEFAULT_LABELS: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross")
ARCHITECTURES: tuple[str, ...] = ("vit", "deit", "beit")


def tiny_vit(
    path: str | os.PathLike,
    labels: Sequence[str] = DEFAULT_LABELS,
    *,
    image_size: int = 32,
    patch_size: int = 8,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    seed: int = 0,
) -> Path:
    """A ``ViTForImageClassification`` with a ``ViTImageProcessor`` (resize to ``image_size``)."""
    from transformers import ViTConfig, ViTForImageClassification
    from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

    config = ViTConfig(**_common(labels, image_size, patch_size, hidden_size, num_layers, num_heads))
    processor = ViTImageProcessorPil(size={"height": image_size, "width": image_size})
    return _save(ViTForImageClassification, config, processor, path, seed)


def tiny_deit(path: str | os.PathLike, labels: Sequence[str] = DEFAULT_LABELS, *, image_size: int = 32, seed: int = 0) -> Path:
    """A ``DeiTForImageClassification`` whose processor resizes to ``image_size + 8`` then centre-crops (bicubic)."""
    from transformers import DeiTConfig, DeiTForImageClassification
    from transformers.models.deit.image_processing_pil_deit import DeiTImageProcessorPil

    config = DeiTConfig(**_common(labels, image_size, 8, 32, 2, 2))
    processor = DeiTImageProcessorPil(
        size={"height": image_size + 8, "width": image_size + 8}, crop_size={"height": image_size, "width": image_size}
    )
    return _save(DeiTForImageClassification, config, processor, path, seed)


def tiny_beit(path: str | os.PathLike, labels: Sequence[str] = DEFAULT_LABELS, *, image_size: int = 32, seed: int = 0) -> Path:
    """A ``BeitForImageClassification`` (mean pooling, relative position bias) with a BEiT processor."""
    from transformers import BeitConfig, BeitForImageClassification
    from transformers.models.beit.image_processing_pil_beit import BeitImageProcessorPil

    config = BeitConfig(**_common(labels, image_size, 8, 32, 2, 2), use_mean_pooling=True)
    processor = BeitImageProcessorPil(
        size={"height": image_size, "width": image_size}, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5]
    )
    return _save(BeitForImageClassification, config, processor, path, seed)


def tiny_model(arch: str, path: str | os.PathLike, labels: Sequence[str] = DEFAULT_LABELS, **kwargs) -> Path:
    """``tiny_vit`` / ``tiny_deit`` / ``tiny_beit`` by name."""
    builders = {"vit": tiny_vit, "deit": tiny_deit, "beit": tiny_beit}
    if arch not in builders:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(builders)}")
    return builders[arch](path, labels, **kwargs)


def pickle_only(path: str | os.PathLike) -> Path:
    """Turn a saved checkpoint into a legacy ``pytorch_model.bin``-only one (for pickle-refusal tests)."""
    import torch
    from safetensors.torch import load_file

    path = Path(path)
    weights = path / "model.safetensors"
    torch.save(load_file(weights), path / "pytorch_model.bin")
    weights.unlink()
    return path


def _common(labels: Sequence[str], image_size: int, patch_size: int, hidden: int, layers: int, heads: int) -> dict:
    return dict(
        image_size=image_size,
        patch_size=patch_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden * 2,
        initializer_range=0.2,  # distinct logits, so top-k orders are unambiguous in tests
        num_labels=len(labels),
        id2label={i: name for i, name in enumerate(labels)},
        label2id={name: i for i, name in enumerate(labels)},
    )


def _save(model_class, config, processor, path: str | os.PathLike, seed: int) -> Path:
    import torch

    torch.manual_seed(seed)
    model = model_class(config).eval()
    path = Path(path)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path
