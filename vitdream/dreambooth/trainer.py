"""``DreamBoothTrainer``: a DreamBooth run (the ``dreambooth`` trainer plugin) -- fit, stop, resume, export.

A run owns its ``output_dir``: ``config.yaml``, ``checkpoints/checkpoint-{step}.ckpt``,
``logs/`` (TensorBoard, CSV), ``validation/step-N/``. ``fit()`` blocks; ``start()`` trains in a
background thread (the notebook stays usable) and ``stop()`` ends it at the next step with a
checkpoint; ``fit(resume="latest")`` continues it. Progress is an event stream (``events``,
``subscribe``) that the dashboard widget consumes.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import traceback
import warnings
from pathlib import Path
from typing import Any, ClassVar, Callable

from vitdream.base.training import Trainer
from vitdream.dreambooth.callbacks import EventLog
from vitdream.dreambooth.config import DreamBoothConfig, canonical_names, load_yaml
from vitdream.atomic import atomic_write_text
from vitdream.errors import OptionsError, VitdreamError

_CKPT = re.compile(r"^checkpoint-(\d+)\.ckpt$")

# Expected here, not actionable by the user: the frozen VAE is in eval mode on purpose, and a resumed
# run writes into its existing checkpoint folder.
for _message in (r"Found \d+ module\(s\) in eval mode", r"Checkpoint directory .* exists and is not empty"):
    warnings.filterwarnings("ignore", message=_message)


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
        self.log = EventLog()
        self.log.subscribe(self._track_state)
        self.state = "idle"  # idle | preparing | class images | training | stopped | finished | failed
        self.error: BaseException | None = None
        self.traceback: str | None = None
        self.module: Any = None
        self.callbacks: list[Any] = []  # extra Lightning callbacks for the next fit
        self._thread: threading.Thread | None = None
        self._stop: Any = None
        self._stop_requested = threading.Event()

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

    # -- events -----------------------------------------------------------------------------------------
    @property
    def events(self) -> list[dict[str, Any]]:
        return self.log.events

    def subscribe(self, fn: Callable[[dict[str, Any]], None], replay: bool = False) -> None:
        """Call ``fn(event)`` for each new event (in the training thread); ``replay`` sends past ones first."""
        self.log.subscribe(fn, replay=replay)

    def history(self) -> list[dict[str, Any]]:
        """The ``step`` events: step, loss, instance_loss, prior_loss, lr, steps_per_s, eta_s."""
        return self.log.of_type("step")

    def _track_state(self, event: dict[str, Any]) -> None:
        if event["type"] == "status":
            self.state = event["state"]

    def _set_state(self, state: str, message: str = "", **fields: Any) -> None:
        self.log.emit("status", state=state, message=message, **fields)

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

        from vitdream.dreambooth.callbacks import (
            AtomicCheckpointIO, DreamBoothCheckpoint, RunEvents, StopControl, ValidationImages,
        )

        c = self.config
        self._stop = StopControl()
        if self._stop_requested.is_set():
            self._stop.request()
        callbacks = [
            DreamBoothCheckpoint(self.checkpoint_dir, c.checkpointing_steps, c.checkpoints_total_limit, self.log),
            RunEvents(self.log, c.max_train_steps),
            self._stop,
            ValidationImages(
                self.log, self.output_dir / "validation", c.validation_prompts, c.validation_steps,
                c.num_validation_images, c.validation_inference_steps, c.validation_guidance_scale, c.seed,
            ),
            *self.callbacks,
        ]
        return pl.Trainer(
            accelerator=c.accelerator, devices=c.devices, strategy=c.strategy, num_nodes=c.num_nodes,
            precision=c.lightning_precision, max_steps=c.max_train_steps, max_epochs=-1,
            accumulate_grad_batches=c.gradient_accumulation_steps,
            gradient_clip_val=c.max_grad_norm, gradient_clip_algorithm="norm",
            callbacks=callbacks, logger=self.build_loggers() or False, plugins=[AtomicCheckpointIO()],
            default_root_dir=str(self.output_dir), log_every_n_steps=c.log_every_n_steps,
            use_distributed_sampler=False, num_sanity_val_steps=0, limit_val_batches=0,
            enable_model_summary=False, enable_progress_bar=self._progress_bar, benchmark=False,
        )

    _progress_bar = True

    # -- running ------------------------------------------------------------------------------------------
    def fit(self, resume: str | os.PathLike | None = None) -> "DreamBoothTrainer":
        """Train until ``max_train_steps`` or :meth:`stop`; ``resume``: ``"latest"`` or a checkpoint path."""
        import pytorch_lightning as pl

        from vitdream.dreambooth.data import DreamBoothData
        from vitdream.dreambooth.run_length import settle_run_options

        resume = resume if resume is not None else self.config.resume_from_checkpoint
        try:
            self.error = self.traceback = None
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
            trainer.fit(self.module, datamodule=data, ckpt_path=ckpt_path)
        except BaseException as exc:
            self.error, self.traceback = exc, traceback.format_exc()
            self._set_state("failed", f"{type(exc).__name__}: {exc}")
            self.log.emit("error", message=f"{type(exc).__name__}: {exc}", traceback=self.traceback)
            raise
        finally:
            self._stop_requested.clear()
        latest = self.latest_checkpoint()
        if self._stop is not None and self._stop.stopped_at is not None:
            self._set_state("stopped", f"stopped at step {self._stop.stopped_at}, checkpoint saved", checkpoint=str(latest))
        else:
            self._set_state("finished", f"finished at step {self.trainer.global_step}", checkpoint=str(latest))
        return self

    def start(self, resume: str | os.PathLike | None = None) -> threading.Thread:
        """Run :meth:`fit` in a background thread; errors land in ``error``/``traceback`` and the events."""
        if self.running:
            raise VitdreamError("this run is already training; stop() it first")

        def target() -> None:
            try:
                self.fit(resume=resume)
            except BaseException:
                pass  # recorded by fit()

        self._thread = threading.Thread(target=target, name="vitdream-dreambooth", daemon=True)
        self._thread.start()
        return self._thread

    fit_async = start

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, wait: bool = True, timeout: float | None = None) -> Path | None:
        """Stop at the next optimizer step, save a checkpoint; returns it (when ``wait``)."""
        self._stop_requested.set()
        if self._stop is not None:
            self._stop.request()
        if wait:
            self.wait(timeout)
            return self.latest_checkpoint()
        return None

    def wait(self, timeout: float | None = None) -> "DreamBoothTrainer":
        """Block until a background run ends."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self

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

    def export(self, directory: str | os.PathLike, checkpoint: str | os.PathLike | None = None) -> Path:
        """Save a diffusers pipeline directory (safetensors) that ``StableDiffusionPipeline.from_pretrained`` loads.

        Uses the trained weights in memory, or ``checkpoint`` (default: the latest) when given or not trained here.
        The directory is written next to its destination and renamed into place (atomic).
        """
        trainer = getattr(self, "trainer", None)
        if trainer is not None and not trainer.is_global_zero:
            return Path(directory).expanduser().resolve()  # DDP: rank 0 writes
        module = self.load_checkpoint(checkpoint) if checkpoint is not None or self.module is None else self.module
        return atomic_save_dir(directory, lambda tmp: self._save_pipeline(module, tmp))

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


def atomic_save_dir(directory: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_dir)`` then swap ``tmp_dir`` into ``directory`` (a previous one is replaced)."""
    target = Path(directory).expanduser().resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write(tmp)
        for file in tmp.rglob("*"):
            if file.is_file():
                with open(file, "rb") as fh:
                    os.fsync(fh.fileno())
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def create_run(config: str | os.PathLike | None = None, trainer: str | None = None, **options: Any) -> DreamBoothTrainer:
    """A DreamBooth run from a YAML ``config`` and/or options; ``trainer`` (or the YAML key) picks the plugin."""
    from vitdream.components import create

    chosen = trainer or (load_yaml(config).get("trainer") if config is not None else None) or "dreambooth"
    if not isinstance(chosen, str):
        raise OptionsError(f"trainer: expected a trainer id, got {chosen!r}")
    return create("trainers", chosen, config, **options)
