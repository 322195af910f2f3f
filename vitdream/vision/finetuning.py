"""Fine-tune a ViT-family classifier on ``folder/<class>/*.jpg`` with PyTorch Lightning.

A new head for the folder's classes; the first ``freeze_layers`` encoder layers (and the patch
embeddings) frozen; gradient accumulation; linear warm-up then a cosine/linear/constant schedule
(``transformers.get_scheduler``); mixed precision where the hardware has it; the best epoch by
validation accuracy kept (Lightning ``ModelCheckpoint``); the best weights exported with
``save_pretrained`` (safetensors) plus the image processor, atomically, so plain
``AutoModelForImageClassification.from_pretrained`` loads the result.

:class:`ViTFinetuneTrainer` (trainer plugin ``vit-finetune``) follows the run protocol of
:class:`vitdream.base.Trainer`: ``start``/``stop``/``fit``/``subscribe``/``events``/``running``/
``export``, watched with ``vd.widgets.train(run)`` like DreamBooth. :func:`finetune` is the blocking
shortcut that returns a :class:`FinetuneResult`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal, Optional

import pytorch_lightning as pl
import torch
from pydantic import Field

from vitdream.atomic import atomic_dir
from vitdream.base import Options
from vitdream.base.training import RunEnd, Trainer
from vitdream.errors import OptionsError, VitdreamError
from vitdream.events import EventLog
from vitdream.images import BadImage
from vitdream.vision.finetune_data import Collate, FolderDataset, scan_folder, split
from vitdream.vision.loading import load_processor, quiet_transformers, resolve_model_dir
from vitdream.vision.preprocess import Preprocessor


@dataclass
class FinetuneResult:
    """Where the exported model is, how good the best epoch was, and every metric logged."""

    model_dir: Path
    best_val_accuracy: float | None
    best_checkpoint: str | None
    classes: list[str]
    history: list[dict[str, Any]] = field(default_factory=list)
    failures: list[BadImage] = field(default_factory=list)

    def load(self, **options: Any) -> Any:
        """The fine-tuned classifier (``vd.load_classifier(model_dir)``)."""
        from vitdream.vision import load_classifier

        return load_classifier(self.model_dir, **options)


class ClassifierModule(pl.LightningModule):
    """Cross-entropy training of a transformers image classifier, logging loss/accuracy."""

    def __init__(self, model: Any, lr: float, weight_decay: float, warmup: float, schedule: str) -> None:
        super().__init__()
        self.model = model
        self.lr, self.weight_decay, self.warmup, self.schedule = lr, weight_decay, warmup, schedule

    def _step(self, batch: Any, stage: str) -> Any:
        if batch is None:  # every image of the batch was bad
            return None
        pixels, labels = batch
        logits = self.model(pixel_values=pixels).logits
        loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        accuracy = (logits.argmax(-1) == labels).float().mean()
        on_step = stage == "train"
        self.log(f"{stage}_loss", loss, on_step=on_step, on_epoch=True, batch_size=len(labels))
        self.log(f"{stage}_acc", accuracy, on_step=on_step, on_epoch=True, batch_size=len(labels))
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        return self._step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> Any:
        return self._step(batch, "val")

    def configure_optimizers(self) -> Any:
        from transformers import get_scheduler

        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = int(self.warmup * total) if self.warmup < 1 else int(self.warmup)
        scheduler = get_scheduler(self.schedule, optimizer, num_warmup_steps=warmup, num_training_steps=total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class LiveMetrics(pl.Callback):
    """Emits a ``start`` event (step, max_steps), ``step`` events (step, epoch, loss = train_loss,
    train_acc, lr) every ``every`` optimizer steps and ``epoch`` events (val_loss, val_acc, train_loss,
    train_acc) into an :class:`~vitdream.events.EventLog`."""

    def __init__(self, events: EventLog, every: int = 1) -> None:
        self.events, self.every = events, max(1, every)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last = trainer.global_step
        self.events.emit("start", step=trainer.global_step, max_steps=int(trainer.estimated_stepping_batches))

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        step = trainer.global_step  # advances only on optimizer steps (after accumulation)
        if step % self.every or step == self._last:
            return
        self._last = step
        m = trainer.callback_metrics
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None
        loss = _f(m.get("train_loss_step"))
        self.events.emit("step", step=step, epoch=trainer.current_epoch, loss=loss, train_loss=loss,
                         train_acc=_f(m.get("train_acc_step")), lr=lr)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        m = trainer.callback_metrics
        self.events.emit("epoch", step=trainer.global_step, epoch=trainer.current_epoch, val_loss=_f(m.get("val_loss")),
                         val_acc=_f(m.get("val_acc")), train_loss=_f(m.get("train_loss_epoch")), train_acc=_f(m.get("train_acc_epoch")))


def _f(value: Any) -> float | None:
    return None if value is None else float(value)


def auto_precision() -> str:
    """``16-mixed`` on CUDA (``bf16-mixed`` where supported), ``32-true`` on CPU (bf16 emulation is slower)."""
    if torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"


def freeze(model: Any, layers: int) -> None:
    """Freeze the embeddings and the first ``layers`` encoder layers (-1: the whole encoder)."""
    base = model.base_model
    blocks = getattr(base, "layers", None)  # transformers 5
    if blocks is None:
        blocks = base.encoder.layer  # transformers 4
    n = len(blocks) if layers < 0 else layers
    if n > len(blocks):
        raise VitdreamError(f"freeze_layers={layers}: the model has only {len(blocks)} encoder layers")
    if n > 0:
        for p in base.embeddings.parameters():
            p.requires_grad_(False)
    for block in blocks[:n]:
        for p in block.parameters():
            p.requires_grad_(False)
    if layers < 0:
        for p in base.parameters():
            p.requires_grad_(False)


METRIC_EVENTS = ("step", "epoch")


class FinetuneOptions(Options):
    """Options of the ``vit-finetune`` trainer (the keywords of :func:`finetune`)."""

    data: str = Field(..., description="folder/<class>/* images")
    model: Optional[str] = Field(None, description="hub id, directory, None = the embedded mini ViT")
    output_dir: str
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(3e-4, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    freeze_layers: int = Field(0, ge=-1, description="encoder layers kept frozen from the input side; -1: head only")
    accumulate_grad_batches: int = Field(1, ge=1)
    warmup: float = Field(0.1, ge=0, description="a fraction of the optimizer steps (< 1) or a step count")
    schedule: Literal["cosine", "linear", "constant_with_warmup"] = "cosine"
    precision: str = "auto"
    val_fraction: float = Field(0.2, ge=0, lt=1)
    augment: bool = True
    seed: int = 0
    num_workers: int = Field(0, ge=0)
    max_steps: int = Field(-1, ge=-1)
    allow_pickle: bool = False


class ViTFinetuneTrainer(Trainer):
    """ViT fine-tuning on folder/<class>/* images (new head, frozen layers, best epoch kept), on PyTorch Lightning."""

    id: ClassVar[str] = "vit-finetune"
    Options: ClassVar[type[Options]] = FinetuneOptions

    def __init__(self, data: str | os.PathLike | None = None, model: str | os.PathLike | None = None, **options: Any) -> None:
        fspath = lambda v: os.fspath(v) if isinstance(v, os.PathLike) else v  # noqa: E731
        values = {k: fspath(v) for k, v in {"data": data, "model": model, **options}.items()}
        if values["data"] is None:
            values.pop("data")
        super().__init__(**values)
        self.result: FinetuneResult | None = None
        self._module: ClassifierModule | None = None
        self._processor: Any = None

    @property
    def output_dir(self) -> Path:
        return Path(self.options.output_dir).expanduser()

    def _fit(self, resume: str | os.PathLike | None) -> RunEnd:
        """Writes ``output_dir/checkpoints/`` (the best epoch) and ``output_dir/model/`` (the export)."""
        from transformers import AutoModelForImageClassification

        from vitdream.lightning import AtomicCheckpointIO, StopControl

        if resume is not None:
            raise OptionsError(f"{self.id}: resume: fine-tuning restarts from the base model (got {resume!r})")
        o = self.options
        self._set_state("preparing", "reading the folder and loading the base model")
        pl.seed_everything(o.seed, verbose=False)
        classes, items = scan_folder(o.data)
        train_items, val_items = split(items, o.val_fraction, o.seed)
        base_dir = resolve_model_dir(o.model, allow_pickle=o.allow_pickle)
        processor = load_processor(base_dir, o.model)
        preprocessor = Preprocessor.from_processor(processor)
        with quiet_transformers(errors_only=True):  # the new head's "size mismatch, re-initialised" report is expected
            hf_model = AutoModelForImageClassification.from_pretrained(
                base_dir, num_labels=len(classes), id2label=dict(enumerate(classes)),
                label2id={c: i for i, c in enumerate(classes)}, ignore_mismatched_sizes=True,
                use_safetensors=not o.allow_pickle or None,
            )
        freeze(hf_model.train(), o.freeze_layers)

        train_set, val_set = FolderDataset(train_items, preprocessor, o.augment), FolderDataset(val_items, preprocessor)
        collate = Collate(preprocessor)
        loader = lambda ds, shuffle: torch.utils.data.DataLoader(  # noqa: E731
            ds, batch_size=o.batch_size, shuffle=shuffle, collate_fn=collate, num_workers=o.num_workers,
            persistent_workers=o.num_workers > 0,
        )
        out = self.output_dir
        monitor = ("val_acc", "max") if val_items else ("train_loss_epoch", "min")
        best = pl.callbacks.ModelCheckpoint(dirpath=out / "checkpoints", filename="best-{epoch}-{step}", monitor=monitor[0],
                                            mode=monitor[1], save_top_k=1, save_weights_only=True)
        stop = StopControl(self.stop_requested)
        trainer = pl.Trainer(
            max_epochs=o.epochs, max_steps=o.max_steps, accumulate_grad_batches=o.accumulate_grad_batches,
            precision=auto_precision() if o.precision == "auto" else o.precision, accelerator="auto", devices=1,
            callbacks=[best, LiveMetrics(self.log), stop, *self.callbacks], logger=False, default_root_dir=out,
            plugins=[AtomicCheckpointIO()], enable_progress_bar=self.progress, enable_model_summary=False,
            log_every_n_steps=1, num_sanity_val_steps=0,
        )
        module = ClassifierModule(hf_model, o.lr, o.weight_decay, o.warmup, o.schedule)
        self._set_state("training", f"{len(train_items)} training and {len(val_items)} validation images")
        trainer.fit(module, loader(train_set, True), loader(val_set, False) if val_items else None)

        if best.best_model_path:
            state = torch.load(best.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
            module.load_state_dict(state)
        self._module, self._processor, self._classes = module, processor, classes
        history = self._metrics()
        score = best.best_model_score
        self.result = FinetuneResult(
            model_dir=self.export(out / "model"),
            best_val_accuracy=float(score) if score is not None and val_items else None,
            best_checkpoint=best.best_model_path or None,
            classes=classes,
            history=history,
            failures=train_set.failures + val_set.failures,
        )
        return RunEnd(trainer.global_step, stopped=stop.stopped_at is not None)

    def _metrics(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] in METRIC_EVENTS]

    def export(self, directory: str | os.PathLike) -> Path:
        """``save_pretrained`` (safetensors) + the image processor + ``finetune.json``, written atomically."""
        if self._module is None:
            raise VitdreamError(f"{self.id}: nothing to export yet; fit() first")
        summary = {"classes": self._classes, "base_model": self.options.model, "history": self._metrics()}
        return export(self._module.model, self._processor, Path(directory), {"finetune.json": json.dumps(summary, indent=1)})


def finetune(data: str | os.PathLike, model: str | os.PathLike | None = None, **options: Any) -> FinetuneResult:
    """Fine-tune ``model`` (hub id, directory, None = the embedded mini ViT) on ``data/<class>/*``; blocks.

    ``options``: those of :class:`FinetuneOptions` (``output_dir`` is required) and of
    :func:`finetune_run`. For a run in the background, watched with ``vd.widgets.train(run)``, use
    :func:`finetune_run` and ``run.start()``.
    """
    return finetune_run(data, model, **options).fit().result  # type: ignore[union-attr, return-value]


def finetune_run(
    data: str | os.PathLike,
    model: str | os.PathLike | None = None,
    *,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    callbacks: list[pl.Callback] | None = None,
    progress: bool = True,
    **options: Any,
) -> ViTFinetuneTrainer:
    """An unstarted ``vit-finetune`` run. ``on_event(event)`` receives the ``step`` and ``epoch``
    events live (see :class:`LiveMetrics`); ``callbacks``: extra Lightning callbacks; ``progress``:
    Lightning's progress bar."""
    run = ViTFinetuneTrainer(data, model, **options)
    run.progress = progress
    run.callbacks = list(callbacks or [])
    if on_event is not None:
        run.subscribe(lambda event: on_event(event) if event["type"] in METRIC_EVENTS else None)
    return run


def export(model: Any, processor: Any, target: Path, extra: dict[str, str] | None = None) -> Path:
    """``save_pretrained`` (safetensors) + the processor (+ ``extra`` text files) into ``target``, atomically."""

    def write(tmp: Path) -> None:
        for p in model.parameters():
            p.requires_grad_(True)
        model.float().save_pretrained(tmp)
        processor.save_pretrained(tmp)
        for name, text in (extra or {}).items():
            (tmp / name).write_text(text)

    return atomic_dir(target, write)
