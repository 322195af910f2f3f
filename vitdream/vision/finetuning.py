"""Fine-tune a ViT-family classifier on ``folder/<class>/*.jpg`` with PyTorch Lightning.

A new head for the folder's classes; the first ``freeze_layers`` encoder layers (and the patch
embeddings) frozen; gradient accumulation; linear warm-up then a cosine/linear/constant schedule
(``transformers.get_scheduler``); mixed precision where the hardware has it; the best epoch by
validation accuracy kept (Lightning ``ModelCheckpoint``); live metrics as events that a widget or
any ``on_event`` callable consumes; the best weights exported with ``save_pretrained`` (safetensors)
plus the image processor, atomically, so plain ``AutoModelForImageClassification.from_pretrained``
loads the result.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import pytorch_lightning as pl
import torch

from vitdream.dreambooth.callbacks import EventLog  # the shared, thread-safe event stream
from vitdream.errors import VitdreamError
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
    """Emits ``step`` events (step, epoch, train_loss, train_acc, lr) every ``every`` optimizer steps
    and ``epoch`` events (val_loss, val_acc, train_loss, train_acc) into an :class:`EventLog`."""

    def __init__(self, events: EventLog, every: int = 1) -> None:
        self.events, self.every = events, max(1, every)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last = trainer.global_step

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        step = trainer.global_step  # advances only on optimizer steps (after accumulation)
        if step % self.every or step == self._last:
            return
        self._last = step
        m = trainer.callback_metrics
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None
        self.events.emit("step", step=step, epoch=trainer.current_epoch, train_loss=_f(m.get("train_loss_step")),
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


def finetune(
    data: str | os.PathLike,
    model: str | os.PathLike | None = None,
    *,
    output_dir: str | os.PathLike,
    epochs: int = 3,
    batch_size: int = 16,
    lr: float = 3e-4,
    weight_decay: float = 0.01,
    freeze_layers: int = 0,
    accumulate_grad_batches: int = 1,
    warmup: float = 0.1,
    schedule: Literal["cosine", "linear", "constant_with_warmup"] = "cosine",
    precision: str = "auto",
    val_fraction: float = 0.2,
    augment: bool = True,
    seed: int = 0,
    num_workers: int = 0,
    max_steps: int = -1,
    allow_pickle: bool = False,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    callbacks: list[pl.Callback] | None = None,
    progress: bool = True,
    live: bool | None = None,
) -> FinetuneResult:
    """Fine-tune ``model`` (hub id, directory, None = the embedded mini ViT) on ``data/<class>/*``.

    ``warmup``: a fraction of the total optimizer steps (< 1) or a step count. ``freeze_layers``:
    how many encoder layers (from the input side) stay frozen; -1 trains the head only.
    ``on_event(event)`` receives ``step`` and ``epoch`` dicts live (see :class:`LiveMetrics`);
    ``live`` (default: in a notebook) displays loss/accuracy curves fed by them.
    Writes ``output_dir/checkpoints/`` (the best epoch) and ``output_dir/model/`` (the export).
    """
    from transformers import AutoModelForImageClassification

    pl.seed_everything(seed, verbose=False)
    classes, items = scan_folder(data)
    train_items, val_items = split(items, val_fraction, seed)
    base_dir = resolve_model_dir(None if model is None else os.fspath(model), allow_pickle=allow_pickle)
    processor = load_processor(base_dir, model)
    preprocessor = Preprocessor.from_processor(processor)
    with quiet_transformers(errors_only=True):  # the new head's "size mismatch, re-initialised" report is expected
        hf_model = AutoModelForImageClassification.from_pretrained(
            base_dir, num_labels=len(classes), id2label=dict(enumerate(classes)),
            label2id={c: i for i, c in enumerate(classes)}, ignore_mismatched_sizes=True,
            use_safetensors=not allow_pickle or None,
        )
    freeze(hf_model.train(), freeze_layers)

    train_set, val_set = FolderDataset(train_items, preprocessor, augment), FolderDataset(val_items, preprocessor)
    collate = Collate(preprocessor)
    loader = lambda ds, shuffle: torch.utils.data.DataLoader(  # noqa: E731
        ds, batch_size=batch_size, shuffle=shuffle, collate_fn=collate, num_workers=num_workers, persistent_workers=num_workers > 0
    )
    out = Path(output_dir)
    events = EventLog()
    history: list[dict[str, Any]] = []
    events.subscribe(history.append)
    if on_event is not None:
        events.subscribe(on_event)
    if live or (live is None and _in_notebook()):
        from IPython.display import display

        from vitdream.widgets.finetune import FinetuneCurves

        curves = FinetuneCurves()
        display(curves)
        events.subscribe(curves)
    monitor = ("val_acc", "max") if val_items else ("train_loss_epoch", "min")
    best = pl.callbacks.ModelCheckpoint(dirpath=out / "checkpoints", filename="best-{epoch}-{step}", monitor=monitor[0],
                                        mode=monitor[1], save_top_k=1, save_weights_only=True)
    trainer = pl.Trainer(
        max_epochs=epochs, max_steps=max_steps, accumulate_grad_batches=accumulate_grad_batches,
        precision=auto_precision() if precision == "auto" else precision, accelerator="auto", devices=1,
        callbacks=[best, LiveMetrics(events), *(callbacks or [])], logger=False, default_root_dir=out,
        enable_progress_bar=progress, enable_model_summary=False, log_every_n_steps=1, num_sanity_val_steps=0,
    )
    module = ClassifierModule(hf_model, lr, weight_decay, warmup, schedule)
    trainer.fit(module, loader(train_set, True), loader(val_set, False) if val_items else None)

    if best.best_model_path:
        state = torch.load(best.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
    summary = {"classes": classes, "base_model": None if model is None else os.fspath(model), "history": history}
    export_dir = export(module.model, processor, out / "model", {"finetune.json": json.dumps(summary, indent=1)})
    score = best.best_model_score
    return FinetuneResult(
        model_dir=export_dir,
        best_val_accuracy=float(score) if score is not None and val_items else None,
        best_checkpoint=best.best_model_path or None,
        classes=classes,
        history=history,
        failures=train_set.failures + val_set.failures,
    )


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def export(model: Any, processor: Any, target: Path, extra: dict[str, str] | None = None) -> Path:
    """``save_pretrained`` (safetensors) + the processor (+ ``extra`` text files) into a temp folder,
    fsynced, then renamed onto ``target``."""
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for p in model.parameters():
        p.requires_grad_(True)
    model.float().save_pretrained(tmp)
    processor.save_pretrained(tmp)
    for name, text in (extra or {}).items():
        (tmp / name).write_text(text)
    for path in tmp.iterdir():
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
    return target
