"""Options settled when a run starts, as diffusers' scripts settle them: a random seed when ``seed`` is
None, ``max_train_steps`` from ``num_train_epochs`` when it is None, and ``validation_epochs`` in steps;
and the checks that need the machine or the files, made before the run writes anything."""

from __future__ import annotations

import math
import os
import secrets
from pathlib import Path
from typing import Any

from vitdream.errors import VitdreamError


def world_size(config: Any) -> int:
    """Processes the run will use, as far as the options say (``devices`` "auto" counts as one)."""
    devices = config.devices
    count = devices if isinstance(devices, int) else len(devices) if isinstance(devices, list) else 1
    return max(1, count) * config.num_nodes


def count_instance_images(config: Any) -> int:
    """How many instance images ``instance_data_dir`` names; a folder or glob without any is an error."""
    from vitdream.images import expand_sources

    spec = config.instance_data_dir
    sources = expand_sources(spec)
    if isinstance(spec, (str, os.PathLike)) and not any(os.path.isfile(s) for s in sources):
        raise VitdreamError(f"instance_data_dir: no usable images in {spec} (no image files there)")
    return len(sources)


def steps_per_epoch(config: Any) -> int:
    """Optimizer steps in one pass over the data, counted as ``train_dreambooth.py`` counts them: the dataset
    has ``max(instance images, class images)`` examples, batched, split over processes, accumulated."""
    examples = count_instance_images(config)
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


def drawn_seed(output_dir: Path, resuming: bool) -> int:
    """The seed of a run with ``seed=None``: the recorded one when resuming; in a DDP worker that Lightning
    launched, the one rank 0 drew (``PL_GLOBAL_SEED``); else a fresh random one."""
    if resuming and (seed := previous_seed(output_dir)) is not None:
        return seed
    if os.environ.get("LOCAL_RANK", "0") != "0" and os.environ.get("PL_GLOBAL_SEED", "").isdigit():
        return int(os.environ["PL_GLOBAL_SEED"])
    return secrets.randbelow(2**31)


def check_precision(config: Any) -> None:
    """fp16 mixed precision needs a GPU (Lightning refuses it on CPU): say so before anything is written."""
    import torch

    on_cpu = config.accelerator == "cpu" or (config.accelerator == "auto" and not torch.cuda.is_available())
    if config.mixed_precision == "fp16" and on_cpu:
        raise VitdreamError("mixed_precision: fp16 needs a GPU (PyTorch Lightning does not run 16-mixed on CPU); "
                            "use bf16 or no")


def settle_run_options(config: Any, output_dir: Path, resuming: bool) -> None:
    """Check the instance images and the precision; fill in ``seed``, ``max_train_steps`` and (LoRA)
    ``validation_steps`` from their diffusers-style settings."""
    count_instance_images(config)
    check_precision(config)
    if config.seed is None:
        config.seed = drawn_seed(output_dir, resuming)
    per_epoch = None
    if config.max_train_steps is None:
        per_epoch = steps_per_epoch(config)
        config.max_train_steps = config.num_train_epochs * per_epoch
    if getattr(config, "validation_epochs", None) is not None:
        config.validation_steps = config.validation_epochs * (per_epoch or steps_per_epoch(config))
