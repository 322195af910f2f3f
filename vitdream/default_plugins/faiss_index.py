"""Built-in plugin: FAISS vector indexes (exact, HNSW, IVF) and the ``vitdream index`` commands."""

from vitdream.hookspecs import hookimpl


@hookimpl
def register_indexes(register):
    register("vitdream.search.faiss_index:FlatIndex", id="faiss-flat", description="exact cosine (inner product on L2-normalised vectors)")
    register("vitdream.search.faiss_index:HNSWIndex", id="faiss-hnsw", description="approximate, graph based (HNSW); knob ef_search; removals are tombstones + rebuild")
    register("vitdream.search.faiss_index:IVFIndex", id="faiss-ivf", description="approximate, inverted lists (IVF), trained automatically by size; knob nprobe")


@hookimpl
def register_commands(cli):
    from vitdream.search.cli import index

    cli.add_command(index)
