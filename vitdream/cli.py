"""The ``vitdream`` command. Sub-commands come from plugins through ``register_commands``."""

from __future__ import annotations

import json
from typing import Any, Sequence

import click

from vitdream import __version__
from vitdream.commands import fail_clearly, parse_key_values


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vitdream")
def cli() -> None:
    """vitdream: vision transformers and DreamBooth in Jupyter."""


@cli.command(name="plugins")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@click.option("--all", "show_all", is_flag=True, help="Also show tracebacks of failed plugins.")
def plugins_command(as_json: bool, show_all: bool) -> None:
    """List every plugin: source, version, hooks, what it registered, and any error."""
    from vitdream.plugins import get_host

    host = get_host()
    infos = [info.to_dict() for info in host.report()]
    if as_json:
        click.echo(json.dumps(infos, indent=2))
        return
    click.echo(format_plugins(infos))
    if show_all:
        for name, tb in host.tracebacks.items():
            click.echo(f"\n--- {name} ---\n{tb}")


@cli.command(name="train")
@click.argument("trainer")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="A trainer option (YAML value), repeatable.")
@click.option("--resume", default=None, help="'latest' or a checkpoint path, where the trainer can resume.")
@click.option("--export", "export_dir", default=None, type=click.Path(file_okay=False),
              help="Export the trained model here when training finishes.")
@fail_clearly
def train_command(trainer: str, overrides: tuple[str, ...], resume: str | None, export_dir: str | None) -> None:
    """Run any registered TRAINER (see `vitdream plugins`), e.g. `vitdream train vit-finetune --set data=pics/
    --set output_dir=runs/pets`. Every trainer follows the same run protocol (vitdream.base.Trainer)."""
    from vitdream.components import create

    run = create("trainers", trainer, **parse_key_values(overrides, "--set"))
    run.fit(resume=resume)
    status = run.log.of_type("status")
    click.echo(f"{run.state}: {status[-1]['message'] if status else ''}")
    if export_dir and run.state == "finished":
        click.echo(f"exported {run.export(export_dir)}")


@cli.command(name="doctor")
@click.option("--model", "models", multiple=True, metavar="REF",
              help="A hub id or folder the course will load: checked to be cached or present (repeatable).")
@click.option("--no-load", is_flag=True, help="Only check that the embedded models are present (faster).")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@click.pass_context
def doctor_command(ctx: click.Context, models: tuple[str, ...], no_load: bool, as_json: bool) -> None:
    """Check this environment before class; exits with 1 when something will fail."""
    from vitdream.health import doctor

    report = doctor(models=models, load=not no_load)
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else str(report))
    ctx.exit(report.exit_code)


def format_plugins(infos: list[dict[str, Any]]) -> str:
    """A readable, one-block-per-plugin listing."""
    lines = []
    for info in infos:
        status = "ERROR" if info["error"] else "ok"
        lines.append(f"{info['name']} {info['version'] or ''} ({info['source']}) [{status}]".replace("  ", " "))
        if info["hooks"]:
            lines.append(f"  hooks: {', '.join(info['hooks'])}")
        for kind, ids in info["registered"].items():
            if ids:
                lines.append(f"  {kind}: {', '.join(ids)}")
        if info["error"]:
            lines.append(f"  error: {info['error']}")
    return "\n".join(lines)


_commands_added = False


def build_cli() -> click.Group:
    """The ``vitdream`` group with every plugin's commands added (once)."""
    global _commands_added
    if not _commands_added:
        from vitdream.plugins import get_host

        get_host().add_commands(cli)
        _commands_added = True
    return cli


def main(argv: Sequence[str] | None = None) -> Any:
    return build_cli().main(args=list(argv) if argv is not None else None, prog_name="vitdream")


if __name__ == "__main__":  # pragma: no cover
    main()
