"""vitdream plugin: an exact brute-force NumPy vector index (kind ``numpy-exact``)."""

from vitdream import hookimpl

__version__ = "0.1.0"


@hookimpl
def register_indexes(register):
    # A "module:Class" string keeps `vitdream plugins` from importing anything heavy.
    register("vitdream_numpy_index.index:NumpyExactIndex", id="numpy-exact",
             description="exact cosine search by a NumPy matrix product (small collections, teaching)")
