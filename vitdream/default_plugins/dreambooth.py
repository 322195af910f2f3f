"""Built-in plugin: DreamBooth trainers (full fine-tune and LoRA) on PyTorch Lightning, and the CLI command."""

import click

from vitdream.cli import fail_clearly, parse_key_values
from vitdream.hookspecs import hookimpl


@hookimpl
def register_trainers(register):
    register("vitdream.dreambooth.trainer:DreamBoothTrainer", id="dreambooth", description="DreamBooth: UNet (+ text encoder) fine-tuning with prior preservation")
    register("vitdream.dreambooth.lora:LoRADreamBoothTrainer", id="dreambooth-lora", description="DreamBooth with LoRA adapters (peft)")


@hookimpl
def register_commands(cli):
    @cli.command(name="dreambooth")
    @click.argument("config", type=click.Path(dir_okay=False))
    @click.option("--resume", default=None, help="'latest' or a checkpoint path: continue a run.")
    @click.option("--export", "export_dir", default=None, type=click.Path(file_okay=False),
                  help="Where to save the trained model (default: OUTPUT_DIR/model).")
    @click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override an option (YAML value).")
    @fail_clearly
    def dreambooth_command(config, resume, export_dir, overrides):
        """Train DreamBooth from a YAML CONFIG (option names as diffusers' train_dreambooth.py)."""
        from vitdream.dreambooth import dreambooth

        run = dreambooth(config, **parse_key_values(overrides, "--set"))
        run.fit(resume=resume)
        if run.state == "finished":
            out = run.export(export_dir or run.output_dir / "model")
            click.echo(f"exported {out}")
        else:
            click.echo(f"{run.state}: latest checkpoint {run.latest_checkpoint()}")
