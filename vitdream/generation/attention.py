"""Per-token cross-attention maps (DAAM, Tang et al. 2023) recorded through diffusers attention processors.

While :func:`record_attention` is active, every attention processor of the UNet is wrapped: the
wrapper leaves the output untouched (the original processor still computes it, so images are bit
for bit those made without recording) and, for cross-attention calls only, computes the attention
probabilities of the *conditional* half of the batch, averages them over heads, upsamples them to
the latent grid and adds them up over layers and timesteps. :class:`AttentionMaps` holds the result
per image and maps words of the prompt to token positions.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from vitdream.errors import VitdreamError
from vitdream.generation.attention_maps import AttentionMaps, word_tokens

__all__ = ["AttentionMaps", "AttentionStore", "record_attention", "word_tokens"]


class AttentionStore:
    """Sums of cross-attention probabilities, ``(num_images, tokens, latent_h, latent_w)``."""

    def __init__(self, num_images: int, latent_size: tuple[int, int]) -> None:
        self.num_images = num_images
        self.latent_size = latent_size
        self.total: Any = None
        self.calls = 0

    def record(self, attn: Any, hidden_states: Any, encoder_hidden_states: Any) -> None:
        """Add the head-averaged attention probabilities of the last ``num_images`` rows (the conditional half)."""
        import torch.nn.functional as F

        n = self.num_images
        hidden = hidden_states[-n:]
        if hidden.ndim == 4:
            b, c, h, w = hidden.shape
            hidden = hidden.view(b, c, h * w).transpose(1, 2)
        if attn.group_norm is not None:
            hidden = attn.group_norm(hidden.transpose(1, 2)).transpose(1, 2)
        context = encoder_hidden_states[-n:]
        if attn.norm_cross:
            context = attn.norm_encoder_hidden_states(context)
        query = attn.head_to_batch_dim(attn.to_q(hidden))
        key = attn.head_to_batch_dim(attn.to_k(context))
        probs = attn.get_attention_scores(query, key, None)  # (n * heads, pixels, tokens)
        pixels, tokens = probs.shape[1], probs.shape[2]
        probs = probs.view(n, -1, pixels, tokens).mean(dim=1).float()
        lat_h, lat_w = self.latent_size
        factor = round((lat_h * lat_w / pixels) ** 0.5)
        grid = probs.transpose(1, 2).reshape(n, tokens, lat_h // factor, lat_w // factor)
        if factor != 1:
            grid = F.interpolate(grid, size=(lat_h, lat_w), mode="bilinear", align_corners=False)
        self.total = grid if self.total is None else self.total + grid
        self.calls += 1

    def maps(self) -> Any:
        """The mean map per image and token, a float32 ``(num_images, tokens, latent_h, latent_w)`` array."""
        import numpy as np

        if self.total is None:
            raise VitdreamError("attention maps: no cross-attention was recorded: does this UNet have cross-attention layers?")
        return (self.total / self.calls).cpu().numpy().astype(np.float32)


class _Recording:
    """An attention processor that records cross-attention into a store, then runs the original processor."""

    def __init__(self, inner: Any, store: AttentionStore) -> None:
        self.inner = inner
        self.store = store

    def __call__(self, attn: Any, hidden_states: Any, encoder_hidden_states: Any = None, attention_mask: Any = None,
                 temb: Any = None, **kwargs: Any) -> Any:
        if encoder_hidden_states is not None:
            self.store.record(attn, hidden_states, encoder_hidden_states)
        if temb is not None:
            kwargs["temb"] = temb
        return self.inner(attn, hidden_states, encoder_hidden_states=encoder_hidden_states,
                          attention_mask=attention_mask, **kwargs)


@contextmanager
def record_attention(unet: Any, num_images: int, latent_size: tuple[int, int]) -> Iterator[AttentionStore]:
    """Within the block, the UNet's cross-attention is recorded into the yielded store; its processors
    are restored on exit (also after an error or a cancellation)."""
    originals = dict(unet.attn_processors)
    store = AttentionStore(num_images, latent_size)
    unet.set_attn_processor({name: _Recording(proc, store) for name, proc in originals.items()})
    try:
        yield store
    finally:
        unet.set_attn_processor(originals)
