"""vitdream plugin: Qdrant as an index kind (``qdrant``) -- in-process, on disk, or a server."""

from vitdream import hookimpl

__version__ = "0.1.0"


@hookimpl
def register_indexes(register):
    # a "module:Class" string: `vitdream plugins` lists the kind without importing qdrant-client
    register("vitdream_qdrant.index:QdrantIndex", id="qdrant",
             description="Qdrant vector database: local (in-process) or a server (url); cosine")
