"""Resume from a ``checkpoint-N/`` folder written by diffusers' ``train_dreambooth[_lora].py``.

Those folders are accelerate states: ``unet/`` and ``text_encoder/`` (full fine-tune; diffusers /
transformers ``save_pretrained``) or ``pytorch_lora_weights.safetensors`` (LoRA), plus ``optimizer.bin``,
``scheduler.bin`` and RNG states. :func:`convert_reference_checkpoint` turns one into a vitdream
(Lightning) checkpoint: trained weights, AdamW moments, LR-schedule position and step ``N``. Weights
load from safetensors only; ``optimizer.bin``/``scheduler.bin`` are read with ``weights_only=True``
(plain tensors and numbers; ``allow_pickle`` lifts that). Not carried over: the reference's data order
and RNG states (vitdream's sample stream continues from step ``N``) and an fp16 ``GradScaler`` state.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from vitdream.errors import VitdreamError

_FOLDER = re.compile(r"^checkpoint-(\d+)$")
LORA_WEIGHTS = "pytorch_lora_weights.safetensors"


def is_reference_checkpoint(path: Path) -> bool:
    """A ``checkpoint-N`` folder holding a UNet or LoRA weights as the diffusers scripts save them."""
    return path.is_dir() and bool(_FOLDER.match(path.name)) and ((path / "unet").is_dir() or (path / LORA_WEIGHTS).is_file())


def find_reference_checkpoint(value: str | os.PathLike, output_dir: str | os.PathLike) -> Path | None:
    """The folder ``value`` names: itself, or (as the diffusers scripts read it) ``output_dir/basename(value)``."""
    path = Path(value).expanduser()
    for candidate in (path, Path(output_dir).expanduser() / path.name):
        if is_reference_checkpoint(candidate):
            return candidate
    return None


def latest_reference_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The newest ``output_dir/checkpoint-N`` folder of a diffusers run, if any."""
    found = [(int(m.group(1)), p) for p in Path(output_dir).expanduser().glob("checkpoint-*")
             if (m := _FOLDER.match(p.name)) and is_reference_checkpoint(p)]
    return max(found)[1] if found else None


def checkpoint_step(folder: Path) -> int:
    match = _FOLDER.match(folder.name)
    if match is None:
        raise VitdreamError(f"{folder}: not a checkpoint-<step> folder")
    return int(match.group(1))


def _load_state(path: Path, allow_pickle: bool) -> Any:
    import pickle

    import torch

    if not path.is_file():
        raise VitdreamError(f"{path}: missing; a diffusers checkpoint folder holds optimizer.bin and scheduler.bin")
    try:
        return torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except pickle.UnpicklingError as exc:
        raise VitdreamError(f"{path}: holds more than tensors and numbers, so it is not loaded without "
                            f"allow_pickle=True (only for files you trust): {str(exc).splitlines()[0]}") from None


def _full_weights(folder: Path, module: Any) -> dict[str, Any]:
    from diffusers import UNet2DConditionModel

    weights = {f"unet.{k}": v for k, v in
               UNet2DConditionModel.from_pretrained(str(folder / "unet"), use_safetensors=True).state_dict().items()}
    if module.config.train_text_encoder:
        if not (folder / "text_encoder").is_dir():
            raise VitdreamError(f"{folder}: no text_encoder/ in this checkpoint, but train_text_encoder is on; "
                                "resume with train_text_encoder=False (as the run that wrote it)")
        text_encoder = type(module.text_encoder).from_pretrained(str(folder / "text_encoder"), use_safetensors=True)
        weights.update({f"text_encoder.{k}": v for k, v in text_encoder.state_dict().items()})
    elif (folder / "text_encoder").is_dir():
        raise VitdreamError(f"{folder}: this checkpoint trained the text encoder; resume with train_text_encoder=True")
    return weights


def _lora_weights(folder: Path, module: Any) -> dict[str, Any]:
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_unet_state_dict_to_peft
    from peft import set_peft_model_state_dict

    state, _ = StableDiffusionPipeline.lora_state_dict(str(folder), weight_name=LORA_WEIGHTS)  # as the LoRA script
    unet = {k[len("unet."):]: v for k, v in state.items() if k.startswith("unet.")}
    set_peft_model_state_dict(module.unet, convert_unet_state_dict_to_peft(unet), adapter_name="default")
    has_text = any(k.startswith("text_encoder.") for k in state)
    if has_text != bool(module.config.train_text_encoder):
        raise VitdreamError(f"{folder}: text-encoder LoRA layers {'present' if has_text else 'absent'}; resume with "
                            f"train_text_encoder={has_text} (as the run that wrote it)")
    if has_text:
        from diffusers.training_utils import _set_state_dict_into_text_encoder

        _set_state_dict_into_text_encoder(state, prefix="text_encoder.", text_encoder=module.text_encoder)
    keep = module.trainable_state_keys()
    return {k: v.detach().clone() for k, v in module.state_dict().items() if k in keep}


def lightning_loops_state(step: int, accumulation: int) -> dict[str, Any]:
    """Lightning's loop counters as they stand in a vitdream checkpoint saved at optimizer step ``step``."""
    import pytorch_lightning as pl

    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    loops = {name: getattr(trainer, name).state_dict() for name in ("fit_loop", "validate_loop", "test_loop", "predict_loop")}
    fit, batches = loops["fit_loop"], step * accumulation
    for part in ("total", "current"):
        fit["epoch_loop.batch_progress"][part].update(ready=batches, started=batches, processed=batches, completed=batches - 1)
        fit["epoch_loop.scheduler_progress"][part].update(ready=step, completed=step)
        optimizer = fit["epoch_loop.automatic_optimization.optim_progress"]["optimizer"]
        optimizer["step"][part].update(ready=step, completed=step)
        optimizer["zero_grad"][part].update(ready=step, completed=step, started=step)
        fit["epoch_progress"][part].update(ready=1, started=1)
    fit["epoch_loop.state_dict"]["_batches_that_stepped"] = step - 1
    return loops


def convert_reference_checkpoint(folder: Path, module: Any, out: Path, accumulation: int, allow_pickle: bool = False) -> Path:
    """Write ``out``: a vitdream checkpoint with the state of the diffusers ``folder`` (for ``module``'s run)."""
    import pytorch_lightning as pl

    from vitdream.lightning import AtomicCheckpointIO

    step = checkpoint_step(folder)
    is_lora = (folder / LORA_WEIGHTS).is_file() and not (folder / "unet").is_dir()
    if is_lora != hasattr(module, "lora_state_dicts"):
        raise VitdreamError(f"{folder}: a {'LoRA' if is_lora else 'full fine-tune'} checkpoint; resume it with the "
                            f"{'dreambooth-lora' if is_lora else 'dreambooth'} trainer")
    weights = _lora_weights(folder, module) if is_lora else _full_weights(folder, module)
    missing = sorted(module.trainable_state_keys() - set(weights))
    if missing:
        raise VitdreamError(f"{folder}: {len(missing)} trainable weights of this run are not in the checkpoint "
                            f"(first: {missing[0]}); was it made with other options (LoRA rank, train_text_encoder)?")
    optimizer = _load_state(folder / "optimizer.bin", allow_pickle)
    saved, expected = len(optimizer["param_groups"][0]["params"]), len(module.trainable_parameters())
    if len(optimizer["param_groups"]) != 1 or saved != expected:
        raise VitdreamError(f"{folder}/optimizer.bin: optimizes {saved} tensors, this run trains {expected}; "
                            "was it made with other options (LoRA rank, train_text_encoder)?")
    checkpoint = {
        "epoch": 0, "global_step": step, "pytorch-lightning_version": pl.__version__,
        "state_dict": weights, "loops": lightning_loops_state(step, accumulation),
        "optimizer_states": [optimizer], "lr_schedulers": [_load_state(folder / "scheduler.bin", allow_pickle)],
        "dreambooth": {"trainer": type(module).__name__, "seed": module.config.seed, "converted_from": str(folder)},
    }
    AtomicCheckpointIO().save_checkpoint(checkpoint, out)
    return out
