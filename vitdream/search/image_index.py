"""``ImageIndex``: an embedder + a vector index kind + the id -> path table, saved atomically.

The embeddings are kept beside the vector index (``embeddings.npy``), so "more like this",
the 2-D map, changing the index kind (:meth:`ImageIndex.rebuild`) and resuming a build never
re-embed a file. A file is re-embedded only when its (mtime, size) changed.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from vitdream.errors import VitdreamError
from vitdream.base.batching import as_sources, is_single
from vitdream.deprecation import renamed_count
from vitdream.images import BadImage, describe_source, expand_sources, folder_files
from vitdream.search import storage
from vitdream.search.table import Item, ItemTable

FORMAT = "vitdream-image-index"
FORMAT_VERSION = 1
DEFAULT_KIND = "faiss-flat"


@dataclass(frozen=True)
class Hit:
    """One search result: the file, its cosine similarity to the query, and its id in the index."""

    path: str
    score: float
    id: int


@dataclass
class AddReport:
    """What one :meth:`ImageIndex.add` did: files indexed (added, re-embedded, unchanged), image
    files that failed (``failures``, each with a reason and kind) and files skipped because their
    content is not an image (``skipped``: text, PDFs... whatever their extension)."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    failures: list[BadImage] = field(default_factory=list)
    skipped: list[BadImage] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def indexed(self) -> int:
        return self.added + self.updated + self.unchanged

    def failure_counts(self) -> dict[str, int]:
        """Failures per kind (truncated, corrupt, needs-codec...), most frequent first."""
        counts = Counter(f.kind for f in self.failures)
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def summary(self) -> dict[str, Any]:
        return {"indexed": self.indexed, "added": self.added, "updated": self.updated, "unchanged": self.unchanged,
                "failed": len(self.failures), "failed_by_kind": self.failure_counts(), "skipped_not_images": len(self.skipped),
                "seconds": round(self.seconds, 2)}

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary(), "failures": [f.to_dict() for f in self.failures], "skipped": [f.source for f in self.skipped]}

    def __str__(self) -> str:
        return summary_text(self.summary()) + "".join(f"\n  {f.source}: {f.reason}" for f in self.failures[:20])


def summary_text(summary: dict[str, Any]) -> str:
    """One line from :meth:`AddReport.summary`: indexed / failed (by kind) / skipped."""
    kinds = ", ".join(f"{k} {n}" for k, n in summary.get("failed_by_kind", {}).items())
    return (
        f"{summary['indexed']} indexed ({summary['added']} added, {summary['updated']} re-embedded, {summary['unchanged']} unchanged), "
        f"{summary['failed']} failed{f' ({kinds})' if kinds else ''}, {summary['skipped_not_images']} skipped (not images)"
        f" in {summary['seconds']:.1f} s"
    )


class IndexMismatchError(VitdreamError):
    """The embedder or vector dimension does not match the one the index was built with."""


def default_kind() -> str:
    """``$VITDREAM_INDEX_KIND`` or ``faiss-flat``: swap the backend without touching notebook code."""
    return os.environ.get("VITDREAM_INDEX_KIND") or DEFAULT_KIND


def default_index_options() -> dict[str, Any]:
    """``$VITDREAM_INDEX_OPTIONS`` (a JSON object), used with :func:`default_kind`."""
    raw = os.environ.get("VITDREAM_INDEX_OPTIONS")
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise VitdreamError(f"VITDREAM_INDEX_OPTIONS is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise VitdreamError("VITDREAM_INDEX_OPTIONS must be a JSON object")
    return value


def describe_embedder(embedder: Any, layer: int, pool: str) -> dict[str, Any]:
    """The embedder's identity for these settings (:meth:`vitdream.base.Embedder.describe`)."""
    info = embedder.describe(layer=layer, pool=pool, normalize=True)
    return json.loads(json.dumps(info, default=str))


def space_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Keys whose values make two descriptions different embedding spaces (empty: the same space).
    The model reference is ignored when both carry a weights fingerprint: a moved folder still matches."""
    drop = {"model", "device", "dtype"} if a.get("weights") and b.get("weights") else {"device", "dtype"}
    return sorted(k for k in (set(a) | set(b)) - drop if a.get(k) != b.get(k))


class ImageIndex:
    """Search a collection of image files by visual similarity."""

    def __init__(
        self,
        embedder: Any = None,
        kind: str | None = None,
        *,
        layer: int = -1,
        pool: str = "cls",
        index_options: dict[str, Any] | None = None,
        chunk_size: int = 512,
    ) -> None:
        self._embedder = embedder
        self.kind = kind or default_kind()
        self.layer, self.pool = layer, pool
        self.index_options = dict(index_options if index_options is not None else (default_index_options() if kind is None else {}))
        self.chunk_size = chunk_size
        self.embedder_info: dict[str, Any] | None = describe_embedder(embedder, layer, pool) if embedder is not None else None
        self.table = ItemTable()
        self.vectors: Any = None  # the VectorIndex, created with the first vectors
        self.next_id = 0
        self.failures: list[BadImage] = []
        self.skipped: list[BadImage] = []
        self.last_report: AddReport | None = None
        self.last_summary: dict[str, Any] | None = None  # of the last add(), kept in the manifest
        self.path: Path | None = None
        self.created = _now()
        self._map_cache: Any = None
        self._thumbs: Any = None
        self._check_kind()

    # -- basics -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.table)

    def __contains__(self, path: Any) -> bool:
        return self.table.by_path(os.path.abspath(os.fspath(path))) is not None

    def __repr__(self) -> str:
        model = (self.embedder_info or {}).get("model") or (self.embedder_info or {}).get("backend")
        return f"ImageIndex({len(self)} images, kind={self.kind!r}, dim={self.dim}, embedder={model!r}{', path=' + repr(str(self.path)) if self.path else ''})"

    @property
    def dim(self) -> int | None:
        return self.table.dim

    @property
    def paths(self) -> list[str]:
        return [it.path for it in self.table]

    def item(self, id: int) -> Item:
        item = self.table.get(id)
        if item is None:
            raise KeyError(f"no image with id {id} in this index ({len(self)} images)")
        return item

    @property
    def embedder(self) -> Any:
        """The embedder; loaded on first use from the manifest when the index was loaded without one."""
        if self._embedder is None:
            if not self.embedder_info:
                raise VitdreamError("this index has no embedder yet: pass embedder=... to ImageIndex or build_index")
            from vitdream.vision import load_embedder

            info = self.embedder_info
            try:
                self._embedder = load_embedder(info.get("model"), backend=info.get("backend"))
            except Exception as exc:
                raise VitdreamError(
                    f"cannot load the embedder this index was built with ({info.get('backend')} {info.get('model')!r}): {exc}; "
                    "pass embedder=... to load_index"
                ) from exc
            self._check_embedder(self._embedder)
        return self._embedder

    # -- building ---------------------------------------------------------------------------
    def add(
        self,
        sources: str | os.PathLike | Sequence[Any],
        *,
        checkpoint: str | os.PathLike | None = None,
        checkpoint_seconds: float = 60.0,
        progress: bool | None = None,
    ) -> AddReport:
        """Embed and add image files (a folder, a glob, or a list of paths).

        A folder is read by content: every file in it (hidden ones aside) that Pillow can open is
        indexed, whatever its extension; the others are counted in ``report.skipped``. Files
        already indexed with the same mtime and size are not embedded again; changed ones are
        re-embedded under a new id. Bad image files are reported in the returned
        :class:`AddReport` (and ``self.failures``), never raised. With ``checkpoint``, the index
        is saved there every ``checkpoint_seconds``, so an interrupted (even killed) build
        resumes from the last save.
        """
        start = time.perf_counter()
        report = AddReport()
        todo: list[tuple[int, str, os.stat_result]] = []
        seen: set[str] = set()
        for i, source in enumerate(_as_list(sources)):
            if not isinstance(source, (str, os.PathLike)):
                report.failures.append(BadImage(i, describe_source(source, i), "not a file path (an index stores paths; save the image to a file first)", "bad-input"))
                continue
            path = os.path.abspath(os.fspath(source))
            if path in seen:
                continue
            seen.add(path)
            try:
                stat = os.stat(path)
            except OSError as exc:
                report.failures.append(BadImage(i, os.fspath(source), exc.strerror.lower() if exc.strerror else str(exc), "missing"))
                continue
            old = self.table.by_path(path)
            if old is not None and old.unchanged(stat):
                report.unchanged += 1
                continue
            todo.append((i, path, stat))

        from tqdm.auto import tqdm

        show = len(todo) >= 64 if progress is None else progress
        last_save = time.monotonic()
        with tqdm(total=len(todo), desc="indexing", unit="img", disable=not show, smoothing=0.05) as bar:
            for start_at in range(0, len(todo), self.chunk_size):
                chunk = todo[start_at : start_at + self.chunk_size]
                self._add_chunk(chunk, report)
                bar.update(len(chunk))
                bar.set_postfix(failed=len(report.failures), skipped=len(report.skipped), refresh=False)
                if checkpoint is not None and time.monotonic() - last_save >= checkpoint_seconds:
                    report.seconds = time.perf_counter() - start
                    self.last_summary = report.summary()
                    self.save(checkpoint)
                    last_save = time.monotonic()
        report.seconds = time.perf_counter() - start
        self.failures, self.skipped, self.last_report = report.failures, report.skipped, report
        self.last_summary = report.summary()
        self._map_cache = None
        return report

    def _add_chunk(self, chunk: list[tuple[int, str, os.stat_result]], report: AddReport) -> None:
        embedder = self.embedder
        paths = [path for _, path, _ in chunk]
        vectors = embedder.embed(paths, layer=self.layer, pool=self.pool, normalize=True, progress=False)  # the index shows its own bar
        rows = np.asarray(getattr(vectors, "indices", np.arange(len(vectors))), dtype=np.int64)
        for bad in getattr(vectors, "failures", []):
            entry = BadImage(chunk[bad.index][0], bad.source, bad.reason, getattr(bad, "kind", "error"))
            (report.skipped if entry.kind == "not-image" else report.failures).append(entry)
        if not len(rows):
            return
        vectors = np.asarray(vectors, dtype=np.float32)
        self._check_dim(vectors.shape[1], "the embedder's vectors")
        if self.embedder_info is None:
            self.embedder_info = describe_embedder(embedder, self.layer, self.pool)
        items, replaced = [], []
        for r in rows.tolist():
            _, path, stat = chunk[r]
            old = self.table.by_path(path)
            if old is not None:
                replaced.append(old.id)
            items.append(Item(self.next_id, path, stat.st_mtime_ns, stat.st_size))
            self.next_id += 1
        if replaced:
            self._remove_ids(replaced)
        ids = np.array([it.id for it in items], np.int64)
        self._ensure_vectors(vectors.shape[1]).add(vectors, ids)
        self.table.add(items, vectors)
        report.added += len(items) - len(replaced)
        report.updated += len(replaced)

    def remove(self, paths_or_ids: Iterable[Any]) -> int:
        """Remove images by path or id; returns how many were in the index."""
        ids = []
        for key in paths_or_ids:
            item = self.table.get(key) if isinstance(key, (int, np.integer)) and not isinstance(key, bool) else self.table.by_path(os.path.abspath(os.fspath(key)))
            if item is not None:
                ids.append(item.id)
        self._remove_ids(ids)
        self._map_cache = None
        return len(ids)

    def _remove_ids(self, ids: list[int]) -> None:
        if ids:
            self.vectors.remove(np.array(ids, np.int64))
            self.table.remove(ids)

    def rebuild(self, kind: str | None = None, **index_options: Any) -> "ImageIndex":
        """Rebuild the vector index (optionally of another kind/options) from the stored embeddings."""
        self.kind = kind or self.kind
        self.index_options = index_options if (kind or index_options) else self.index_options
        self._check_kind()
        self.vectors = None
        if len(self.table):
            self._ensure_vectors(self.table.dim).add(self.table.vectors, self.table.ids)
        return self

    def configure(self, **knobs: Any) -> None:
        """Change search knobs of the vector index, e.g. ``configure(ef_search=256)`` or ``nprobe=32``."""
        if self.vectors is None:
            self.index_options.update(knobs)
            return
        current = self.vectors.options.model_dump()
        self.vectors.options = type(self.vectors.options).parse(self.kind, **{**current, **knobs})
        self.index_options.update(knobs)

    # -- searching --------------------------------------------------------------------------
    def search(self, query: Any, top_k: int = 10, *, k: int | None = None) -> list[Hit] | list[list[Hit]]:
        """The ``top_k`` most similar images to ``query``: an image (path, PIL, array, bytes), an
        indexed path or id, a :class:`Hit` ("more like this"), or an embedding vector.

        The rule of every vitdream call: one query -> one result (``list[Hit]``); a batch (a list,
        tuple, folder or glob) -> one hit list per query (as :meth:`search_many`). ``k``: the old
        name of ``top_k`` (deprecated)."""
        top_k = renamed_count(top_k, k, "search")
        if isinstance(query, (list, tuple)) or (isinstance(query, (str, os.PathLike)) and not is_single(query)):
            return self.search_many(as_sources(query), top_k)
        return self.search_vectors(self.query_vector(query), top_k)[0]

    def search_many(self, queries: Sequence[Any], top_k: int = 10, *, k: int | None = None) -> list[list[Hit]]:
        """One hit list per query (queries as accepted by :meth:`search`)."""
        top_k = renamed_count(top_k, k, "search_many")
        if not len(queries):
            return []
        return self.search_vectors(np.vstack([self.query_vector(q) for q in queries]), top_k)

    def search_vectors(self, vectors: Any, top_k: int = 10, *, k: int | None = None) -> list[list[Hit]]:
        """One hit list per row of ``vectors`` (n, dim)."""
        k = renamed_count(top_k, k, "search_vectors")
        if int(k) < 1:
            raise ValueError(f"top_k must be at least 1 (got {k})")
        vectors = np.atleast_2d(np.asarray(vectors, np.float32))
        if self.vectors is None or not len(self):
            return [[] for _ in vectors]
        self._check_dim(vectors.shape[1], "the query vector")
        scores, ids = self.vectors.search(vectors, min(int(k), len(self)))
        out = []
        for row_scores, row_ids in zip(scores, ids):
            hits = []
            for score, id in zip(row_scores.tolist(), row_ids.tolist()):
                item = self.table.get(id) if id >= 0 else None
                if item is not None:
                    hits.append(Hit(item.path, float(score), int(id)))
            out.append(hits)
        return out

    def duplicates(self, threshold: float = 0.98, k: int = 5) -> list[tuple[Hit, Hit]]:
        """Pairs of near-duplicate images (cosine >= ``threshold``), each pair once, most similar first.
        Looks at each image's ``k`` nearest neighbours (one batched search over the stored embeddings)."""
        if not len(self):
            return []
        pairs: dict[tuple[int, int], tuple[Hit, Hit]] = {}
        for item, hits in zip(self.table, self.search_vectors(self.table.vectors, k + 1)):
            for hit in hits:
                if hit.id != item.id and hit.score >= threshold:
                    key = (min(item.id, hit.id), max(item.id, hit.id))
                    pairs.setdefault(key, (Hit(item.path, 1.0, item.id), hit))
        return sorted(pairs.values(), key=lambda pair: -pair[1].score)

    def query_vector(self, query: Any) -> np.ndarray:
        """The embedding of a query (see :meth:`search`), shape (dim,)."""
        if isinstance(query, Hit):
            query = query.id
        if isinstance(query, (int, np.integer)) and not isinstance(query, bool):
            return self.table.vector(self.item(int(query)).id)
        if isinstance(query, (str, os.PathLike)):
            path = os.path.abspath(os.fspath(query))
            item = self.table.by_path(path)
            try:
                if item is not None and item.unchanged(os.stat(path)):
                    return self.table.vector(item.id)
            except OSError:
                pass
        if isinstance(query, np.ndarray) and query.dtype.kind == "f" and (query.ndim == 1 or (query.ndim == 2 and query.shape[0] == 1)):
            vector = query.reshape(-1).astype(np.float32)
            self._check_dim(len(vector), "the query vector")
            return vector
        from vitdream.images import load_image

        image = load_image(query)
        vector = np.asarray(self.embedder.embed([image], layer=self.layer, pool=self.pool, normalize=True, progress=False), np.float32)
        if not len(vector):
            raise VitdreamError(f"{describe_source(query)}: the embedder returned no vector")
        self._check_dim(vector.shape[1], "the embedder's vectors")
        return vector[0]

    # -- views ------------------------------------------------------------------------------
    def map(self, query: Any = None, top_k: int = 10, *, method: str = "auto", max_points: int = 5000, seed: int = 0,
            k: int | None = None) -> Any:
        """A 2-D map of the index (PCA, or UMAP if installed), the query and its ``top_k`` neighbours
        highlighted. Returns a :class:`vitdream.search.projection.IndexMap` (shows in Jupyter)."""
        from vitdream.search.projection import draw_map

        return draw_map(self, query=query, k=renamed_count(top_k, k, "map"), method=method, max_points=max_points, seed=seed)

    def thumbnail(self, id_or_path: Any, size: int = 128) -> bytes | None:
        """JPEG bytes of a small thumbnail (generated on first request, then cached), None if unreadable."""
        from vitdream.search.thumbnails import ThumbnailCache

        if self._thumbs is None:
            self._thumbs = ThumbnailCache()
        item = self.item(id_or_path) if isinstance(id_or_path, (int, np.integer)) else None
        path = item.path if item else os.fspath(id_or_path)
        return self._thumbs.get(path, size)

    # -- persistence -------------------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        entry = self._entry()
        from vitdream import __version__

        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "vitdream_version": __version__,
            "embedder": self.embedder_info,
            "layer": self.layer,
            "pool": self.pool,
            "normalize": True,
            "dim": self.dim,
            "count": len(self),
            "kind": self.kind,
            "kind_plugin": entry.plugin,
            "index_options": self.vectors.options.model_dump() if self.vectors is not None else self.index_options,
            "next_id": self.next_id,
            "last_build": self.last_summary,
            "created": self.created,
            "saved": _now(),
        }

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Save atomically to ``path`` (a folder; default: where it was loaded from or last saved).
        A crash mid-save leaves the previous save loadable."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise VitdreamError("save(path): this index has never been saved, give a path (e.g. 'photos.vdindex')")

        def fill(folder: Path) -> None:
            (folder / "manifest.json").write_text(json.dumps(self.manifest(), indent=1))
            self.table.save(folder)
            if self.vectors is not None:
                self.vectors.save(folder / "vectors")

        storage.write_snapshot(target, fill)
        self.path = target
        return target

    @classmethod
    def load(cls, path: str | os.PathLike, embedder: Any = None) -> "ImageIndex":
        """Load a saved index. ``embedder``: use this one (it must match the manifest); default:
        load the manifest's embedder when an image query first needs it."""
        folder = storage.current_snapshot(path)
        try:
            manifest = json.loads((folder / "manifest.json").read_text())
        except (OSError, ValueError) as exc:
            raise VitdreamError(f"{path}: unreadable manifest.json ({exc})") from None
        if manifest.get("format") != FORMAT:
            raise VitdreamError(f"{path}: not a vitdream image index (format {manifest.get('format')!r})")
        if manifest.get("format_version", 0) > FORMAT_VERSION:
            raise VitdreamError(f"{path}: saved by a newer vitdream ({manifest.get('vitdream_version')}); upgrade to load it")
        self = cls(None, manifest["kind"], layer=manifest["layer"], pool=manifest["pool"], index_options=manifest.get("index_options") or {})
        self.embedder_info = manifest.get("embedder")
        self.next_id = int(manifest.get("next_id", 0))
        self.last_summary = manifest.get("last_build")
        self.created = manifest.get("created", self.created)
        dim = manifest.get("dim")
        if dim is not None:
            self.table = ItemTable.load(folder, int(dim))
        if (folder / "vectors").is_dir():
            self.vectors = self._entry().load().load(folder / "vectors")
            if len(self.vectors) != len(self.table):
                raise VitdreamError(f"{path}: the vector index holds {len(self.vectors)} vectors but the table {len(self.table)} images")
        self.path = Path(path)
        if embedder is not None:
            self._check_embedder(embedder)
            self._embedder = embedder
        return self

    # -- checks ------------------------------------------------------------------------------
    def _entry(self) -> Any:
        from vitdream.components import get_entry

        return get_entry("indexes", self.kind)

    def _check_kind(self) -> None:
        self._entry()  # unknown kind -> UnknownIdError listing the known ones

    def _ensure_vectors(self, dim: int) -> Any:
        if self.vectors is None:
            self.vectors = self._entry().create(dim=dim, **self.index_options)
        return self.vectors

    def _check_dim(self, dim: int, what: str) -> None:
        if self.dim is not None and dim != self.dim:
            raise IndexMismatchError(
                f"{what} have dimension {dim}, but this index holds dimension-{self.dim} vectors "
                f"(built with {_name(self.embedder_info)}); use the same embedder, layer and pool"
            )

    def _check_embedder(self, embedder: Any) -> None:
        info = describe_embedder(embedder, self.layer, self.pool)
        diff = space_differences(info, self.embedder_info) if self.embedder_info else []
        if diff:
            raise IndexMismatchError(
                f"embedder mismatch: this index was built with {_name(self.embedder_info)}, not {_name(info)} "
                f"(differs in: {', '.join(diff)}); its vectors would be meaningless here"
            )
        if self.dim is not None and info.get("dim") not in (None, self.dim):
            self._check_dim(int(info["dim"]), "the embedder's vectors")


def _as_list(sources: Any) -> list[Any]:
    if isinstance(sources, (str, os.PathLike)) and os.path.isdir(sources):
        return folder_files(sources)  # by content: the loader tells images from the rest
    if isinstance(sources, (str, os.PathLike)):
        expanded = expand_sources(sources)
        if not expanded and not any(ch in os.fspath(sources) for ch in "*?[") and not os.path.exists(sources):
            raise FileNotFoundError(f"{os.fspath(sources)}: no such folder or file")
        return expanded
    return list(sources)


def _name(info: dict[str, Any] | None) -> str:
    if not info:
        return "an unknown embedder"
    return f"{info.get('backend')} {info.get('model')!r} (weights {info.get('weights', '?')}, dim {info.get('dim', '?')}, layer {info.get('layer', '?')}, pool {info.get('pool', '?')})"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
