"""The one loading policy every backend follows: device, dtype, offline mode, pickle opt-in, hub ids
and vitdream's cache folder. Light at import (torch is imported inside the functions that need it).

- device ``None``/``"auto"``: CUDA when present, else Apple MPS, else the CPU;
- dtype ``None``/``"auto"``: float16 on CUDA/MPS, float32 on the CPU (bf16 emulation is slow there);
- offline when ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` is set to 1/true/yes/on (read at call time);
- pickle weights (``.bin``, ``.ckpt``...) only with ``allow_pickle=True``: loading them can run code;
- a hub id looks like ``name`` or ``owner/name``; anything starting with ``.``, ``/`` or ``~`` is a path;
- vitdream's cache: ``$VITDREAM_CACHE``, else ``$XDG_CACHE_HOME/vitdream``, else ``~/.cache/vitdream``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from vitdream.errors import ModelLoadError

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl")
_TRUE = {"1", "true", "yes", "on"}
_HUB_ID = re.compile(r"^[\w.\-]+(/[\w.\-]+)?$")


def offline_variable() -> str | None:
    """The environment variable that puts vitdream offline (``HF_HUB_OFFLINE`` first), or None."""
    for name in OFFLINE_VARIABLES:
        if os.environ.get(name, "").strip().lower() in _TRUE:
            return name
    return None


def offline() -> bool:
    """Whether the Hugging Face Hub must not be contacted."""
    return offline_variable() is not None


def offline_error(name: str, reason: str = "") -> ModelLoadError:
    """The error for a hub id that is not cached while offline."""
    detail = f" [{reason}]" if reason else ""
    return ModelLoadError(
        f"{name}: no local directory of that name, not in the local Hugging Face cache, and "
        f"{offline_variable() or OFFLINE_VARIABLES[0]}=1 forbids downloading it "
        f"(download it once online, or pass a local directory){detail}"
    )


def is_hub_id(text: str) -> bool:
    """``name`` or ``owner/name`` (never something that looks like a path)."""
    return not text.startswith((".", "/", "~")) and bool(_HUB_ID.match(text))


def pickle_refused(where: str | os.PathLike) -> ModelLoadError:
    """The error for weights found only in pickle format without ``allow_pickle=True``."""
    return ModelLoadError(
        f"{where}: weights are only in pickle format (.bin), which can run code when loaded; "
        "convert them to safetensors or pass allow_pickle=True if you trust the source"
    )


def pick_device(device: Any = None) -> Any:
    """``device`` as a ``torch.device``; None or ``"auto"``: CUDA, else MPS, else CPU."""
    import torch

    if device is not None and str(device) != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(dtype: Any, device: Any) -> Any:
    """``dtype`` (a torch dtype or its name); None or ``"auto"``: float16 on CUDA/MPS, float32 on CPU."""
    import torch

    if dtype is None or dtype == "auto":
        return torch.float16 if torch.device(device).type in ("cuda", "mps") else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    value = getattr(torch, str(dtype).replace("torch.", ""), None)
    if not isinstance(value, torch.dtype):
        raise ModelLoadError(f"dtype {dtype!r} is not a torch dtype (use 'auto', 'float32', 'float16' or 'bfloat16')")
    return value


def cache_dir(*parts: str) -> Path:
    """vitdream's own cache folder (ONNX exports, class images, thumbnails), joined with ``parts``."""
    root = os.environ.get("VITDREAM_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vitdream"
    )
    return Path(root, *parts)
