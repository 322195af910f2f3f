"""Validated generation settings: checked before any compute, and recorded in PNG metadata."""

from __future__ import annotations

import math
import secrets
from typing import Any

from pydantic import Field, field_validator

from vitdream.base import Options

MAX_SEED = 2**63 - 1
#: short names people type for built-in samplers -> the registered id (recorded in metadata)
SAMPLER_ALIASES = {"dpm++": "dpm-solver++", "dpmpp": "dpm-solver++", "euler-a": "euler-ancestral", "euler_a": "euler-ancestral"}
A1111_SAMPLER_NAMES = {"ddim": "DDIM", "euler": "Euler", "euler-ancestral": "Euler a", "dpm-solver++": "DPM++ 2M"}


class GenerationSettings(Options):
    """Everything that determines a generated image (with the model and its LoRAs).

    ``seed`` is the seed of the first image; image ``i`` of a batch uses ``seed + i`` (as in
    the AUTOMATIC1111 web UI), so any image can be regenerated alone.
    """

    prompt: str
    negative_prompt: str = ""
    guidance_scale: float = Field(7.5, ge=0.0, le=100.0)
    guidance_rescale: float = Field(0.0, ge=0.0, le=1.0)
    steps: int = Field(25, ge=1, le=1000)
    seed: int = Field(default_factory=lambda: secrets.randbelow(2**32), ge=0, le=MAX_SEED)
    sampler: str = "ddim"
    sampler_options: dict[str, Any] = Field(default_factory=dict)
    num_images: int = Field(1, ge=1, le=64)
    height: int = Field(512, ge=8, le=4096)
    width: int = Field(512, ge=8, le=4096)
    model: str = ""
    weights: str = ""  # the weights' fingerprint (vitdream.generation.provenance.fingerprint)
    loras: list[tuple[str, float]] = Field(default_factory=list)

    @field_validator("prompt")
    @classmethod
    def _prompt_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the prompt is empty; describe the image to generate")
        return value

    @field_validator("sampler")
    @classmethod
    def _sampler_alias(cls, value: str) -> str:
        return SAMPLER_ALIASES.get(value.lower(), value) if isinstance(value, str) else value

    @field_validator("guidance_scale", "guidance_rescale")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @field_validator("height", "width")
    @classmethod
    def _multiple_of_8(cls, value: int) -> int:
        if value % 8:
            raise ValueError(f"must be a multiple of 8 (try {max(8, value // 8 * 8)} or {value // 8 * 8 + 8})")
        return value

    @property
    def cfg(self) -> bool:
        """Whether classifier-free guidance runs (scale > 1); otherwise the unconditional pass is skipped."""
        return self.guidance_scale > 1.0

    def for_image(self, index: int) -> dict[str, Any]:
        """The settings recorded in image ``index`` of this batch."""
        return {**self.model_dump(), "index": index, "image_seed": self.seed + index}

    def a1111_parameters(self, index: int = 0) -> str:
        """The ``parameters`` text the AUTOMATIC1111 web UI writes (and can read back)."""
        lines = [self.prompt]
        if self.negative_prompt:
            lines.append(f"Negative prompt: {self.negative_prompt}")
        fields = [
            f"Steps: {self.steps}",
            f"Sampler: {A1111_SAMPLER_NAMES.get(self.sampler, self.sampler)}",
            f"CFG scale: {self.guidance_scale:g}",
            f"Seed: {self.seed + index}",
            f"Size: {self.width}x{self.height}",
            f"Model: {self.model}",
        ]
        if self.weights:
            fields.append(f"Model hash: {self.weights.removeprefix('sha256:')[:10]}")
        if self.loras:
            fields.append("Lora: " + "; ".join(f"{path}:{scale:g}" for path, scale in self.loras))
        if self.guidance_rescale:
            fields.append(f"CFG rescale: {self.guidance_rescale:g}")
        lines.append(", ".join(fields))
        return "\n".join(lines)
