"""The command-line flags of diffusers' DreamBooth scripts, and a parser that reads them verbatim.

``FLAGS`` lists every flag of ``examples/dreambooth/train_dreambooth.py`` (``full``) and
``train_dreambooth_lora.py`` (``lora``) with its type and the scripts' defaults, as on diffusers' main
branch of the 0.3x releases (older scripts said ``output_dir="text-inversion-model"``).
:func:`parse_command` turns such a command line (optionally with ``train_dreambooth[_lora].py``,
a YAML config and vitdream's own ``--trainer/--diffusers-defaults/--resume/--export/--set``) into
the keyword options of :func:`vitdream.dreambooth`. Only flags actually given are passed on, so
absent ones keep vitdream's defaults (or the scripts', with ``--diffusers-defaults``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

#: The value of a flag a script does not have.
ABSENT = object()


@dataclass(frozen=True)
class Flag:
    """One flag: argparse type (``bool`` = ``store_true``; ``list`` = ``nargs="+"``) and each script's default."""

    name: str
    type: type
    full: Any = ABSENT
    lora: Any = ABSENT
    choices: Optional[tuple[str, ...]] = None

    def default(self, script: str) -> Any:
        return self.full if script == "full" else self.lora

    @property
    def scripts(self) -> tuple[str, ...]:
        return tuple(s for s in ("full", "lora") if self.default(s) is not ABSENT)


def _both(name: str, type_: type, default: Any, choices: Optional[tuple[str, ...]] = None) -> Flag:
    return Flag(name, type_, default, default, choices)


PRECISIONS = ("no", "fp16", "bf16")
FLAGS: tuple[Flag, ...] = (
    _both("pretrained_model_name_or_path", str, None),
    _both("revision", str, None),
    _both("variant", str, None),
    _both("tokenizer_name", str, None),
    _both("instance_data_dir", str, None),
    _both("class_data_dir", str, None),
    _both("instance_prompt", str, None),
    _both("class_prompt", str, None),
    _both("validation_prompt", str, None),
    _both("num_validation_images", int, 4),
    Flag("validation_epochs", int, lora=50),
    _both("with_prior_preservation", bool, False),
    _both("prior_loss_weight", float, 1.0),
    _both("num_class_images", int, 100),
    Flag("output_dir", str, "dreambooth-model", "lora-dreambooth-model"),
    _both("seed", int, None),
    _both("resolution", int, 512),
    _both("center_crop", bool, False),
    _both("train_text_encoder", bool, False),
    _both("train_batch_size", int, 4),
    _both("sample_batch_size", int, 4),
    _both("num_train_epochs", int, 1),
    _both("max_train_steps", int, None),
    _both("checkpointing_steps", int, 500),
    _both("checkpoints_total_limit", int, None),
    _both("resume_from_checkpoint", str, None),
    _both("gradient_accumulation_steps", int, 1),
    _both("gradient_checkpointing", bool, False),
    Flag("learning_rate", float, 5e-6, 5e-4),
    _both("scale_lr", bool, False),
    _both("lr_scheduler", str, "constant"),
    _both("lr_warmup_steps", int, 500),
    _both("lr_num_cycles", int, 1),
    _both("lr_power", float, 1.0),
    _both("use_8bit_adam", bool, False),
    _both("dataloader_num_workers", int, 0),
    _both("adam_beta1", float, 0.9),
    _both("adam_beta2", float, 0.999),
    _both("adam_weight_decay", float, 1e-2),
    _both("adam_epsilon", float, 1e-8),
    _both("max_grad_norm", float, 1.0),
    _both("push_to_hub", bool, False),
    _both("hub_token", str, None),
    _both("hub_model_id", str, None),
    _both("logging_dir", str, "logs"),
    _both("allow_tf32", bool, False),
    _both("report_to", str, "tensorboard"),
    Flag("validation_steps", int, full=100),
    _both("mixed_precision", str, None, PRECISIONS),
    _both("prior_generation_precision", str, None, ("no", "fp32", "fp16", "bf16")),
    _both("local_rank", int, -1),
    _both("enable_xformers_memory_efficient_attention", bool, False),
    Flag("set_grads_to_none", bool, full=False),
    Flag("offset_noise", bool, full=False),
    Flag("snr_gamma", float, full=None),
    _both("pre_compute_text_embeddings", bool, False),
    _both("tokenizer_max_length", int, None),
    _both("text_encoder_use_attention_mask", bool, False),
    Flag("skip_save_text_encoder", bool, full=False),
    _both("validation_images", list, None),
    _both("class_labels_conditioning", str, None),
    Flag("validation_scheduler", str, full="DPMSolverMultistepScheduler", choices=("DPMSolverMultistepScheduler", "DDPMScheduler")),
    Flag("rank", int, lora=4),
)
FLAGS_BY_NAME: dict[str, Flag] = {f.name: f for f in FLAGS}

#: Flags vitdream refuses when set, and why (checked when options are validated, before anything is written).
REFUSED: dict[str, str] = {
    "push_to_hub": "vitdream does not upload (and this machine may have no network); export, then upload with "
                   "`huggingface-cli upload`",
    "hub_token": "vitdream does not upload and never takes a token on the command line",
    "hub_model_id": "vitdream does not upload; export, then upload with `huggingface-cli upload`",
    "validation_images": "only for image-conditioned pipelines (image variation, super-resolution, DeepFloyd IF); "
                         "vitdream trains text-to-image Stable Diffusion",
}

SCRIPTS = {"train_dreambooth.py": "dreambooth", "train_dreambooth_lora.py": "dreambooth-lora"}
#: ``accelerate launch`` options taken before the script name (the script's own flag has the same meaning).
ACCELERATE_OPTIONS = {"--mixed_precision": "mixed_precision"}
TRAINER_SCRIPT = {"dreambooth": "full", "dreambooth-lora": "lora"}


def diffusers_defaults(script: str) -> dict[str, Any]:
    """The script's defaults as vitdream options (``script``: ``"full"`` or ``"lora"``)."""
    out = {}
    for flag in FLAGS:
        value = flag.default(script)
        if value is ABSENT or flag.name in REFUSED or flag.name in ("instance_prompt", "pretrained_model_name_or_path",
                                                                    "instance_data_dir"):
            continue
        out[flag.name] = value
    out["report_to"] = [out["report_to"]]
    out["mixed_precision"] = "no"  # None: "the accelerate config", which is "no" without one
    # what the scripts do without a flag for it
    out["class_inference_steps"] = 50  # pipeline(prompt): the pipeline's default step count
    if script == "lora":
        out["lora_alpha"] = None  # = rank
        out["lora_dropout"] = 0.0
    return out


def default_differences(config: Any, given: set[str]) -> dict[str, tuple[Any, Any]]:
    """Options not ``given`` whose value in ``config`` is not the diffusers script's default: name -> (vitdream, diffusers)."""
    if getattr(config, "diffusers_defaults", False):
        return {}
    theirs = diffusers_defaults(getattr(config, "DIFFUSERS_SCRIPT", "full"))
    return {name: (getattr(config, name), value) for name, value in theirs.items()
            if name not in given and name in FLAGS_BY_NAME and getattr(config, name) != value}


def describe_differences(differences: dict[str, tuple[Any, Any]]) -> str:
    """One line for the user: which defaults were vitdream's, and how to take diffusers' instead."""
    listed = ", ".join(f"{name}={mine!r} ({theirs!r})" for name, (mine, theirs) in differences.items())
    return (f"not given, so vitdream's default (diffusers' in brackets): {listed}; --diffusers-defaults "
            "(diffusers_defaults=True) takes diffusers' instead")


@dataclass
class Command:
    """A parsed ``vitdream dreambooth`` command line."""

    trainer: Optional[str]
    config: Optional[str]
    options: dict[str, Any]
    resume: Optional[str] = None
    export: Optional[str] = None


def build_parser() -> argparse.ArgumentParser:
    """An argparse parser for both scripts' flags (spelled as in diffusers) plus vitdream's own."""
    parser = argparse.ArgumentParser(
        prog="vitdream dreambooth", argument_default=argparse.SUPPRESS, allow_abbrev=False,
        description="Train DreamBooth. Takes diffusers' train_dreambooth.py / train_dreambooth_lora.py flags verbatim, "
                    "a YAML config, or both (flags win).",
    )
    parser.add_argument("inputs", nargs="*", metavar="[CONFIG.yaml] [train_dreambooth[_lora].py]",
                        help="a YAML config; the script name picks the trainer")
    parser.add_argument("--trainer", choices=sorted(TRAINER_SCRIPT), help="dreambooth (full) or dreambooth-lora")
    parser.add_argument("--diffusers-defaults", "--diffusers_defaults", dest="diffusers_defaults", action="store_true",
                        help="take the diffusers script's defaults for every option not given")
    parser.add_argument("--resume", help="'latest' or a checkpoint (a vitdream .ckpt or a diffusers checkpoint-N folder)")
    parser.add_argument("--export", help="where to save the trained model (default: OUTPUT_DIR/model)")
    parser.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                        help="any vitdream option (YAML value), e.g. --set cache_latents=true")
    for flag in FLAGS:
        name = f"--{flag.name}"
        if flag.type is bool:
            parser.add_argument(name, action=argparse.BooleanOptionalAction)
        elif flag.type is list:
            parser.add_argument(name, nargs="+")
        else:
            parser.add_argument(name, type=flag.type, choices=flag.choices)
    return parser


def parse_command(argv: Sequence[str]) -> Command:
    """Options of a ``vitdream dreambooth`` command line; errors raise ``OptionsError`` saying what is wrong."""
    from vitdream.commands import parse_key_values
    from vitdream.errors import OptionsError

    argv, launched = _strip_accelerate_launch(list(argv))
    parser = build_parser()
    parser.exit = _raise_exit  # type: ignore[method-assign]
    parser.error = _raise_error  # type: ignore[method-assign]
    args = {**launched, **vars(parser.parse_args(argv))}
    trainer, config = args.pop("trainer", None), None
    for token in args.pop("inputs", []):
        name = Path(token).name
        if name in SCRIPTS:
            if trainer not in (None, SCRIPTS[name]):
                raise OptionsError(f"{token}: this script is trainer {SCRIPTS[name]!r}, but --trainer says {trainer!r}")
            trainer = SCRIPTS[name]
        elif name.endswith((".yaml", ".yml")):
            if config is not None:
                raise OptionsError(f"{token}: only one config file, already have {config}")
            config = token
        else:
            raise OptionsError(f"{token}: expected a YAML config (.yaml) or train_dreambooth.py / train_dreambooth_lora.py")
    command = Command(trainer, config, {}, args.pop("resume", None), args.pop("export", None))
    command.options.update(parse_key_values(args.pop("overrides", None) or [], "--set"))
    command.options.update(args)
    return command


def _strip_accelerate_launch(argv: list[str]) -> tuple[list[str], dict[str, Any]]:
    """``accelerate launch [--mixed_precision=X] script.py ...`` -> the script's part, and the options it set."""
    from vitdream.errors import OptionsError

    if argv[:2] != ["accelerate", "launch"]:
        return argv, {}
    rest, options = argv[2:], {}
    while rest and rest[0].startswith("-"):
        key, sep, value = rest[0].partition("=")
        if key not in ACCELERATE_OPTIONS:
            raise OptionsError(f"accelerate launch {key}: not taken by vitdream dreambooth (Lightning runs the "
                               "processes: --set devices=N, --set strategy=ddp); drop it")
        if not sep:
            if len(rest) < 2:
                raise OptionsError(f"accelerate launch {key}: expected a value")
            value, rest = rest[1], rest[1:]
        options[ACCELERATE_OPTIONS[key]] = value
        rest = rest[1:]
    return rest, options


def _raise_error(message: str) -> None:
    from vitdream.errors import OptionsError

    raise OptionsError(f"vitdream dreambooth: {message}")


def _raise_exit(status: int = 0, message: Optional[str] = None) -> None:
    if status:
        _raise_error(message or "bad arguments")
    raise SystemExit(status)
