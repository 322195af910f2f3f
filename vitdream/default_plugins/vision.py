"""Built-in plugin: the transformers ViT backend (classify + embed) and ``vitdream classify``."""

from vitdream.hookspecs import hookimpl


@hookimpl(trylast=True)
def register_backends(register):
    register(
        "vitdream.vision.backend:TransformersViT",
        id="transformers-vit",
        tasks=("classify", "embed"),
        description="ViT, DeiT, BEiT ... image classifiers and embedders from transformers",
    )


@hookimpl
def register_commands(cli):
    from vitdream.vision.cli import classify_command

    cli.add_command(classify_command)
