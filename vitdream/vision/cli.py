"""``vitdream classify IMG... [--model REF] [--top-k K] [--json]``: a thin view over ``load_classifier``."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from vitdream.commands import fail_clearly, given


@click.command(name="classify")
@click.argument("images", nargs=-1, required=True)
@click.option("--model", "model", default=None, help="Hub id or local directory (default: the embedded mini ViT).")
@click.option("--top-k", "top_k", default=5, show_default=True, type=click.IntRange(min=1), help="Labels per image.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
@click.option("--batch-size", default=None, type=click.IntRange(min=1), help="Images per batch (default: 16).")
@click.option("--device", default=None, help="auto, cpu, cuda, cuda:1 ... (default: auto).")
@click.option("--allow-pickle", is_flag=True, help="Allow legacy pickle weights (pytorch_model.bin); trusted files only.")
@fail_clearly
def classify_command(images: tuple[str, ...], model: str | None, top_k: int, as_json: bool, batch_size: int | None,
                     device: str | None, allow_pickle: bool) -> None:
    """Classify image files, folders or globs. Bad images are reported and the rest still classified;
    the exit status is 1 when any image failed."""
    from vitdream.images import expand_sources
    from vitdream.vision import load_classifier

    sources = [s for spec in images for s in expand_sources(spec)]
    if not sources:
        raise click.ClickException(f"no image files found in {' '.join(images)}")
    clf = load_classifier(model, **given(batch_size=batch_size, device=device, allow_pickle=allow_pickle))
    results = clf.classify(sources, top_k=top_k)
    click.echo(json.dumps(as_records(sources, results), indent=2) if as_json else format_text(sources, results))
    for bad in results.failures:
        if not as_json:
            click.echo(f"error: {bad.source}: {bad.reason}", err=True)
    if results.failures:
        sys.exit(1)


def as_records(sources: list[Any], results: Any) -> list[dict[str, Any]]:
    """One dict per input, in order: ``{"source", "predictions": [{"label", "score"}]}`` or ``{"source", "error"}``."""
    errors = {f.index: f.reason for f in results.failures}
    return [
        {"source": str(src), "error": errors[i]} if i in errors else {"source": str(src), "predictions": preds}
        for i, (src, preds) in enumerate(zip(sources, results.to_dicts()))
    ]


def format_text(sources: list[Any], results: Any) -> str:
    lines = []
    for src, preds in zip(sources, results):
        if preds is not None:
            lines.append(f"{src}: " + ", ".join(f"{p.label} {p.score:.3f}" for p in preds))
    return "\n".join(lines)
