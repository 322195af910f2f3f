"""Provenance: what made an image, and the settings that make it again.

- :func:`fingerprint` -- ``"sha256:..."`` of a pipeline's weights (UNet, text encoder, VAE, and the
  LoRA weights loaded on it), computed once per pipeline and LoRA set, recorded in every image.
- :func:`read_settings` (``vd.read_settings``) -- the settings stored in a PNG, in the form
  ``gen.generate(**settings)`` takes: one image of a batch is made again by regenerating its batch
  (``seed``, ``num_images``) and keeping image ``index`` -- batched float maths can differ in the
  last bits from a batch of one, so only that is bit for bit.
- :func:`check_provenance` -- ``generate`` warns when recorded weights or LoRAs are not this generator's.
"""

from __future__ import annotations

import hashlib
import warnings
from typing import Any

from vitdream.generation import pngmeta

PROVENANCE_KEYS = ("model", "weights", "loras", "index")
_COMPONENTS = ("unet", "text_encoder", "vae")


def fingerprint(pipe: Any) -> str:
    """``"sha256:<16 hex>"`` over the names, shapes, dtypes and bytes of every weight (cached on ``pipe``)."""
    import torch

    loras = tuple((path, scale) for _, path, scale in getattr(pipe, "vitdream_loras", []))
    cache = getattr(pipe, "_vitdream_fingerprints", None)
    if cache is None:
        cache = {}
        try:
            pipe._vitdream_fingerprints = cache
        except AttributeError:  # pragma: no cover -- a pipeline that refuses attributes: no cache
            pass
    if loras in cache:
        return cache[loras]
    digest = hashlib.sha256()
    for component in _COMPONENTS:
        module = getattr(pipe, component, None)
        if module is None:
            continue
        for name, tensor in sorted(module.state_dict().items()):
            digest.update(f"{component}.{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
            data = tensor.detach().to("cpu").contiguous()
            digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    cache[loras] = value = f"sha256:{digest.hexdigest()[:16]}"
    return value


def generate_settings(recorded: dict[str, Any]) -> dict[str, Any]:
    """Stored settings (:func:`vitdream.generation.pngmeta.read_settings`) -> ``generate`` keywords."""
    settings = dict(recorded)
    index = settings.pop("index", 0)
    settings.pop("image_seed", None)
    settings["loras"] = [list(x) for x in settings.get("loras", [])]
    if settings.get("num_images", 1) > 1:
        settings["index"] = index
    return settings


def read_settings(source: Any) -> dict[str, Any]:
    """The settings of a generated image (PNG path or PIL image); ``gen.generate(**settings)`` makes it again."""
    return generate_settings(pngmeta.read_settings(source))


def check_provenance(generator: Any, recorded: dict[str, Any]) -> None:
    """Warn when recorded ``weights`` or ``loras`` differ from ``generator``'s (the image will differ)."""
    weights = recorded.get("weights")
    if weights and weights != generator.fingerprint:
        warnings.warn(f"the settings were made with weights {weights} (model {recorded.get('model')!r}); this generator "
                      f"has {generator.fingerprint} ({generator.model_name!r}): the image will differ", stacklevel=4)
    loras = recorded.get("loras")
    if loras is not None and [tuple(x) for x in loras] != generator._loras():
        warnings.warn(f"the settings were made with LoRAs {[tuple(x) for x in loras]}; this generator has "
                      f"{generator._loras()}: the image will differ", stacklevel=4)
