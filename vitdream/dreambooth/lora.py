"""``LoRADreamBoothTrainer`` (plugin id ``dreambooth-lora``): DreamBooth training LoRA adapters only (peft).

Same data, loss, checkpoints and events as :class:`~vitdream.dreambooth.trainer.DreamBoothTrainer`; the
base weights stay frozen, so checkpoints hold only the adapters and their optimizer state. ``export(dir)``
writes ``pytorch_lora_weights.safetensors`` that diffusers' ``pipe.load_lora_weights(dir)`` accepts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Optional

from pydantic import Field

from vitdream.dreambooth.config import DreamBoothConfig
from vitdream.dreambooth.module import DreamBoothModule
from vitdream.dreambooth.trainer import DreamBoothTrainer

UNET_TARGETS = ["to_k", "to_q", "to_v", "to_out.0"]
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


class LoRAConfig(DreamBoothConfig):
    """DreamBooth options plus the LoRA ones (names as diffusers' ``train_dreambooth_lora.py``)."""

    DIFFUSERS_SCRIPT: ClassVar[str] = "lora"
    rank: int = Field(4, ge=1, description="LoRA rank (dimension of the update matrices)")
    lora_alpha: Optional[float] = Field(None, gt=0, description="default: rank (scale 1)")
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    learning_rate: float = Field(1e-4, gt=0)
    train_text_encoder: bool = False
    validation_epochs: Optional[int] = Field(
        None, ge=1, description="validate every N passes over the data (replaces validation_steps when set)"
    )


class LoRADreamBoothModule(DreamBoothModule):
    """Freezes the base weights and trains peft LoRA adapters on the UNet (and text encoder) attention."""

    def _freeze(self) -> None:
        from peft import LoraConfig

        c = self.config
        self.vae.requires_grad_(False)
        self.unet.requires_grad_(False)
        self.text_encoder.requires_grad_(False)
        alpha = c.lora_alpha or c.rank

        def adapter(targets: list[str]) -> Any:
            return LoraConfig(r=c.rank, lora_alpha=alpha, lora_dropout=c.lora_dropout,
                              init_lora_weights="gaussian", target_modules=targets)

        self.unet.add_adapter(adapter(UNET_TARGETS))
        if c.train_text_encoder:
            add_text_encoder_adapter(self.text_encoder, adapter(TEXT_TARGETS))
        if c.gradient_checkpointing:
            self.unet.enable_gradient_checkpointing()

    def train(self, mode: bool = True) -> "LoRADreamBoothModule":
        super().train(mode)
        self.text_encoder.train(mode and self.config.train_text_encoder)
        return self

    def lora_state_dicts(self) -> dict[str, Any]:
        """``unet_lora_layers`` (and ``text_encoder_lora_layers``) in diffusers' key format."""
        from diffusers.utils import convert_state_dict_to_diffusers
        from peft.utils import get_peft_model_state_dict

        layers = {"unet_lora_layers": convert_state_dict_to_diffusers(get_peft_model_state_dict(self.unet))}
        if self.config.train_text_encoder and not self.config.skip_save_text_encoder:
            layers["text_encoder_lora_layers"] = convert_state_dict_to_diffusers(get_peft_model_state_dict(self.text_encoder))
        return layers


def add_text_encoder_adapter(text_encoder: Any, config: Any) -> None:
    """``text_encoder.add_adapter(config)``; with a peft older than transformers wants, what it does:
    inject the LoRA layers in place and record the config (``get_peft_model_state_dict`` reads it)."""
    try:
        text_encoder.add_adapter(config)
    except ValueError as exc:
        if "PEFT" not in str(exc):
            raise
        from peft import inject_adapter_in_model

        inject_adapter_in_model(config, text_encoder, adapter_name="default")
        text_encoder.peft_config = {"default": config}


class LoRADreamBoothTrainer(DreamBoothTrainer):
    """DreamBooth with LoRA adapters (peft); exports LoRA safetensors for ``load_lora_weights``."""

    id: ClassVar[str] = "dreambooth-lora"
    Options: ClassVar[type[LoRAConfig]] = LoRAConfig

    def build_module(self, components: dict[str, Any]) -> LoRADreamBoothModule:
        return LoRADreamBoothModule(self.config, components)

    def _save_pipeline(self, module: Any, directory: Path) -> None:
        from diffusers import StableDiffusionPipeline

        StableDiffusionPipeline.save_lora_weights(str(directory), safe_serialization=True, **module.lora_state_dicts())
