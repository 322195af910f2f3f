"""Load a diffusers Stable Diffusion 1.x/2.x pipeline safely: embedded mini SD, a directory, or a hub id.

Follows :mod:`vitdream.loading` (device, dtype, offline mode, pickle opt-in): weights load from
safetensors only unless ``allow_pickle=True``; the safety checker is off; offline, a hub id that is
not in the local cache is a clear :class:`ModelLoadError`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from vitdream.errors import ModelLoadError
from vitdream.loading import PICKLE_SUFFIXES, is_hub_id, offline, offline_error, pick_device, pick_dtype, pickle_refused

EMBEDDED = "vitdream:mini-sd"
SUPPORTED_PIPELINES = {"StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline", "StableDiffusionInpaintPipeline"}


def resolve_ref(ref: str | os.PathLike | None) -> tuple[str, Path | None]:
    """``(name, local_dir)``: the name recorded in image metadata, and the directory if local."""
    if ref is None or str(ref) == EMBEDDED:
        from vitdream.assets import mini_sd_path

        return EMBEDDED, mini_sd_path()
    path = Path(ref).expanduser()
    if path.is_dir():
        from vitdream.assets import MINI_SD_DIR

        return (EMBEDDED if path.resolve() == MINI_SD_DIR.resolve() else str(path.resolve())), path
    if path.exists():
        raise ModelLoadError(f"{path}: a file, not a diffusers pipeline directory (expected model_index.json inside)")
    text = str(ref)
    if not is_hub_id(text):
        raise ModelLoadError(f"{ref}: no such directory, and not a hub id like 'owner/name'")
    return text, None


def check_pipeline_dir(path: Path, allow_pickle: bool) -> dict[str, Any]:
    """Validate a local pipeline directory; return its ``model_index.json``."""
    index_file = path / "model_index.json"
    if not index_file.is_file():
        hint = ""
        if any(path.glob("*lora*.safetensors")) or (path / "adapter_config.json").exists():
            hint = " (it looks like LoRA weights: load a base model and pass lora=this directory)"
        raise ModelLoadError(f"{path}: not a diffusers pipeline directory, model_index.json is missing{hint}")
    try:
        index = json.loads(index_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{index_file}: unreadable ({exc})") from None
    kind = index.get("_class_name", "")
    if kind not in SUPPORTED_PIPELINES:
        raise ModelLoadError(f"{path}: a {kind or 'unknown'} pipeline; vitdream generates with Stable Diffusion 1.x/2.x")
    for component in ("unet", "vae", "text_encoder"):
        folder = path / component
        if not folder.is_dir():
            raise ModelLoadError(f"{path}: the {component!r} folder is missing")
        has_safe = any(folder.glob("*.safetensors"))
        has_pickle = any(f.suffix in PICKLE_SUFFIXES for f in folder.iterdir())
        if not has_safe and not has_pickle:
            raise ModelLoadError(f"{folder}: no weights file (*.safetensors)")
        if not has_safe and not allow_pickle:
            raise pickle_refused(folder)
    return index


def load_pipeline(
    ref: str | os.PathLike | None = None,
    *,
    device: Any = None,
    dtype: Any = None,
    allow_pickle: bool = False,
    lora: str | os.PathLike | None = None,
    lora_scale: float = 1.0,
    revision: str | None = None,
    variant: str | None = None,
) -> Any:
    """A diffusers ``StableDiffusionPipeline`` ready for inference.

    ``ref``: None (the embedded mini SD), a local pipeline directory (e.g. a DreamBooth export)
    or a hub id (downloaded, or read from the HF cache when ``HF_HUB_OFFLINE=1``).
    ``lora``: LoRA weights (file or directory) applied on top with ``load_lora_weights``.
    ``revision`` (hub branch/tag/commit) and ``variant`` (e.g. ``fp16`` weights files) go to ``from_pretrained``.
    The pipeline gets a ``vitdream_model`` attribute: the name recorded in image metadata.
    """
    from diffusers import StableDiffusionPipeline

    name, local = resolve_ref(ref)
    device = pick_device(device)
    dtype = pick_dtype(dtype, device)
    kwargs: dict[str, Any] = dict(
        dtype=dtype, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )
    if not allow_pickle:
        kwargs["use_safetensors"] = True
    kwargs.update({k: v for k, v in (("revision", revision), ("variant", variant)) if v is not None})
    if local is not None:
        check_pipeline_dir(local, allow_pickle)
        source: str = str(local)
    else:
        source = name
        if offline():
            kwargs["local_files_only"] = True
    try:
        pipe = StableDiffusionPipeline.from_pretrained(source, **kwargs)
    except Exception as exc:  # diffusers/hub raise many types; say which model and why
        raise _load_error(name, local, exc) from exc
    pipe.set_progress_bar_config(disable=True)
    pipe.to(device)
    pipe.vitdream_model = name
    pipe.vitdream_loras = []
    if lora is not None:
        apply_lora(pipe, lora, scale=lora_scale, allow_pickle=allow_pickle)
    return pipe


def apply_lora(pipe: Any, lora: str | os.PathLike, *, scale: float = 1.0, allow_pickle: bool = False) -> Any:
    """Load LoRA weights (a ``.safetensors`` file or a directory holding one) onto ``pipe``."""
    path = Path(lora).expanduser()
    if not path.exists():
        raise ModelLoadError(f"{lora}: LoRA weights not found")
    if path.is_dir():
        files = sorted(path.glob("*.safetensors")) or (sorted(path.glob("*.bin")) if allow_pickle else [])
        if not files:
            raise ModelLoadError(f"{path}: no LoRA weights (*.safetensors) in this directory")
        path = files[0]
    if path.suffix != ".safetensors" and not allow_pickle:
        raise ModelLoadError(f"{path}: LoRA weights must be .safetensors (or pass allow_pickle=True)")
    loras = list(getattr(pipe, "vitdream_loras", []))
    adapter = f"lora{len(loras)}"
    try:
        pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=adapter)
        loras.append((adapter, str(path.resolve()), float(scale)))
        pipe.set_adapters([a for a, _, _ in loras], adapter_weights=[s for _, _, s in loras])
    except Exception as exc:
        raise ModelLoadError(f"{path}: could not load LoRA weights ({type(exc).__name__}: {exc})") from exc
    pipe.vitdream_loras = loras
    return pipe


def _load_error(name: str, local: Path | None, exc: Exception) -> ModelLoadError:
    reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
    if local is None and offline():
        return offline_error(name, reason)
    if local is None:
        return ModelLoadError(f"{name}: could not load this hub model ({reason})")
    if "safetensors" in reason.lower() and "use_safetensors" in reason.lower():
        return ModelLoadError(f"{local}: some weights are not in safetensors format; pass allow_pickle=True to trust them")
    return ModelLoadError(f"{local}: could not load this pipeline ({reason})")
