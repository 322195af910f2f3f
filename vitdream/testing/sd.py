"""Tiny, randomly initialised Stable Diffusion pipelines built in code (no downloads).

``tiny_sd_pipeline()`` returns a diffusers ``StableDiffusionPipeline`` in memory;
``make_tiny_sd(path)`` saves one with ``save_pretrained`` (safetensors) and returns ``path``.

The tokenizer is a real ``CLIPTokenizer`` whose vocabulary holds every printable ASCII character
(so any ASCII prompt tokenizes) plus BPE merges that make each of ``words`` a single token
(so ``"a photo of sks dog"`` is five tokens, as with a real CLIP vocabulary).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Iterable

DEFAULT_WORDS: tuple[str, ...] = (
    "a", "an", "the", "photo", "of", "on", "in", "with", "and", "sks", "dog", "cat", "person", "beach",
    "red", "green", "blue", "yellow", "circle", "square", "triangle", "small", "large", "background",
)
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def write_clip_vocab(directory: str | Path, words: Iterable[str] = DEFAULT_WORDS) -> Path:
    """Write ``vocab.json`` and ``merges.txt`` for a CLIP BPE tokenizer into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    chars = [chr(c) for c in range(33, 127)]  # printable ASCII except space: byte-level BPE maps them to themselves
    vocab: dict[str, int] = {}
    for token in [*chars, *(c + "</w>" for c in chars)]:
        vocab.setdefault(token, len(vocab))
    merges: list[str] = []
    for word in dict.fromkeys(w.lower() for w in words):
        if len(word) < 2 or not word.isascii() or not word.isalnum():
            continue
        symbols = [*word[:-1], word[-1] + "</w>"]
        while len(symbols) > 1:  # merge left to right: "d o", "do g</w>" -> "dog</w>"
            pair = f"{symbols[0]} {symbols[1]}"
            if pair not in merges:
                merges.append(pair)
            symbols = [symbols[0] + symbols[1], *symbols[2:]]
            vocab.setdefault(symbols[0], len(vocab))
    for special in (BOS, EOS):
        vocab.setdefault(special, len(vocab))
    (directory / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return directory


def tiny_clip_tokenizer(words: Iterable[str] = DEFAULT_WORDS, max_length: int = 77) -> Any:
    """A ``CLIPTokenizer`` with whole-word tokens for ``words``."""
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        write_clip_vocab(tmp, words)
        return CLIPTokenizer(
            vocab=str(Path(tmp) / "vocab.json"), merges=str(Path(tmp) / "merges.txt"), model_max_length=max_length
        )


def tiny_sd_pipeline(
    words: Iterable[str] = DEFAULT_WORDS,
    *,
    seed: int = 0,
    unet_channels: tuple[int, ...] = (32, 64),
    vae_channels: tuple[int, ...] = (32, 64),
    sample_size: int = 8,
    text_hidden: int = 32,
    text_layers: int = 2,
    max_length: int = 77,
) -> Any:
    """A randomly initialised ``StableDiffusionPipeline`` (safety checker off, DDIM scheduler).

    Native image size is ``sample_size * 2 ** (len(vae_channels) - 1)`` pixels (16 by default).
    """
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = tiny_clip_tokenizer(words, max_length)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=4,
        out_channels=4,
        block_out_channels=unet_channels,
        layers_per_block=2,
        down_block_types=("DownBlock2D",) * (len(unet_channels) - 1) + ("CrossAttnDownBlock2D",),
        up_block_types=("CrossAttnUpBlock2D",) + ("UpBlock2D",) * (len(unet_channels) - 1),
        cross_attention_dim=text_hidden,
        attention_head_dim=8,
        norm_num_groups=min(32, unet_channels[0]),
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=vae_channels,
        down_block_types=("DownEncoderBlock2D",) * len(vae_channels),
        up_block_types=("UpDecoderBlock2D",) * len(vae_channels),
        latent_channels=4,
        norm_num_groups=min(32, vae_channels[0]),
        sample_size=sample_size * 2 ** (len(vae_channels) - 1),
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=text_hidden,
            intermediate_size=text_hidden * 2,
            num_hidden_layers=text_layers,
            num_attention_heads=4,
            max_position_embeddings=max_length,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def make_tiny_sd(path: str | Path, words: Iterable[str] = DEFAULT_WORDS, seed: int = 0, **sizes: Any) -> Path:
    """Save a tiny pipeline (safetensors) to ``path`` and return it; ``sizes`` go to :func:`tiny_sd_pipeline`."""
    path = Path(path)
    words = tuple(words)
    tiny_sd_pipeline(words, seed=seed, **sizes).save_pretrained(path, safe_serialization=True)
    write_clip_vocab(path / "tokenizer", words)  # also the slow-tokenizer files, as hub SD repos have
    return path


def make_tiny_lora(pipeline_dir: str | Path, out: str | Path, *, rank: int = 4, std: float = 0.3, seed: int = 0) -> Path:
    """Save LoRA weights (diffusers format, safetensors) for the UNet of the pipeline in ``pipeline_dir``
    into the directory ``out``; its B matrices are random (``std``), so the LoRA changes the images."""
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = UNet2DConditionModel.from_pretrained(Path(pipeline_dir) / "unet", use_safetensors=True)
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=["to_k", "to_q", "to_v", "to_out.0"]))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if "lora_B" in name:  # LoRA starts as a no-op (B = 0); make it change the output
                param.copy_(torch.randn(param.shape, generator=generator) * std)
    StableDiffusionPipeline.save_lora_weights(
        out, unet_lora_layers=convert_state_dict_to_diffusers(get_peft_model_state_dict(unet)))
    return Path(out) / "pytorch_lora_weights.safetensors"
