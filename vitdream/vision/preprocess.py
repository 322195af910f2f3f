"""Fast preprocessing equivalent to a transformers image processor.

Per image (in worker threads; Pillow releases the GIL): one PIL resize with the processor's
resample filter, then the centre crop, giving a ``uint8`` HxWx3 array. Per batch: rescale and
normalise in one vectorised step (``x * a + b``). The result matches the processor's
``pixel_values`` to float32 rounding. Processor settings this does not cover (padding, crops larger
than the image...) fall back to the processor itself, per image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


@dataclass
class Preprocessor:
    """Resize/crop (per image) + rescale/normalise (per batch), from an HF image processor."""

    processor: Any
    height: int
    width: int

    @classmethod
    def from_processor(cls, processor: Any) -> "Preprocessor":
        crop = _get(processor, "crop_size") if _get(processor, "do_center_crop") else None
        size = crop or _get(processor, "size")
        height, width = _get(size, "height"), _get(size, "width")
        if height is None:  # shortest_edge without crop: the output size varies per image
            height = width = _get(size, "shortest_edge") or 224
        return cls(processor, int(height), int(width))

    # -- per image ------------------------------------------------------------------------------
    def resize_crop(self, image: Any) -> np.ndarray:
        """An RGB PIL image -> uint8 array (height, width, 3), ready for :meth:`normalize`."""
        p = self.processor
        if _get(p, "do_pad") or _get(p, "do_reduce_labels"):
            return self._via_processor(image)
        if _get(p, "do_resize"):
            size = _get(p, "size")
            target = _resize_target(image.size, size)
            if target is None:
                return self._via_processor(image)
            resample = _get(p, "resample")
            image = image.resize((target[1], target[0]), resample=2 if resample is None else int(resample))
        arr = np.asarray(image)
        if _get(p, "do_center_crop"):
            ch, cw = int(_get(_get(p, "crop_size"), "height")), int(_get(_get(p, "crop_size"), "width"))
            h, w = arr.shape[:2]
            top, left = (h - ch) // 2, (w - cw) // 2
            if top < 0 or left < 0:
                return self._via_processor(image)
            arr = arr[top : top + ch, left : left + cw]
        if arr.shape[:2] != (self.height, self.width):
            raise ValueError(f"preprocessed image is {arr.shape[:2]}, model expects {(self.height, self.width)}")
        return np.ascontiguousarray(arr)

    def _via_processor(self, image: Any) -> np.ndarray:
        out = self.processor(images=image, return_tensors="np")["pixel_values"][0]
        return out.astype(np.float32)  # already normalised (CHW float): normalize() passes it through

    # -- per batch ------------------------------------------------------------------------------
    def normalize(self, arrays: list[np.ndarray]) -> Any:
        """uint8 HWC arrays (or processor outputs) -> float32 tensor (n, 3, height, width)."""
        import torch

        if any(a.dtype != np.uint8 for a in arrays):  # some went through the processor
            return torch.stack([self.normalize([a])[0] if a.dtype == np.uint8 else torch.from_numpy(a) for a in arrays])
        x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).to(torch.float32)
        scale, shift = self._affine()
        return (x * scale + shift).contiguous()

    def _affine(self) -> tuple[Any, Any]:
        import torch

        p = self.processor
        factor = float(_get(p, "rescale_factor") or 1 / 255) if _get(p, "do_rescale") else 1.0
        if _get(p, "do_normalize"):
            mean = torch.tensor(_get(p, "image_mean"), dtype=torch.float64).view(1, 3, 1, 1)
            std = torch.tensor(_get(p, "image_std"), dtype=torch.float64).view(1, 3, 1, 1)
        else:
            mean, std = torch.zeros(1, 3, 1, 1, dtype=torch.float64), torch.ones(1, 3, 1, 1, dtype=torch.float64)
        return (factor / std).to(torch.float32), (-mean / std).to(torch.float32)


def _resize_target(image_size: tuple[int, int], size: Any) -> tuple[int, int] | None:
    """(height, width) after the processor's resize, or None for settings handled by the processor."""
    width, height = image_size
    h, w = _get(size, "height"), _get(size, "width")
    if h and w and not _get(size, "shortest_edge"):
        return int(h), int(w)
    edge = _get(size, "shortest_edge")
    if edge and not _get(size, "longest_edge") and not _get(size, "max_height"):
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = int(edge), int(int(edge) * long / short)
        return (new_long, new_short) if width <= height else (new_short, new_long)
    return None
