"""``clip``: the DreamBooth paper's CLIP-I and CLIP-T with any CLIP checkpoint (safetensors, loading policy)."""

from __future__ import annotations

from typing import Any, ClassVar, Optional

import numpy as np

from vitdream.base import Evaluator, Options
from vitdream.evaluation import cosine_matrix


class ClipOptions(Options):
    model: str = "openai/clip-vit-base-patch32"  # a hub id or a local CLIP directory
    allow_pickle: bool = False
    revision: Optional[str] = None
    batch_size: int = 16


class ClipEvaluator(Evaluator):
    """CLIP-I: mean cosine similarity of each image's CLIP embedding to the references'; CLIP-T: to its prompt's."""

    id: ClassVar[str] = "clip"
    Options: ClassVar[type[Options]] = ClipOptions
    metrics: ClassVar[tuple[str, ...]] = ("clip_i", "clip_t")
    provides: ClassVar[dict[str, str]] = {"subject_fidelity": "clip_i", "prompt_fidelity": "clip_t"}

    _parts: Any = None

    def _load(self) -> tuple[Any, Any, Any]:
        if self._parts is None:
            from transformers import AutoTokenizer, CLIPModel

            from vitdream.errors import ModelLoadError
            from vitdream.vision.loading import load_processor, quiet_transformers, resolve_model_dir

            folder = resolve_model_dir(self.options.model, self.options.allow_pickle, self.options.revision)
            with quiet_transformers():
                try:
                    model = CLIPModel.from_pretrained(folder, use_safetensors=not self.options.allow_pickle or None).eval()
                    tokenizer = AutoTokenizer.from_pretrained(folder)
                except (OSError, ValueError, KeyError) as exc:
                    raise ModelLoadError(f"{self.options.model}: cannot load as a CLIP model ({exc})") from None
            self._parts = (model, tokenizer, load_processor(folder, self.options.model))
        return self._parts

    def _embed(self, images: list[Any]) -> np.ndarray:
        import torch

        model, _, processor = self._load()
        rows = []
        with torch.inference_mode():
            for i in range(0, len(images), self.options.batch_size):
                pixels = processor(images=images[i : i + self.options.batch_size], return_tensors="pt")["pixel_values"]
                rows.append(_features(model.get_image_features(pixel_values=pixels)))
        return np.concatenate(rows).astype(np.float64)

    def embed_text(self, prompts: list[str]) -> np.ndarray:
        """``(len(prompts), dim)`` CLIP text embeddings."""
        import torch

        model, tokenizer, _ = self._load()
        tokens = tokenizer(list(prompts), padding=True, truncation=True, return_tensors="pt")
        with torch.inference_mode():
            return _features(model.get_text_features(**tokens)).astype(np.float64)

    def _score(self, images: list[Any], prompts: list[str] | None, references: list[Any] | None) -> dict[str, Any]:
        vectors = self._embed(images)
        nan = np.full(len(images), np.nan)
        clip_i = cosine_matrix(vectors, self._embed(references)).mean(axis=1) if references else nan
        clip_t = np.einsum("ij,ij->i", *(_unit(v) for v in (vectors, self.embed_text(prompts)))) if prompts else nan
        return {"clip_i": clip_i, "clip_t": clip_t}


def _features(output: Any) -> np.ndarray:
    """transformers 5 may return a model output instead of a tensor: its pooled projection."""
    tensor = output if hasattr(output, "numpy") else getattr(output, "pooler_output", None)
    if tensor is None:
        tensor = output[0]
    return tensor.float().cpu().numpy()


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
