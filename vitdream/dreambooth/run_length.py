"""Options settled when a run starts, as diffusers' scripts settle them: a random seed when ``seed`` is
None, ``max_train_steps`` from ``num_train_epochs`` when it is None, and ``validation_epochs`` in steps."""

from __future__ import annotations

import math
import secrets
from pathlib import Path
from typing import Any


def world_size(config: Any) -> int:
    """Processes the run will use, as far as the options say (``devices`` "auto" counts as one)."""
    devices = config.devices
    count = devices if isinstance(devices, int) else len(devices) if isinstance(devices, list) else 1
    return max(1, count) * config.num_nodes


def steps_per_epoch(config: Any) -> int:
    """Optimizer steps in one pass over the data, counted as ``train_dreambooth.py`` counts them: the dataset
    has ``max(instance images, class images)`` examples, batched, split over processes, accumulated."""
    from vitdream.images import expand_sources

    examples = len(expand_sources(config.instance_data_dir))
    if config.prior_preservation:
        examples = max(examples, config.num_class_images)
    batches = math.ceil(math.ceil(examples / config.train_batch_size) / world_size(config))
    return max(1, math.ceil(batches / config.gradient_accumulation_steps))


def previous_seed(output_dir: Path) -> int | None:
    """The seed recorded in ``output_dir/config.yaml`` by an earlier fit of this run."""
    import yaml

    path = output_dir / "config.yaml"
    if not path.is_file():
        return None
    seed = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("seed")
    return seed if isinstance(seed, int) else None


def settle_run_options(config: Any, output_dir: Path, resuming: bool) -> None:
    """Fill in ``seed``, ``max_train_steps`` and (LoRA) ``validation_steps`` from their diffusers-style settings."""
    if config.seed is None:
        config.seed = (previous_seed(output_dir) if resuming else None) or secrets.randbelow(2**31)
    per_epoch = None
    if config.max_train_steps is None:
        per_epoch = steps_per_epoch(config)
        config.max_train_steps = config.num_train_epochs * per_epoch
    if getattr(config, "validation_epochs", None) is not None:
        config.validation_steps = config.validation_epochs * (per_epoch or steps_per_epoch(config))
