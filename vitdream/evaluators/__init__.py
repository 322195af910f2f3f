"""Built-in evaluators (the ``register_evaluators`` plugin kind) and how a name becomes one.

- ``vit-embedding``: subject fidelity, the mean cosine similarity of each image's embedding to the reference
  images' (any ViT through ``vd.load_embedder``: the embedded mini ViT, ``facebook/dino-vits16`` for the
  DreamBooth paper's DINO score);
- ``clip``: CLIP-I (image-image) and CLIP-T (image-prompt) cosine similarities with any CLIP checkpoint;
- ``shapes-world``: whether each image shows what its shapes-world prompt names (prompt fidelity).
"""

from __future__ import annotations

from vitdream.components import load_evaluator, load_evaluators

__all__ = ["load_evaluator", "load_evaluators"]
