"""Built-in plugin: the transformers ViT backend (classify + embed), ViT fine-tuning, ``vitdream classify``."""

from vitdream.hookspecs import hookimpl


@hookimpl
def register_backends(register):
    register(
        "vitdream.vision.backend:TransformersViT",
        id="transformers-vit",
        tasks=("classify", "embed"),
        description="ViT, DeiT, BEiT ... image classifiers and embedders from transformers",
    )


@hookimpl
def register_trainers(register):
    register("vitdream.vision.finetuning:ViTFinetuneTrainer", id="vit-finetune",
             description="ViT fine-tuning on folder/<class>/* images (new head, frozen layers, best epoch kept)")


@hookimpl
def register_commands(cli):
    from vitdream.vision.cli import classify_command

    cli.add_command(classify_command)
