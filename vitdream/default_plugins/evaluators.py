"""Built-in plugin: the evaluators ``vit-embedding``, ``clip`` and ``shapes-world``."""

from vitdream.hookspecs import hookimpl


@hookimpl
def register_evaluators(register):
    register("vitdream.evaluators.embedding:VitEmbeddingEvaluator", id="vit-embedding",
             description="subject fidelity: cosine of ViT embeddings to the reference images (any vd.load_embedder model; DINO)")
    register("vitdream.evaluators.clip:ClipEvaluator", id="clip",
             description="CLIP-I (image-image) and CLIP-T (image-prompt) with any CLIP checkpoint")
    register("vitdream.evaluators.world:ShapesWorldEvaluator", id="shapes-world",
             description="prompt fidelity in the shapes world: shape, colours, pattern, background as the prompt says")
