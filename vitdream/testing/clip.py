"""A tiny, randomly initialised CLIP built in code (no downloads), saved as a hub-style directory."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from vitdream.testing.sd import DEFAULT_WORDS, tiny_clip_tokenizer


def make_tiny_clip(path: str | Path, words: Iterable[str] = DEFAULT_WORDS, image_size: int = 32, seed: int = 0) -> Path:
    """Write a ``CLIPModel`` (width 32, 2 layers, patch 8), its tokenizer and PIL image processor to ``path``."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

    torch.manual_seed(seed)
    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=77)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=image_size,
                  patch_size=8)
    tokenizer = tiny_clip_tokenizer(words)
    text["vocab_size"] = len(tokenizer)
    text["eos_token_id"] = tokenizer.eos_token_id
    text["bos_token_id"] = tokenizer.bos_token_id
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).eval()
    path = Path(path)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    size = {"shortest_edge": image_size}
    CLIPImageProcessorPil(size=size, crop_size={"height": image_size, "width": image_size}).save_pretrained(path)
    return path
