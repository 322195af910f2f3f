"""The embedded "shapes world" models shipped inside the package (Hugging Face formats).

``mini_vit_path()`` -- a ``ViTForImageClassification`` directory (config, safetensors, preprocessor).
``mini_sd_path()`` -- a diffusers ``StableDiffusionPipeline`` directory.
Both are produced by the scripts in ``scripts/`` (see ``docs/shapes_world.md``).
"""

from __future__ import annotations

from pathlib import Path

from vitdream.errors import ModelLoadError

ASSETS_DIR = Path(__file__).resolve().parent
MINI_VIT_DIR = ASSETS_DIR / "mini-vit"
MINI_SD_DIR = ASSETS_DIR / "mini-sd"


def _checked(path: Path, what: str, script: str) -> Path:
    if not (path / "model_index.json").exists() and not (path / "config.json").exists():
        raise ModelLoadError(f"{path}: the embedded {what} is missing; train it with `python {script}`")
    return path


def mini_vit_path() -> Path:
    """Directory of the embedded mini ViT (the default of ``load_classifier``/``load_embedder``)."""
    return _checked(MINI_VIT_DIR, "mini ViT", "scripts/train_mini_vit.py")


def mini_sd_path() -> Path:
    """Directory of the embedded mini Stable Diffusion (the default of ``load_generator``)."""
    return _checked(MINI_SD_DIR, "mini Stable Diffusion", "scripts/train_mini_sd.py")
