"""``transformers-vit``: ViT-family classifiers and embedders (ViT, DeiT, BEiT, ...) from transformers."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, ClassVar, Literal, Optional

import numpy as np
from pydantic import Field

from vitdream.base import Classifier, Embedder, Options, Prediction
from vitdream.errors import VitdreamError
from vitdream.images import load_image
from vitdream.vision import inference
from vitdream.vision.results import Classifications, Embeddings, top_k

VIT_FAMILY = frozenset({"vit", "deit", "beit", "data2vec-vision", "dinov2", "vit_msn", "vit_mae", "dinov2_with_registers"})


class ViTOptions(Options):
    model: Optional[str] = None  # hub id, local directory, or None for the embedded mini ViT
    device: str = "auto"  # "auto" (CUDA if present), "cpu", "cuda", "cuda:1", ...
    dtype: str = "auto"  # "auto" (float16 on CUDA, float32 on CPU), "float32", "float16", "bfloat16"
    allow_pickle: bool = False  # allow legacy pytorch_model.bin weights (can run arbitrary code)
    revision: Optional[str] = None  # hub revision (branch, tag or commit)
    cache_dir: Optional[str] = None  # Hugging Face hub cache (default: $HF_HUB_CACHE)
    batch_size: int = Field(16, ge=1)
    workers: Optional[int] = Field(None, ge=1)  # decode/preprocess threads (default: min(4, CPUs))
    progress: Optional[bool] = None  # None: a progress bar from 64 images on
    speedup: Optional[Literal["int8", "onnx", "onnx-int8"]] = None  # classify() through a faster runtime


class TransformersViT(Classifier, Embedder):
    """ViT, DeiT, BEiT ... image classifiers and embedders from transformers."""

    id: ClassVar[str] = "transformers-vit"
    tasks: ClassVar[frozenset[str]] = frozenset({"classify", "embed"})
    Options: ClassVar[type[Options]] = ViTOptions

    def __init__(self, model: Any = None, **options: Any) -> None:
        if isinstance(model, os.PathLike):
            model = os.fspath(model)
        super().__init__(model=model, **options)
        from vitdream.vision.loading import load_model
        from vitdream.vision.preprocess import Preprocessor

        o = self.options
        self.model, self.processor, self.model_dir = load_model(
            o.model, allow_pickle=o.allow_pickle, revision=o.revision, cache_dir=o.cache_dir, device=o.device, dtype=o.dtype
        )
        self.preprocessor = Preprocessor.from_processor(self.processor)
        self.device = next(self.model.parameters()).device
        self.dtype = next(self.model.parameters()).dtype
        self.runner: Any = None  # a speed-up (see vitdream.vision.speedups) replacing the torch forward
        if o.speedup:
            from vitdream.vision.speedups import make_runner

            self.runner = make_runner(self, o.speedup)[0]
        self._embed_settings: dict[str, Any] = {"layer": -1, "pool": "cls", "normalize": False}

    @classmethod
    def accepts(cls, model: str | None) -> bool:
        """Any ViT-family directory, the embedded default, or a hub id (checked when loaded)."""
        if model is None:
            return True
        config = Path(model).expanduser() / "config.json"
        if not config.exists():
            return True  # a hub id, or a broken path that loading will explain
        try:
            return json.loads(config.read_text()).get("model_type") in VIT_FAMILY
        except (OSError, ValueError):
            return False

    # -- metadata -----------------------------------------------------------------------------
    @property
    def labels(self) -> list[str]:
        id2label = self.model.config.id2label
        return [str(id2label[i]) for i in range(len(id2label))]

    @property
    def num_layers(self) -> int:
        return int(self.model.config.num_hidden_layers)

    def __repr__(self) -> str:
        return f"TransformersViT(model={self.options.model!r}, device={self.device}, dtype={self.dtype})"

    # -- classification -----------------------------------------------------------------------
    def classify(self, images: Any, top_k: int = 5) -> list[Prediction] | Classifications:
        """Top-k predictions. One image -> ``list[Prediction]`` (bad input raises
        :class:`~vitdream.errors.ImageLoadError`); a list/folder/glob -> :class:`Classifications`
        (one entry per input, ``None`` for bad ones, reported in ``.failures``)."""
        if top_k < 1:
            raise VitdreamError(f"top_k must be at least 1 (got {top_k})")
        if inference.is_single(images):
            return self._top_k_rows(self.scores(self._pixels_one(images)), top_k)[0]
        sources = inference.as_sources(images)
        out: list[Any] = [None] * len(sources)
        failures: list = []
        for batch in self._batches(sources, failures, "classify"):
            for i, preds in zip(batch.indices, self._top_k_rows(self.scores(self.preprocessor.normalize(batch.arrays)), top_k)):
                out[i] = preds
        return Classifications(out, sorted(failures, key=lambda f: f.index))

    def logits(self, pixel_values: Any) -> np.ndarray:
        """float32 logits (n, num_labels) for preprocessed ``pixel_values``."""
        import torch

        if self.runner is not None:
            return np.asarray(self.runner(pixel_values), dtype=np.float32)
        with torch.inference_mode():
            out = self.model(pixel_values=pixel_values.to(self.device, self.dtype)).logits
        return out.float().cpu().numpy()

    def scores(self, pixel_values: Any) -> np.ndarray:
        """Class scores as ``transformers.pipeline("image-classification")`` computes them."""
        logits = self.logits(pixel_values)
        config = self.model.config
        if config.problem_type == "regression":
            return logits
        if config.problem_type == "multi_label_classification" or config.num_labels == 1:
            return 1.0 / (1.0 + np.exp(-logits))
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True)

    def _top_k_rows(self, scores: np.ndarray, k: int) -> list[list[Prediction]]:
        id2label = self.model.config.id2label
        return [top_k(row, id2label, k) for row in scores]

    def speed_up(self, kind: str | None, images: Any = None) -> Any:
        """Switch :meth:`classify` to ``kind`` ("int8", "onnx", "onnx-int8"; None = back to the
        model) and return a :class:`~vitdream.vision.speedups.SpeedupReport` measured on ``images``
        (default: 64 held-out images of the embedded shapes world). Embeddings and attention maps
        always use the full-precision model."""
        from vitdream.vision.speedups import compare, make_runner

        if kind is None:
            self.runner, self.options.speedup = None, None
            return None
        runner, size_mb = make_runner(self, kind)
        if images is None:
            from vitdream.datasets import shapes

            images = [item["image"] for item in shapes(64, seed=20)]
        batches = [self.preprocessor.normalize(b.arrays) for b in self._batches(inference.as_sources(images), [], kind)]
        report = compare(self, runner, batches, kind, size_mb)
        self.runner, self.options.speedup = runner, kind
        return report

    # -- embeddings ---------------------------------------------------------------------------
    def embed(self, images: Any, layer: int = -1, pool: str = "cls", normalize: bool = False) -> Embeddings:
        """float32 ``(n, dim)`` embeddings (see :class:`~vitdream.vision.results.Embeddings`).

        ``layer=-1``: the encoder output after the final LayerNorm (what the head sees);
        ``layer=k`` (0..num_layers): ``hidden_states[k]`` as transformers returns them (0 = patch
        embeddings; ``num_layers`` = last block, before the final LayerNorm).
        ``pool="cls"``: the first (CLS) token, never the pooler; ``pool="mean"``: mean of the patch
        tokens (CLS/distillation tokens excluded). ``normalize=True``: L2-normalised rows.
        One image gives a ``(1, dim)`` array and raises on bad input.
        """
        self._check_embed_args(layer, pool)
        self._embed_settings = {"layer": layer, "pool": pool, "normalize": bool(normalize)}
        if inference.is_single(images):
            return Embeddings.wrap(self._embed_pixels(self._pixels_one(images), layer, pool, normalize), [0], [])
        sources = inference.as_sources(images)
        rows, indices, failures = [], [], []
        for batch in self._batches(sources, failures, "embed"):
            rows.append(self._embed_pixels(self.preprocessor.normalize(batch.arrays), layer, pool, normalize))
            indices.extend(batch.indices)
        dim = self.embedding_dim
        array = np.concatenate(rows) if rows else np.zeros((0, dim), np.float32)
        return Embeddings.wrap(array, indices, sorted(failures, key=lambda f: f.index))

    @property
    def embedding_dim(self) -> int:
        return int(self.model.config.hidden_size)

    def _check_embed_args(self, layer: int, pool: str) -> None:
        if pool not in ("cls", "mean"):
            raise VitdreamError(f"pool must be 'cls' or 'mean' (got {pool!r})")
        if not isinstance(layer, int) or not (layer == -1 or 0 <= layer <= self.num_layers):
            raise VitdreamError(f"layer must be -1 (final, after LayerNorm) or 0..{self.num_layers} (got {layer!r})")

    def _embed_pixels(self, pixel_values: Any, layer: int, pool: str, normalize: bool) -> np.ndarray:
        import torch

        base = self.model.base_model
        with torch.inference_mode():
            out = base(pixel_values=pixel_values.to(self.device, self.dtype), output_hidden_states=layer != -1)
            hidden = out.last_hidden_state if layer == -1 else out.hidden_states[layer]
            if pool == "cls":
                vectors = hidden[:, 0]
            else:
                vectors = hidden[:, hidden.shape[1] - self._num_patches() :].mean(dim=1)
            vectors = vectors.float()
            if normalize:
                vectors = torch.nn.functional.normalize(vectors, dim=-1)
        return vectors.cpu().numpy()

    def _num_patches(self) -> int:
        embeddings = getattr(self.model.base_model, "embeddings", None)
        patches = getattr(getattr(embeddings, "patch_embeddings", None), "num_patches", None)
        if patches is None:
            config = self.model.config
            patches = (config.image_size // config.patch_size) ** 2
        return int(patches)

    def describe(self, **settings: Any) -> dict[str, Any]:
        """What identifies the embedding space: backend, model ref, weights fingerprint, layer, pool,
        dim, normalize (defaults: the settings of the last :meth:`embed` call)."""
        current = {**self._embed_settings, **settings}
        return {
            "backend": self.id,
            "model": self.options.model,
            "model_type": self.model.config.model_type,
            "weights": self.weights_fingerprint(),
            "layer": current["layer"],
            "pool": current["pool"],
            "normalize": current["normalize"],
            "dim": self.embedding_dim,
            "image_size": [self.preprocessor.height, self.preprocessor.width],
        }

    def weights_fingerprint(self) -> str:
        """sha256 of the weight files' sizes and first/last MiB (cheap, stable across copies)."""
        if not hasattr(self, "_fingerprint"):
            digest = hashlib.sha256()
            for path in sorted(Path(self.model_dir).glob("*.safetensors")) + sorted(Path(self.model_dir).glob("*.bin")):
                size = path.stat().st_size
                digest.update(f"{path.name}:{size}".encode())
                with open(path, "rb") as fh:
                    digest.update(fh.read(1 << 20))
                    fh.seek(max(0, size - (1 << 20)))
                    digest.update(fh.read())
            self._fingerprint = digest.hexdigest()[:16]
        return self._fingerprint

    # -- attention ------------------------------------------------------------------------------
    def attention_map(self, image: Any, head_fusion: str = "mean") -> np.ndarray:
        """Attention rollout of one image: a (grid, grid) float32 map in [0, 1] over the patches
        of :meth:`model_view` (eager attention for this call only; SDPA otherwise)."""
        import torch

        from vitdream.vision.attention import eager_attention, rollout, token_grid

        pixels = self._pixels_one(image).to(self.device, self.dtype)
        with eager_attention(self.model), torch.inference_mode():
            out = self.model.base_model(pixel_values=pixels, output_attentions=True)
        if not out.attentions:
            raise VitdreamError(f"{self.model.config.model_type} models do not return attention weights")
        relevance = rollout([a.float().cpu().numpy() for a in out.attentions], head_fusion)
        return token_grid(relevance[0], self._num_patches())

    def model_view(self, image: Any) -> np.ndarray:
        """The uint8 (H, W, 3) image the model sees after resizing and cropping."""
        return self.preprocessor.resize_crop(load_image(image))

    # -- shared input path ----------------------------------------------------------------------
    def _pixels_one(self, image: Any) -> Any:
        """One image -> pixel_values (1, 3, H, W); raises ImageLoadError naming it."""
        return self.preprocessor.normalize([self.preprocessor.resize_crop(load_image(image))])

    def _batches(self, sources: list[Any], failures: list, desc: str):
        o = self.options
        return inference.iter_batches(
            sources, self.preprocessor.resize_crop, o.batch_size, failures, workers=o.workers, progress=o.progress, desc=desc
        )
