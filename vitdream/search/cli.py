"""``vitdream index build|search|info`` -- thin commands over :mod:`vitdream.search`."""

from __future__ import annotations

import json

import click

from vitdream.commands import fail_clearly, parse_key_values


@click.group()
def index() -> None:
    """Build and query image-similarity indexes."""


@index.command()
@click.argument("source")
@click.option("--out", required=True, type=click.Path(), help="Index folder to write (extended if it exists).")
@click.option("--model", default=None, help="Embedder model (hub id or folder; default: the embedded mini ViT).")
@click.option("--kind", default=None, help="Index kind, e.g. faiss-flat, faiss-hnsw, faiss-ivf, faiss-ivfpq (see `vitdream plugins`).")
@click.option("--layer", default=-1, show_default=True, help="Encoder layer to embed from (-1: final).")
@click.option("--pool", default="cls", type=click.Choice(["cls", "mean"]), show_default=True)
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="Index option, e.g. ef_search=256 (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report.")
@fail_clearly
def build(source: str, out: str, model: str | None, kind: str | None, layer: int, pool: str, options: tuple[str, ...], as_json: bool) -> None:
    """Embed the images of SOURCE (folder or glob) into the index at --out."""
    from vitdream.search import build_index
    from vitdream.search.image_index import summary_text

    idx = build_index(source, kind=kind, out=out, model=model, layer=layer, pool=pool, progress=not as_json, **parse_key_values(options, "--option"))
    report = idx.last_report
    if as_json:
        click.echo(json.dumps({"index": out, "count": len(idx), "kind": idx.kind, "dim": idx.dim, **report.to_dict()}))
        return
    click.echo(f"{out}: {len(idx)} images, kind {idx.kind}, dim {idx.dim}")
    click.echo(summary_text(report.summary()))
    for f in report.failures:
        click.echo(f"  failed {f.source}: {f.reason}", err=True)
    if report.skipped:
        names = ", ".join(f.source for f in report.skipped[:5])
        click.echo(f"  skipped {len(report.skipped)} files that are not images: {names}{' ...' if len(report.skipped) > 5 else ''}", err=True)


@index.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@click.argument("image")
@click.option("-k", "--top-k", "k", default=10, show_default=True, help="Number of neighbours.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: [{path, score, id}, ...].")
@fail_clearly
def search(path: str, image: str, k: int, as_json: bool) -> None:
    """Print the K images of the index at PATH most similar to IMAGE."""
    from vitdream.search import load_index

    hits = load_index(path).search(image, top_k=k)
    if as_json:
        click.echo(json.dumps([{"path": h.path, "score": round(h.score, 6), "id": h.id} for h in hits]))
        return
    for rank, hit in enumerate(hits, 1):
        click.echo(f"{rank:3d}  {hit.score:.4f}  {hit.path}")


@index.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@fail_clearly
def info(path: str) -> None:
    """Print the manifest of the index at PATH."""
    from vitdream.search import load_index

    click.echo(json.dumps(load_index(path).manifest(), indent=1))
