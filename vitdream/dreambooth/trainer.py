"""``DreamBoothTrainer``: a DreamBooth run (the ``dreambooth`` trainer plugin) -- fit, stop, resume, export.

A run owns its ``output_dir``: ``config.yaml``, ``checkpoints/checkpoint-{step}.ckpt``,
``logs/`` (TensorBoard, CSV), ``validation/step-N/``. ``fit()`` blocks; ``start()`` trains in a
background thread (the notebook stays usable) and ``stop()`` ends it at the next step with a
checkpoint; ``fit(resume="latest")`` continues it. Progress is an event stream (``events``,
``subscribe``) that the dashboard widget consumes. The protocol is :class:`vitdream.base.Trainer`'s.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any, ClassVar

from vitdream.atomic import atomic_dir, atomic_write_text
from vitdream.base.training import RunEnd, Trainer
from vitdream.dreambooth.config import DreamBoothConfig, canonical_names, load_yaml
from vitdream.errors import OptionsError, VitdreamError

_CKPT = re.compile(r"^checkpoint-(\d+)\.ckpt$")

# Expected while a run trains, not actionable by the user: the frozen VAE is in eval mode on purpose,
# and a resumed run writes into its existing checkpoint folder. Ignored inside fit() only.
EXPECTED_WARNINGS = (r"Found \d+ module\(s\) in eval mode", r"Checkpoint directory .* exists and is not empty")


class DreamBoothTrainer(Trainer):
    """DreamBooth: UNet (+ text encoder) fine-tuning with prior preservation, on PyTorch Lightning."""

    id: ClassVar[str] = "dreambooth"
    Options: ClassVar[type[DreamBoothConfig]] = DreamBoothConfig

    def __init__(self, config: str | os.PathLike | None = None, **options: Any) -> None:
        from_file = canonical_names(load_yaml(config), str(config)) if config is not None else {}
        values = {**from_file, **canonical_names(options)}
        values.pop("trainer", None)
        self.given_options = set(values)  # what the user set (file + keywords); the rest are defaults
        try:
            super().__init__(**values)
        except OptionsError as exc:
            raise OptionsError(f"{config}: {exc}" if config is not None else str(exc)) from None
        self.config: DreamBoothConfig = self.options  # type: ignore[assignment]
        self.module: Any = None  # states: idle | preparing | class images | training | stopped | finished | failed

    # -- paths ------------------------------------------------------------------------------------------
    @property
    def output_dir(self) -> Path:
        return Path(self.config.output_dir).expanduser()

    @property
    def checkpoint_dir(self) -> Path:
        return self.output_dir / "checkpoints"

    def checkpoints(self) -> list[Path]:
        """Saved checkpoints, oldest step first."""
        found = [(int(m.group(1)), p) for p in self.checkpoint_dir.glob("checkpoint-*.ckpt") if (m := _CKPT.match(p.name))]
        return [p for _, p in sorted(found)]

    def latest_checkpoint(self) -> Path | None:
        found = self.checkpoints()
        return found[-1] if found else None

    def resolve_resume(self, resume: str | os.PathLike | None) -> str | None:
        """``None``, ``"latest"`` (None if there is no checkpoint yet) or a path -> a checkpoint path
        (a ``.ckpt`` file, or a diffusers ``checkpoint-N`` folder to convert)."""
        from vitdream.dreambooth.reference_checkpoint import find_reference_checkpoint, latest_reference_checkpoint

        if resume is None:
            return None
        if str(resume) == "latest":
            latest = self.latest_checkpoint() or latest_reference_checkpoint(self.output_dir)
            return str(latest) if latest else None
        path = Path(resume).expanduser()
        folder = None if path.is_file() else find_reference_checkpoint(path, self.output_dir)
        if not path.is_file() and folder is None:
            raise VitdreamError(f"resume: checkpoint {path} does not exist")
        return str(folder or path)

    def _convert_reference_checkpoint(self, ckpt_path: str | None) -> str | None:
        """A diffusers ``checkpoint-N`` folder becomes ``checkpoints/checkpoint-N.ckpt``; other paths stay."""
        if ckpt_path is None or not Path(ckpt_path).is_dir():
            return ckpt_path
        from vitdream.dreambooth.reference_checkpoint import checkpoint_step, convert_reference_checkpoint

        folder = Path(ckpt_path)
        out = self.checkpoint_dir / f"checkpoint-{checkpoint_step(folder)}.ckpt"
        if os.environ.get("LOCAL_RANK", "0") != "0" and out.is_file():
            return str(out)  # a DDP worker Lightning launched: rank 0 converted it before launching
        self.log.emit("status", state="preparing", message=f"converting diffusers checkpoint {folder}")
        convert_reference_checkpoint(folder, self.module, out, self.config.gradient_accumulation_steps, self.config.allow_pickle)
        return str(out)

    @property
    def max_steps(self) -> int | None:
        """``max_train_steps`` (None until fit() settles it from ``num_train_epochs``)."""
        return self.config.max_train_steps

    # -- building -----------------------------------------------------------------------------------------
    def load_components(self) -> dict[str, Any]:
        """The base pipeline's components (fp32, CPU); fills in ``resolution`` from the base when unset."""
        import torch

        from vitdream.generation.loading import load_pipeline

        c = self.config
        pipe = load_pipeline(c.pretrained_model_name_or_path, device="cpu", dtype=torch.float32,
                             allow_pickle=c.allow_pickle, revision=c.revision, variant=c.variant)
        if c.resolution is None:
            c.resolution = pipe.unet.config.sample_size * pipe.vae_scale_factor
        components = {k: getattr(pipe, k) for k in ("unet", "vae", "text_encoder", "tokenizer", "scheduler")}
        if c.tokenizer_name:
            from transformers import AutoTokenizer

            try:
                components["tokenizer"] = AutoTokenizer.from_pretrained(c.tokenizer_name, revision=c.revision, use_fast=False)
            except Exception as exc:  # transformers/hub raise many types
                raise VitdreamError(f"tokenizer_name {c.tokenizer_name!r}: could not load ({type(exc).__name__}: "
                                    f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
        return components

    def build_module(self, components: dict[str, Any]) -> Any:
        from vitdream.dreambooth.module import DreamBoothModule

        return DreamBoothModule(self.config, components)

    def class_dir(self) -> Path | None:
        c = self.config
        if not c.prior_preservation:
            return None
        if c.class_data_dir:
            return Path(c.class_data_dir).expanduser()
        from vitdream.dreambooth.class_images import default_class_dir

        return default_class_dir(c.pretrained_model_name_or_path, c.class_prompt or "", c.resolution or 0)

    def build_loggers(self) -> list[Any]:
        from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

        loggers: list[Any] = []
        logs = self.output_dir / self.config.logging_dir
        for name in self.config.report_to:
            if name == "tensorboard":
                loggers.append(TensorBoardLogger(str(logs.parent), name=logs.name, version=""))
            elif name == "csv":
                loggers.append(CSVLogger(str(logs), name="csv"))  # version_N per fit
            elif name == "wandb":
                try:
                    import wandb  # noqa: F401
                except ImportError:
                    raise VitdreamError("report_to: 'wandb' needs the wandb package (pip install wandb)") from None
                from pytorch_lightning.loggers import WandbLogger

                loggers.append(WandbLogger(save_dir=str(self.output_dir), project="vitdream-dreambooth"))
        return loggers

    def build_trainer(self) -> Any:
        import pytorch_lightning as pl

        from vitdream.dreambooth.callbacks import RunEvents, StepCheckpoints, ValidationImages
        from vitdream.lightning import AtomicCheckpointIO, StopControl

        c = self.config
        self._stop = StopControl(self.stop_requested)
        callbacks = [
            StepCheckpoints(self.checkpoint_dir, c.checkpointing_steps, c.checkpoints_total_limit, self.log, self.checkpoints,
                            keep=self._kept_checkpoints),
            RunEvents(self.log, c.max_train_steps),
            self._stop,
            ValidationImages(
                self.log, self.output_dir / "validation", c.validation_prompts, c.validation_steps,
                c.num_validation_images, c.validation_inference_steps, c.validation_guidance_scale, c.seed,
            ),
            *self.callbacks,
        ]
        self._evaluation = None
        if c.evaluation_on and (c.max_train_steps is None or c.max_train_steps >= c.validation_steps):
            from vitdream.dreambooth.data import load_image_folder
            from vitdream.dreambooth.validation import LiveEvaluation

            self._evaluation = LiveEvaluation(c, self.log, self.output_dir,
                                              lambda: load_image_folder(c.instance_data_dir, "instance_data_dir")[0])
            callbacks.insert(1, self._evaluation)  # after the step's checkpoint, before Stop
        return pl.Trainer(
            accelerator=c.accelerator, devices=c.devices, strategy=c.strategy, num_nodes=c.num_nodes,
            precision=c.lightning_precision, max_steps=c.max_train_steps, max_epochs=-1,
            accumulate_grad_batches=c.gradient_accumulation_steps,
            gradient_clip_val=c.max_grad_norm, gradient_clip_algorithm="norm",
            callbacks=callbacks, logger=self.build_loggers() or False, plugins=[AtomicCheckpointIO()],
            default_root_dir=str(self.output_dir), log_every_n_steps=c.log_every_n_steps,
            use_distributed_sampler=False, num_sanity_val_steps=0, limit_val_batches=0, enable_checkpointing=False,
            enable_model_summary=False, enable_progress_bar=self.progress, benchmark=False,
        )

    # -- running ------------------------------------------------------------------------------------------
    def _fit(self, resume: str | os.PathLike | None) -> RunEnd:
        """Train until ``max_train_steps`` or :meth:`stop`; ``resume``: ``"latest"`` or a checkpoint path."""
        import pytorch_lightning as pl

        from vitdream.dreambooth.data import DreamBoothData
        from vitdream.dreambooth.run_length import settle_run_options

        resume = resume if resume is not None else self.config.resume_from_checkpoint
        self._set_state("preparing", "loading the base model")
        ckpt_path = self.resolve_resume(resume)
        settle_run_options(self.config, self.output_dir, resuming=ckpt_path is not None)
        pl.seed_everything(self.config.seed, workers=True, verbose=False)
        self.module = self.build_module(self.load_components())
        ckpt_path = self._convert_reference_checkpoint(ckpt_path)
        self._write_config()
        data = DreamBoothData(self.config, self.class_dir(), self.log)
        trainer = self.build_trainer()
        self.trainer = trainer
        self._set_state("training", f"resuming from {ckpt_path}" if ckpt_path else "training")
        with warnings.catch_warnings():
            for message in EXPECTED_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
            trainer.fit(self.module, datamodule=data, ckpt_path=ckpt_path)
        stopped_at = self._stop.stopped_at
        return RunEnd(trainer.global_step if stopped_at is None else stopped_at, stopped=stopped_at is not None)

    # -- live evaluation: metrics, best step, comparison (vitdream.dreambooth.validation) -------------------------
    def metric_history(self) -> list[dict[str, Any]]:
        """One dict per validation step (``step`` and the metrics), oldest first; kept across resumes."""
        from vitdream.dreambooth.validation import read_history

        return read_history(self.output_dir / "metrics.csv")

    @property
    def metrics(self) -> Any:
        """The metrics of every validation step, one row per step (a DataFrame when pandas is installed)."""
        from vitdream.evaluation import as_table

        return as_table(self.metric_history(), index="step")

    @property
    def best_rule(self) -> Any:
        from vitdream.dreambooth.best import BestStepRule

        return BestStepRule(self.config.max_prompt_fidelity_drop, self.config.max_drift)

    @property
    def best_step(self) -> int | None:
        """The validation step chosen by :mod:`vitdream.dreambooth.best`'s rule; None before one qualifies."""
        return self.best_rule.pick(self.metric_history())

    def explain_best(self) -> str:
        """Why each validation step is or is not the best one."""
        return self.best_rule.explain(self.metric_history())

    def _kept_checkpoints(self) -> set[Path]:
        best = self.best_step
        return set() if best is None else {self.checkpoint_dir / f"checkpoint-{best}.ckpt"}

    def _step(self, step: int | str) -> int:
        if step == "best":
            best = self.best_step
            if best is None:
                raise VitdreamError(f"{self.output_dir}: no best step (no validation step met the rule); "
                                    f"see run.explain_best()")
            return best
        if step == "latest":
            latest = self.latest_checkpoint()
            if latest is None:
                raise VitdreamError(f"{self.checkpoint_dir}: no checkpoint yet")
            return int(_CKPT.match(latest.name).group(1))
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise VitdreamError(f"step: expected a step number, 'best' or 'latest', got {step!r}")
        return step

    def checkpoint_at(self, step: int | str) -> Path:
        """The checkpoint of ``step`` (a number, ``"best"`` or ``"latest"``); a clear error when it was not kept."""
        number = self._step(step)
        path = self.checkpoint_dir / f"checkpoint-{number}.ckpt"
        if not path.is_file():
            kept = ", ".join(p.stem.split("-")[1] for p in self.checkpoints()) or "none"
            raise VitdreamError(f"step {number}: no checkpoint kept (kept steps: {kept})")
        return path

    def compare(self, steps: list[int | str], max_images: int | None = None) -> Any:
        """The validation samples of ``steps`` (numbers, ``"best"``) side by side: a row per step, the same
        prompts and seeds in every column (the saved validation images); returns a PIL image."""
        from vitdream.dreambooth.validation import comparison_sheet

        numbers = [(str(s) if isinstance(s, str) else f"step {s}", self._step(s)) for s in steps]
        return comparison_sheet(self.output_dir, [(f"{label} ({n})" if label == "best" else label, n) for label, n in numbers],
                                max_images)

    # -- results ---------------------------------------------------------------------------------------------
    def load_checkpoint(self, checkpoint: str | os.PathLike | None = None) -> Any:
        """The module with the weights of ``checkpoint`` (default: the latest) on the base model."""
        import torch

        path = Path(checkpoint) if checkpoint else self.latest_checkpoint()
        if path is None:
            raise VitdreamError(f"{self.checkpoint_dir}: no checkpoint to load")
        module = self.build_module(self.load_components())
        state = torch.load(path, map_location="cpu", weights_only=True)
        module.on_load_checkpoint(state)
        module.load_state_dict(state["state_dict"], strict=False)
        return module

    def export(self, directory: str | os.PathLike, checkpoint: str | os.PathLike | None = None,
               step: int | str | None = None) -> Path:
        """Save a diffusers pipeline directory (safetensors) that ``StableDiffusionPipeline.from_pretrained`` loads.

        Uses the trained weights in memory, or ``checkpoint`` (default: the latest) when given or not trained here;
        ``step``: the checkpoint of that step instead (a number, ``"best"`` -- :attr:`best_step` -- or ``"latest"``).
        The directory is written next to its destination and renamed into place (atomic).
        """
        if step is not None:
            if checkpoint is not None:
                raise VitdreamError("export: give checkpoint or step, not both")
            checkpoint = self.checkpoint_at(step)
        trainer = getattr(self, "trainer", None)
        if trainer is not None and not trainer.is_global_zero:
            return Path(directory).expanduser().resolve()  # DDP: rank 0 writes
        module = self.load_checkpoint(checkpoint) if checkpoint is not None or self.module is None else self.module
        return atomic_dir(directory, lambda tmp: self._save_pipeline(module, tmp))

    def _save_pipeline(self, module: Any, directory: Path) -> None:
        pipe = module.make_pipeline()
        if self.config.skip_save_text_encoder:
            pipe.register_modules(text_encoder=None)  # as diffusers: model_index.json records text_encoder: null
        pipe.save_pretrained(str(directory), safe_serialization=True)

    def _write_config(self) -> None:
        import yaml

        self.output_dir.mkdir(parents=True, exist_ok=True)
        data = {"trainer": self.id, **self.config.to_yaml_dict()}
        atomic_write_text(self.output_dir / "config.yaml", yaml.safe_dump(data, sort_keys=False))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.state} output_dir={str(self.output_dir)!r}>"


def create_run(config: str | os.PathLike | None = None, trainer: str | None = None, **options: Any) -> DreamBoothTrainer:
    """A DreamBooth run from a YAML ``config`` and/or options; ``trainer`` (or the YAML key) picks the plugin."""
    from vitdream.components import create

    chosen = trainer or (load_yaml(config).get("trainer") if config is not None else None) or "dreambooth"
    if not isinstance(chosen, str):
        raise OptionsError(f"trainer: expected a trainer id, got {chosen!r}")
    return create("trainers", chosen, config, **options)
