"""DreamBooth options, named as in diffusers' ``train_dreambooth.py``; loadable from YAML.

Every option is a keyword argument of :func:`vitdream.dreambooth` and a key of a YAML config.
Validation happens when the run is created, before anything is written: an unknown key or a bad
value raises :class:`~vitdream.errors.OptionsError` naming the key.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, ClassVar, Literal, Optional, Union

import pydantic
from pydantic import AliasChoices, Field

from vitdream.base.options import Options
from vitdream.errors import OptionsError

MIXED_PRECISION_TO_LIGHTNING = {"no": "32-true", "fp16": "16-mixed", "bf16": "bf16-mixed"}
#: Defaults that replace diffusers' (made for SD 1.5, a model ~200x larger) when the base is the embedded
#: mini SD (``base=None``): a 20x larger learning rate, more steps and a heavier prior-preservation loss, so
#: that "sks" comes to mean the subject while "a star" stays a star -- chosen with
#: ``scripts/dreambooth_sweep.py`` (``scripts/logs/dreambooth_sweep.json``); 3.4 minutes on 2 CPU cores, class images included.
#: Options given explicitly always win.
EMBEDDED_BASE_DEFAULTS: dict[str, Any] = {
    "learning_rate": 1e-4, "max_train_steps": 1200, "num_class_images": 100, "prior_loss_weight": 2.0,
    "validation_steps": 400, "cache_latents": True, "fused_adam": True,
}
LR_SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup")
#: The std of the offset noise that diffusers' boolean ``--offset_noise`` switches on.
DIFFUSERS_OFFSET_NOISE = 0.1
VALIDATION_SCHEDULERS = ("DPMSolverMultistepScheduler", "DDPMScheduler")
#: Options that need an optional package: (package, what to know).
NEEDS_PACKAGE = {
    "enable_xformers_memory_efficient_attention": ("xformers", "without the flag PyTorch's scaled-dot-product attention is used"),
    "use_8bit_adam": ("bitsandbytes", "its 8-bit AdamW is made for CUDA GPUs"),
}


def _alias(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class DreamBoothConfig(Options):
    """Options of a DreamBooth run (diffusers ``train_dreambooth.py`` names; friendly aliases in brackets).

    ``diffusers_defaults=True`` takes the diffusers script's defaults for every option not given
    (:data:`DIFFUSERS_SCRIPT`); otherwise vitdream's (and :data:`EMBEDDED_BASE_DEFAULTS` for the embedded base).
    """

    model_config = pydantic.ConfigDict(
        extra="forbid", validate_assignment=True, arbitrary_types_allowed=True, populate_by_name=True
    )
    #: Which diffusers script ``diffusers_defaults`` follows: ``"full"`` (train_dreambooth.py) or ``"lora"``.
    DIFFUSERS_SCRIPT: ClassVar[str] = "full"

    diffusers_defaults: bool = Field(False, description="take the diffusers script's defaults for options not given")

    # -- what to train on -----------------------------------------------------------------------------
    pretrained_model_name_or_path: Optional[str] = Field(
        None, validation_alias=_alias("pretrained_model_name_or_path", "base"),
        description="[base] None = embedded mini SD; a hub id; or a local diffusers directory",
    )
    revision: Optional[str] = Field(None, description="hub revision (branch, tag or commit) of the base")
    variant: Optional[str] = Field(None, description="weights variant of the base, e.g. fp16 (*.fp16.safetensors)")
    tokenizer_name: Optional[str] = Field(None, description="a tokenizer (hub id or folder) instead of the base's")
    allow_pickle: bool = Field(False, description="allow loading .bin (pickle) weights of a base you trust")
    instance_data_dir: Union[str, list[Any], None] = Field(
        None, validation_alias=_alias("instance_data_dir", "instance_images"),
        description="[instance_images] folder, glob or list of the 3-5 subject images",
    )
    instance_prompt: str = Field("a photo of sks dog", min_length=1)
    class_prompt: Optional[str] = None
    with_prior_preservation: Optional[bool] = Field(None, description="default: on when class_prompt is given")
    class_data_dir: Optional[str] = Field(None, description="default: a cache folder keyed by base and class prompt")
    num_class_images: int = Field(100, ge=1)
    prior_loss_weight: float = Field(1.0, ge=0)
    sample_batch_size: int = Field(4, ge=1)
    prior_generation_precision: Optional[Literal["no", "fp32", "fp16", "bf16"]] = None
    class_inference_steps: int = Field(25, ge=1)
    output_dir: str = "dreambooth-model"
    seed: Optional[int] = Field(0, description="None: a random seed, drawn once and recorded in config.yaml")
    resolution: Optional[int] = Field(None, ge=8, description="default: the base model's native size")
    center_crop: bool = False
    random_flip: bool = False
    tokenizer_max_length: Optional[int] = Field(None, ge=1)
    text_encoder_use_attention_mask: bool = False

    # -- what is trained, and how ------------------------------------------------------------------
    train_text_encoder: bool = True
    pre_compute_text_embeddings: Optional[bool] = Field(
        None, description="encode prompts once (default: when the text encoder is frozen); refused with train_text_encoder"
    )
    cache_latents: bool = False
    train_batch_size: int = Field(1, ge=1)
    max_train_steps: Optional[int] = Field(
        400, ge=1, validation_alias=_alias("max_train_steps", "max_steps"),
        description="None: num_train_epochs passes over the data (as diffusers)",
    )
    num_train_epochs: int = Field(1, ge=1, description="used when max_train_steps is None")
    gradient_accumulation_steps: int = Field(1, ge=1)
    gradient_checkpointing: bool = False
    learning_rate: float = Field(5e-6, gt=0)
    text_encoder_lr: Optional[float] = Field(
        None, gt=0, description="learning rate of the text encoder (default: learning_rate), as diffusers' advanced scripts"
    )
    scale_lr: bool = False
    lr_scheduler: Literal[LR_SCHEDULERS] = "constant"  # type: ignore[valid-type]
    lr_warmup_steps: int = Field(0, ge=0)
    lr_num_cycles: int = Field(1, ge=1)
    lr_power: float = 1.0
    use_8bit_adam: bool = False
    fused_adam: bool = Field(
        False, description="PyTorch's fused AdamW kernel: ~20% faster steps for small models on CPU, the same update "
        "within float rounding (1e-7); diffusers' scripts use the unfused one"
    )
    adam_beta1: float = Field(0.9, ge=0, lt=1)
    adam_beta2: float = Field(0.999, ge=0, lt=1)
    adam_weight_decay: float = Field(1e-2, ge=0)
    adam_epsilon: float = Field(1e-8, gt=0)
    max_grad_norm: Optional[float] = Field(1.0, gt=0)
    set_grads_to_none: bool = Field(True, description="zero_grad(set_to_none=...); diffusers' default is False")
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    allow_tf32: bool = Field(False, description="TF32 matmuls on Ampere+ GPUs (no effect on CPU)")
    enable_xformers_memory_efficient_attention: bool = False
    offset_noise: float = Field(
        0.0, ge=0, description=f"std of per-channel offset noise; true = diffusers' {DIFFUSERS_OFFSET_NOISE}, false = 0"
    )
    snr_gamma: Optional[float] = Field(None, gt=0, description="min-SNR weighting gamma (5.0 recommended)")
    class_labels_conditioning: Optional[Literal["timesteps"]] = Field(
        None, description="'timesteps': pass the timesteps as class labels (UNets with a class embedding)"
    )

    # -- checkpoints, validation, logging, export ---------------------------------------------------
    checkpointing_steps: int = Field(500, ge=1)
    checkpoints_total_limit: Optional[int] = Field(None, ge=1)
    resume_from_checkpoint: Optional[str] = Field(
        None, description="'latest', a vitdream .ckpt, or a diffusers checkpoint-N folder"
    )
    validation_prompt: Union[str, list[str], None] = None
    num_validation_images: int = Field(4, ge=1)
    validation_steps: Optional[int] = Field(100, ge=1, description="validate every N steps; None: no validation")
    validation_inference_steps: int = Field(25, ge=1)
    validation_guidance_scale: float = Field(7.5, ge=0)
    validation_scheduler: Optional[Literal[VALIDATION_SCHEDULERS]] = Field(  # type: ignore[valid-type]
        None, description="scheduler of validation previews (default: the base model's)"
    )
    report_to: list[Literal["tensorboard", "csv", "wandb"]] = ["tensorboard", "csv"]
    logging_dir: str = Field("logs", description="log folder, relative to output_dir")

    # -- live evaluation (docs/dreambooth.md "Knowing when to stop") ------------------------------
    evaluators: Optional[list[Any]] = Field(
        None, description="evaluator ids / {'id': ..., **options} / Evaluator objects scoring each validation set; "
                          "None: vit-embedding (+ shapes-world on the embedded base); []: no metrics")
    evaluation_prompts: Optional[list[str]] = Field(
        None, description="the subject prompts of the validation set (default: the instance prompt, and it "
                          "on a blue and on a white background)")
    evaluation_num_images: int = Field(2, ge=2, description="images per prompt (fixed seeds seed, seed+1, ...)")
    evaluation_inference_steps: int = Field(15, ge=1)
    copy_threshold: float = Field(0.99, gt=0, le=1, description="cosine similarity to an instance image from which "
                                                                "a validation sample counts as a copy")
    max_prompt_fidelity_drop: float = Field(0.1, ge=0, description="best step: prompt fidelity >= base model's minus this")
    max_drift: float = Field(0.1, ge=0, description="best step: PRES <= base model's plus this")
    early_stopping_patience: Optional[int] = Field(None, ge=1, description="stop after this many validations "
                                                                             "without a new best step")
    log_every_n_steps: int = Field(1, ge=1)
    skip_save_text_encoder: bool = Field(False, description="export without the text encoder")

    # -- refused (diffusers flags vitdream does not do; see reference.REFUSED) ------------------------
    push_to_hub: bool = False
    hub_token: Optional[str] = None
    hub_model_id: Optional[str] = None
    validation_images: Optional[list[str]] = None

    # -- scale-out (Lightning) --------------------------------------------------------------------
    accelerator: str = "auto"
    devices: Union[int, str, list[int]] = "auto"
    strategy: str = "auto"
    num_nodes: int = Field(1, ge=1)
    dataloader_num_workers: int = Field(0, ge=0)
    local_rank: int = Field(-1, description="no effect (as in diffusers): the launcher's LOCAL_RANK is used")

    @pydantic.model_validator(mode="before")
    @classmethod
    def _preset_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        given = {ALIASES.get(key, key) for key in data}
        if data.get("hub_token"):
            data = {**data, "hub_token": "<hidden>"}  # refused below; never echo a token in an error message
        if data.get("diffusers_defaults"):
            from vitdream.dreambooth.reference import diffusers_defaults

            preset = {k: v for k, v in diffusers_defaults(cls.DIFFUSERS_SCRIPT).items() if k in cls.model_fields}
            return {**{k: v for k, v in preset.items() if k not in given}, **data}
        if not any(data.get(k) is not None for k in ("pretrained_model_name_or_path", "base")):
            return {**{k: v for k, v in EMBEDDED_BASE_DEFAULTS.items() if k not in given}, **data}
        return data

    @pydantic.field_validator("report_to", mode="before")
    @classmethod
    def _split_report_to(cls, value: Any) -> Any:
        import importlib.util

        if value == "all":  # as diffusers: every integration that is installed
            return ["tensorboard", "csv"] + (["wandb"] if importlib.util.find_spec("wandb") else [])
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @pydantic.field_validator("report_to")
    @classmethod
    def _wandb_installed(cls, value: list[str]) -> list[str]:
        import importlib.util

        if "wandb" in value and importlib.util.find_spec("wandb") is None:
            raise ValueError("'wandb' needs the wandb package, which is not installed (pip install wandb)")
        return value

    @pydantic.field_validator("mixed_precision", mode="before")
    @classmethod
    def _no_mixed_precision(cls, value: Any) -> Any:
        return "no" if value is None else value  # diffusers' None: accelerate's config, "no" without one

    @pydantic.field_validator("offset_noise", mode="before")
    @classmethod
    def _offset_noise_switch(cls, value: Any) -> Any:
        if isinstance(value, bool):  # diffusers' flag is a switch, not a number: true means std 0.1
            return DIFFUSERS_OFFSET_NOISE if value else 0.0
        return value

    @pydantic.field_validator("push_to_hub", "hub_token", "hub_model_id", "validation_images")
    @classmethod
    def _refused(cls, value: Any, info: pydantic.ValidationInfo) -> Any:
        if value:
            from vitdream.dreambooth.reference import REFUSED

            raise ValueError(f"not supported: {REFUSED[info.field_name]}")
        return value

    @pydantic.field_validator("enable_xformers_memory_efficient_attention", "use_8bit_adam")
    @classmethod
    def _package_installed(cls, value: bool, info: pydantic.ValidationInfo) -> bool:
        import importlib.util

        package, why = NEEDS_PACKAGE[info.field_name]
        if value and importlib.util.find_spec(package) is None:
            raise ValueError(f"needs the {package} package, which is not installed (pip install {package}; {why})")
        return value

    @pydantic.model_validator(mode="after")
    def _check_combination(self) -> "DreamBoothConfig":
        if self.fused_adam and self.use_8bit_adam:
            raise ValueError("fused_adam: PyTorch's fused AdamW and bitsandbytes' 8-bit AdamW are two optimizers; pick one")
        if self.text_encoder_lr is not None and not self.train_text_encoder:
            raise ValueError("text_encoder_lr: the text encoder is frozen (train_text_encoder is false)")
        if self.with_prior_preservation and not self.class_prompt:
            raise ValueError("with_prior_preservation needs class_prompt")
        if self.instance_data_dir is None:
            raise ValueError("instance_data_dir (instance_images) is required: a folder, glob or list of images")
        if self.with_prior_preservation is False and self.class_prompt:
            warnings.warn("class_prompt without with_prior_preservation: no prior preservation (as diffusers)", stacklevel=2)
        if self.snr_gamma is not None and self.prior_preservation:
            warnings.warn("snr_gamma with prior preservation: vitdream weighs each half by its own timesteps; diffusers' "
                          "train_dreambooth.py weighs only the instance loss, by the whole batch's timesteps, and fails "
                          "from train_batch_size 2 (see docs/dreambooth.md)", stacklevel=2)
        return self

    @pydantic.field_validator("pre_compute_text_embeddings")
    @classmethod
    def _not_with_text_encoder_training(cls, value: Optional[bool], info: pydantic.ValidationInfo) -> Optional[bool]:
        if value and info.data.get("train_text_encoder"):
            raise ValueError("cannot be used with train_text_encoder (the embeddings change as the text encoder "
                             "trains; diffusers refuses this combination too)")
        return value

    @pydantic.field_validator("resume_from_checkpoint")
    @classmethod
    def _check_resume(cls, value: Optional[str], info: pydantic.ValidationInfo) -> Optional[str]:
        if value in (None, "latest"):
            return value
        from vitdream.dreambooth.reference_checkpoint import find_reference_checkpoint

        path = Path(value).expanduser()
        if not (path.is_file() and path.suffix == ".ckpt") and find_reference_checkpoint(value, info.data.get("output_dir", ".")) is None:
            raise ValueError("must be 'latest', the path of an existing .ckpt file, or a checkpoint-<step> folder "
                             "written by diffusers' train_dreambooth[_lora].py")
        return value

    # -- derived -----------------------------------------------------------------------------------
    @property
    def prior_preservation(self) -> bool:
        return bool(self.class_prompt) if self.with_prior_preservation is None else self.with_prior_preservation

    @property
    def precompute_text_embeddings(self) -> bool:
        """Encode the prompts once: asked for, or (default) whenever the text encoder is frozen."""
        return not self.train_text_encoder if self.pre_compute_text_embeddings is None else self.pre_compute_text_embeddings

    @property
    def lightning_precision(self) -> str:
        return MIXED_PRECISION_TO_LIGHTNING[self.mixed_precision]

    @property
    def validation_prompts(self) -> list[str]:
        prompts = self.validation_prompt
        return [] if prompts is None else [prompts] if isinstance(prompts, str) else list(prompts)

    @property
    def evaluation_on(self) -> bool:
        return self.validation_steps is not None and self.evaluators != []

    @property
    def evaluator_specs(self) -> list[Any]:
        """The evaluators of live validation (see ``evaluators``)."""
        if self.evaluators is not None:
            return list(self.evaluators)
        if self.pretrained_model_name_or_path is None:  # the embedded world: compare subjects, not backgrounds
            return [{"id": "vit-embedding", "isolate": True}, "shapes-world"]
        return ["vit-embedding"]

    @property
    def subject_prompts(self) -> list[str]:
        """The subject prompts of the validation set."""
        if self.evaluation_prompts:
            return list(self.evaluation_prompts)
        return [self.instance_prompt] + [f"{self.instance_prompt} on a {c} background" for c in ("blue", "white")]

    def to_yaml_dict(self) -> dict[str, Any]:
        """Options as plain data (lists of in-memory images are replaced by their count)."""
        data = self.model_dump()
        if data["evaluators"]:
            data["evaluators"] = [e if isinstance(e, (str, dict)) else getattr(e, "id", repr(e)) for e in data["evaluators"]]
        if isinstance(data["instance_data_dir"], list) and not all(isinstance(x, (str, os.PathLike)) for x in data["instance_data_dir"]):
            data["instance_data_dir"] = f"<{len(data['instance_data_dir'])} in-memory images>"
        for key in ("instance_data_dir", "class_data_dir", "output_dir", "pretrained_model_name_or_path"):
            value = data[key]
            if isinstance(value, str) and (key != "pretrained_model_name_or_path" or Path(value).expanduser().is_dir()):
                data[key] = str(Path(value).expanduser().resolve())  # the saved config works from any folder
        return data


ALIASES = {"base": "pretrained_model_name_or_path", "instance_images": "instance_data_dir", "max_steps": "max_train_steps"}


def canonical_names(values: dict[str, Any], source: str = "") -> dict[str, Any]:
    """Options with the friendly aliases renamed to the diffusers names; both spellings at once is an error."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = ALIASES.get(key, key)
        if name in out:
            raise OptionsError(f"{source + ': ' if source else ''}options {key!r} and {name!r} are the same option; give one")
        out[name] = value
    return out


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """The mapping in a YAML config file; errors name the file and the reason."""
    import yaml

    path = Path(path).expanduser()
    if not path.is_file():
        raise OptionsError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise OptionsError(f"{path}: not valid YAML ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise OptionsError(f"{path}: expected a mapping of option: value, got a {type(data).__name__}")
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise OptionsError(f"{path}: option names must be strings, got {bad!r}")
    base = path.parent
    for key in ("instance_data_dir", "instance_images", "class_data_dir", "output_dir"):
        value = data.get(key)
        if isinstance(value, str) and not Path(value).expanduser().is_absolute():
            data[key] = str(base / value)  # relative paths are relative to the config file
    return data
