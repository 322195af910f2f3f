"""Built-in plugin: DreamBooth trainers (full fine-tune and LoRA) on PyTorch Lightning, and the CLI command."""

import click

from vitdream.commands import fail_clearly
from vitdream.hookspecs import hookimpl


@hookimpl
def register_trainers(register):
    register("vitdream.dreambooth.trainer:DreamBoothTrainer", id="dreambooth", description="DreamBooth: UNet (+ text encoder) fine-tuning with prior preservation")
    register("vitdream.dreambooth.lora:LoRADreamBoothTrainer", id="dreambooth-lora", description="DreamBooth with LoRA adapters (peft)")


@hookimpl
def register_commands(cli):
    @cli.command(name="dreambooth", add_help_option=False,
                 context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
    @click.argument("argv", nargs=-1, type=click.UNPROCESSED)
    @fail_clearly
    def dreambooth_command(argv):
        """Train DreamBooth: diffusers' train_dreambooth[_lora].py flags verbatim and/or a YAML config (--help)."""
        from vitdream.dreambooth import dreambooth
        from vitdream.dreambooth.reference import default_differences, describe_differences, parse_command

        command = parse_command(argv)
        run = dreambooth(command.config, trainer=command.trainer, **command.options)
        differences = default_differences(run.config, set(command.options) | set(run.given_options))
        if differences:
            click.echo(f"note: {describe_differences(differences)}", err=True)
        run.fit(resume=command.resume)
        if run.state == "finished":
            out = run.export(command.export or run.output_dir / "model")
            click.echo(f"exported {out}")
        else:
            click.echo(f"{run.state}: latest checkpoint {run.latest_checkpoint()}")
