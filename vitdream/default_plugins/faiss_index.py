"""Built-in plugin: FAISS vector indexes (exact, HNSW, IVF)."""

from vitdream.hookspecs import hookimpl


@hookimpl(trylast=True)
def register_indexes(register):
    register("vitdream.search.faiss_index:FlatIndex", id="faiss-flat", description="exact cosine (inner product on L2-normalised vectors)")
    register("vitdream.search.faiss_index:HNSWIndex", id="faiss-hnsw", description="approximate, graph based (HNSW); efSearch knob")
    register("vitdream.search.faiss_index:IVFIndex", id="faiss-ivf", description="approximate, inverted lists (IVF); nprobe knob")
