"""Resolve a model reference (None, hub id, HF cache, local directory) and load it safely.

Follows :mod:`vitdream.loading` (device, dtype, offline mode, pickle opt-in): safetensors weights
are preferred; pickle weights (``pytorch_model.bin``) are refused unless ``allow_pickle=True``;
offline, a hub id that is not in the local cache fails at once with a clear ModelLoadError.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterator

from vitdream.errors import ModelLoadError
from vitdream.loading import is_hub_id, offline, offline_error, pick_device, pick_dtype, pickle_refused

SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")
_META_PATTERNS = ["*.json", "*.txt"]


def default_model_path() -> Path:
    """The embedded mini ViT (``vitdream.assets.mini_vit_path()``)."""
    from vitdream.assets import mini_vit_path

    return mini_vit_path()


def resolve_model_dir(
    ref: str | os.PathLike | None, allow_pickle: bool = False, revision: str | None = None, cache_dir: str | None = None
) -> Path:
    """A local directory holding the model's config, processor and (safe) weights."""
    if ref is None:
        return _checked_dir(default_model_path(), "the embedded mini ViT", allow_pickle)
    path = Path(ref).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(f"{path}: not a model directory (expected a folder with config.json and weights)")
        return _checked_dir(path, str(path), allow_pickle)
    text = os.fspath(ref)
    if not is_hub_id(text):
        raise ModelLoadError(f"{text}: no such model directory")
    return _checked_dir(_snapshot(text, allow_pickle, revision, cache_dir), text, allow_pickle)


def _snapshot(repo_id: str, allow_pickle: bool, revision: str | None, cache_dir: str | None = None) -> Path:
    """Download (or find in the cache) the hub repo's config, processor and safetensors weights."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError, RepositoryNotFoundError

    local_only = offline()
    patterns = _META_PATTERNS + ["*.safetensors"]
    try:
        get = lambda allow: Path(  # noqa: E731
            snapshot_download(repo_id, revision=revision, allow_patterns=allow, local_files_only=local_only, cache_dir=cache_dir)
        )
        folder = get(patterns)
        if allow_pickle and not _has_any(folder, SAFE_WEIGHTS):
            folder = get(patterns + ["*.bin"])
    except LocalEntryNotFoundError:
        if local_only:
            raise offline_error(repo_id) from None
        raise ModelLoadError(f"{repo_id}: could not reach the Hugging Face Hub and it is not in the local cache") from None
    except HFValidationError as exc:
        raise ModelLoadError(f"{repo_id}: neither an existing directory nor a valid hub id ({exc})") from None
    except RepositoryNotFoundError:
        raise ModelLoadError(f"{repo_id}: no such model on the Hugging Face Hub (or it is private)") from None
    except OSError as exc:
        raise ModelLoadError(f"{repo_id}: download failed ({exc})") from None
    return folder


def _has_any(folder: Path, names: tuple[str, ...]) -> bool:
    return any((folder / name).exists() for name in names)


def _checked_dir(folder: Path, label: str, allow_pickle: bool) -> Path:
    if not (folder / "config.json").exists():
        raise ModelLoadError(f"{label}: no config.json in {folder} (not a transformers model directory)")
    if _has_any(folder, SAFE_WEIGHTS):
        return folder
    if _has_any(folder, PICKLE_WEIGHTS):
        if allow_pickle:
            return folder
        raise pickle_refused(label)
    raise ModelLoadError(f"{label}: no weights found in {folder} (expected model.safetensors)")


def load_model(
    ref: str | os.PathLike | None,
    *,
    allow_pickle: bool = False,
    revision: str | None = None,
    cache_dir: str | None = None,
    device: Any = "auto",
    dtype: Any = "auto",
    attn_implementation: str = "sdpa",
) -> tuple[Any, Any, Path]:
    """(model in eval mode on its device, image processor, local directory)."""
    from transformers import AutoModelForImageClassification

    folder = resolve_model_dir(ref, allow_pickle=allow_pickle, revision=revision, cache_dir=cache_dir)
    device = pick_device(device)
    torch_dtype = pick_dtype(dtype, device)
    safe = _has_any(folder, SAFE_WEIGHTS)
    with quiet_transformers():
        try:
            model = AutoModelForImageClassification.from_pretrained(
                folder, use_safetensors=safe, dtype=torch_dtype, attn_implementation=attn_implementation
            )
        except ValueError as exc:
            if "attn" not in str(exc).lower() and "sdpa" not in str(exc).lower():
                raise ModelLoadError(f"{ref or folder}: cannot load as an image classifier ({exc})") from None
            model = AutoModelForImageClassification.from_pretrained(folder, use_safetensors=safe, dtype=torch_dtype)
        except (OSError, KeyError) as exc:
            raise ModelLoadError(f"{ref or folder}: cannot load as an image classifier ({exc})") from None
    return model.to(device).eval(), load_processor(folder, ref), folder


def load_processor(folder: Path, ref: Any = None) -> Any:
    """The model's image processor, PIL backend (torchvision is not required)."""
    from transformers import AutoImageProcessor

    try:
        return AutoImageProcessor.from_pretrained(folder, backend="pil")
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"{ref or folder}: no usable preprocessor_config.json ({exc})") from None


@contextlib.contextmanager
def quiet_transformers(errors_only: bool = False) -> Iterator[None]:
    """No per-tensor "Loading weights" progress bars (and, with ``errors_only``, no warnings) inside."""
    from transformers.utils import logging as hf_logging

    was_enabled, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    if errors_only:
        hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if was_enabled:
            hf_logging.enable_progress_bar()
