"""Built-in plugin: FAISS vector indexes (exact, HNSW, IVF, IVF-PQ) and the ``vitdream index`` commands."""

from vitdream.hookspecs import hookimpl


@hookimpl
def register_indexes(register):
    register("vitdream.search.faiss_index:FlatIndex", id="faiss-flat", description="exact cosine (inner product on L2-normalised vectors)")
    register("vitdream.search.faiss_index:HNSWIndex", id="faiss-hnsw", description="approximate, graph based (HNSW); knob ef_search; removals are tombstones + rebuild")
    register("vitdream.search.faiss_index:IVFIndex", id="faiss-ivf", description="approximate, inverted lists (IVF), trained automatically by size; knob nprobe")
    register("vitdream.search.ivfpq_index:IVFPQIndex", id="faiss-ivfpq", description="approximate and compressed (IVF-PQ, ~m+16 bytes a vector in memory), exact re-ranking from a memory-mapped file; knobs nprobe, rerank")


@hookimpl
def register_commands(cli):
    from vitdream.search.cli import index

    cli.add_command(index)
