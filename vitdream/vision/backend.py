"""``transformers-vit``: ViT-family classifiers and embedders (ViT, DeiT, BEiT, ...) from transformers."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, ClassVar, Literal, Optional

import numpy as np

from vitdream.base import Classifier, Embedder, ImageBackendOptions, Options
from vitdream.base.batching import as_sources
from vitdream.errors import VitdreamError
from vitdream.images import load_image

VIT_FAMILY = frozenset({"vit", "deit", "beit", "data2vec-vision", "dinov2", "vit_msn", "vit_mae", "dinov2_with_registers"})


class ViTOptions(ImageBackendOptions):
    device: str = "auto"  # "auto" (see vitdream.loading: CUDA, else MPS, else CPU), "cpu", "cuda", "cuda:1", ...
    dtype: str = "auto"  # "auto" (float16 on CUDA/MPS, float32 on CPU), "float32", "float16", "bfloat16"
    allow_pickle: bool = False  # allow legacy pytorch_model.bin weights (can run arbitrary code)
    revision: Optional[str] = None  # hub revision (branch, tag or commit)
    cache_dir: Optional[str] = None  # Hugging Face hub cache (default: $HF_HUB_CACHE)
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

    # -- the model steps the base classes call (see vitdream.base.vision) ----------------------------
    def _prepare(self, image: Any) -> np.ndarray:
        return self.preprocessor.resize_crop(image)

    def _scores(self, prepared: list[np.ndarray]) -> np.ndarray:
        return self.scores(self.preprocessor.normalize(prepared))

    def _embed(self, prepared: list[np.ndarray], layer: int, pool: str) -> np.ndarray:
        return self._embed_pixels(self.preprocessor.normalize(prepared), layer, pool)

    # -- classification -----------------------------------------------------------------------
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
        batches = [self.preprocessor.normalize(b.arrays) for b in self._batches(as_sources(images), [], kind)]
        report = compare(self, runner, batches, kind, size_mb)
        self.runner, self.options.speedup = runner, kind
        return report

    # -- embeddings ---------------------------------------------------------------------------
    # ``embed`` is the base class's. ``layer=-1``: the encoder output after the final LayerNorm (what
    # the head sees); ``layer=k`` (0..num_layers): ``hidden_states[k]`` as transformers returns them
    # (0 = patch embeddings; ``num_layers`` = last block, before the final LayerNorm). ``pool="cls"``:
    # the first (CLS) token, never the pooler; ``pool="mean"``: mean of the patch tokens (CLS and
    # distillation tokens excluded).
    @property
    def embedding_dim(self) -> int:
        return int(self.model.config.hidden_size)

    def _check_layer(self, layer: int) -> None:
        if not isinstance(layer, int) or not (layer == -1 or 0 <= layer <= self.num_layers):
            raise VitdreamError(f"layer must be -1 (final, after LayerNorm) or 0..{self.num_layers} (got {layer!r})")

    def _embed_pixels(self, pixel_values: Any, layer: int, pool: str) -> np.ndarray:
        import torch

        base = self.model.base_model
        with torch.inference_mode():
            out = base(pixel_values=pixel_values.to(self.device, self.dtype), output_hidden_states=layer != -1)
            hidden = out.last_hidden_state if layer == -1 else out.hidden_states[layer]
            if pool == "cls":
                vectors = hidden[:, 0]
            else:
                vectors = hidden[:, hidden.shape[1] - self._num_patches() :].mean(dim=1)
        return vectors.float().cpu().numpy()

    def _num_patches(self) -> int:
        embeddings = getattr(self.model.base_model, "embeddings", None)
        patches = getattr(getattr(embeddings, "patch_embeddings", None), "num_patches", None)
        if patches is None:
            config = self.model.config
            patches = (config.image_size // config.patch_size) ** 2
        return int(patches)

    def _identity(self) -> dict[str, Any]:
        """Model type, weights fingerprint and input size (``describe()`` adds backend, model, layer, pool, normalize, dim)."""
        return {
            "model_type": self.model.config.model_type,
            "weights": self.weights_fingerprint(),
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

        pixels = self.preprocessor.normalize(self._prepared_one(image)).to(self.device, self.dtype)
        with eager_attention(self.model), torch.inference_mode():
            out = self.model.base_model(pixel_values=pixels, output_attentions=True)
        if not out.attentions:
            raise VitdreamError(f"{self.model.config.model_type} models do not return attention weights")
        relevance = rollout([a.float().cpu().numpy() for a in out.attentions], head_fusion)
        return token_grid(relevance[0], self._num_patches())

    def model_view(self, image: Any) -> np.ndarray:
        """The uint8 (H, W, 3) image the model sees after resizing and cropping."""
        return self.preprocessor.resize_crop(load_image(image))
