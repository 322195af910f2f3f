"""Built-in plugin: the transformers ViT-family backend (classify + embed)."""

from vitdream.hookspecs import hookimpl


@hookimpl(trylast=True)
def register_backends(register):
    register(
        "vitdream.vision.backend:TransformersViT",
        id="transformers-vit",
        tasks=("classify", "embed"),
        description="ViT, DeiT, BEiT ... image classifiers and embedders from transformers",
    )
