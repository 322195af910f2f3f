"""``vitdream generate`` and ``vitdream samplers``: thin command-line views over the Python API."""

from __future__ import annotations

import json
from pathlib import Path

import click

from vitdream.commands import fail_clearly, given
from vitdream.generation.pngmeta import image_settings, save_image


@click.command(name="generate")
@click.argument("prompt")
@click.option("--model", default=None, help="Pipeline directory or hub id (default: the embedded mini SD).")
@click.option("--guidance-scale", "-g", type=float, default=7.5, show_default=True)
@click.option("--steps", type=int, default=25, show_default=True)
@click.option("--seed", type=int, default=None, help="Seed of the first image (default: random, recorded).")
@click.option("--sampler", default="ddim", show_default=True, help="A sampler id (see `vitdream samplers`).")
@click.option("--negative-prompt", default="")
@click.option("--num-images", "-n", type=int, default=1, show_default=True)
@click.option("--height", type=int, default=None, help="Default: the model's native size.")
@click.option("--width", type=int, default=None)
@click.option("--guidance-rescale", type=float, default=0.0, show_default=True)
@click.option("--lora", default=None, help="LoRA weights to apply on top of the model.")
@click.option("--device", default=None, help="cpu, cuda, ... (default: CUDA when present).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG file (FILE-1.png... for -n > 1).")
@fail_clearly
def generate_command(prompt, model, guidance_scale, steps, seed, sampler, negative_prompt, num_images, height,
                     width, guidance_rescale, lora, device, out):
    """Generate images from PROMPT and save them as PNG with their settings in the metadata."""
    from vitdream.components import get_entry
    from vitdream.generation import load_generator
    from vitdream.generation.settings import GenerationSettings

    values = dict(guidance_scale=guidance_scale, steps=steps, negative_prompt=negative_prompt, sampler=sampler,
                  num_images=num_images, guidance_rescale=guidance_rescale)
    # Fail on bad arguments before spending time loading the model.
    GenerationSettings.parse("generate", prompt=prompt, height=height or 8, width=width or 8, **values)
    get_entry("samplers", sampler)
    if not out.lower().endswith(".png"):
        raise click.BadParameter("settings are stored in PNG metadata; use a .png file name", param_hint="--out")
    gen = load_generator(model, **given(device=device, lora=lora))
    images = gen.generate(prompt, seed=seed, height=height, width=width, progress=True, **values)
    out_path = Path(out)
    for i, image in enumerate(images):
        path = out_path if len(images) == 1 else out_path.with_name(f"{out_path.stem}-{i + 1}{out_path.suffix}")
        save_image(image, path)
        seed = image_settings(image).get("image_seed")
        click.echo(f"{path}  seed={seed}" if seed is not None else str(path))


@click.command(name="reproduce")
@click.argument("image", type=click.Path(exists=True, dir_okay=False))
@click.option("--model", default=None, help="Override the model recorded in the image's metadata.")
@click.option("--device", default=None)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG file to write.")
@fail_clearly
def reproduce_command(image, model, device, out):
    """Regenerate IMAGE from the settings in its PNG metadata (model and LoRAs included)."""
    from vitdream.generation import load_generator
    from vitdream.generation.loading import EMBEDDED
    from vitdream.generation.pngmeta import read_settings

    settings = read_settings(image)
    ref = model or settings.get("model")
    if ref == EMBEDDED:
        ref = None
    loras = settings.get("loras") or []
    if len(loras) > 1:
        raise click.ClickException(f"{image}: made with {len(loras)} LoRAs; load them in Python to reproduce it")
    lora, scale = loras[0] if loras else (None, 1.0)
    gen = load_generator(ref, **given(device=device, lora=lora), **({"lora_scale": scale} if lora else {}))
    path = save_image(gen.reproduce(image), out)
    click.echo(f"{path}  seed={settings.get('image_seed', settings.get('seed'))}")


@click.command(name="samplers")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def samplers_command(as_json):
    """List the registered samplers and whether a seed makes them deterministic."""
    from vitdream.generation import list_samplers

    rows = list_samplers()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'id':<18}{'deterministic':<15}{'stochastic':<12}{'plugin':<36}description")
    for r in rows:
        click.echo(f"{r['id']:<18}{'yes' if r['deterministic'] else 'no':<15}{'yes' if r['stochastic'] else 'no':<12}"
                   f"{r['plugin']:<36}{r['description']}")
