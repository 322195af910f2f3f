"""``vd.widgets.search(index)``: query by upload, path or a click on a result; see the neighbours.

A thin view over :class:`vitdream.search.ImageIndex`: the search runs in the caller's thread
(milliseconds), thumbnails are filled in by a background thread that sets ``Image.value``
directly (no ``with output:``), generated lazily and cached by the index. A newer query
cancels the thumbnail work of an older one.
"""

from __future__ import annotations

import html
import os
import threading
from typing import Any

import ipywidgets as w

from vitdream.widgets import make_callable

from vitdream.search import Hit, ImageIndex
from vitdream.widgets.help import TOOLTIPS
from vitdream.widgets.record import StaticRecord, plain_text

_PLACEHOLDER = (  # 1x1 light-grey GIF shown until a thumbnail is ready
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xdd\xdd\xdd\x00\x00\x00!\xf9\x04\x00\x00\x00\x00\x00,"
    b"\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)


class ResultCard(w.VBox):
    """One neighbour: thumbnail, score and name, and a "more like this" button."""

    def __init__(self, size: int, on_more: Any) -> None:
        self.image = w.Image(value=_PLACEHOLDER, format="gif", layout=w.Layout(width=f"{size}px", height=f"{size}px", object_fit="contain"))
        self.caption = w.HTML()
        self.button = w.Button(description="more like this", tooltip=TOOLTIPS["more_like_this"], layout=w.Layout(width=f"{size}px"))
        self.hit: Hit | None = None
        self.button.on_click(lambda _: self.hit is not None and on_more(self.hit))
        super().__init__([self.image, self.caption, self.button], layout=w.Layout(width=f"{size + 12}px", padding="4px"))

    def show(self, hit: Hit) -> None:
        self.hit = hit
        name = html.escape(os.path.basename(hit.path))
        self.caption.value = f"<div style='font-size:11px;line-height:1.2' title='{html.escape(hit.path)}'><b>{hit.score:.3f}</b> {name}</div>"
        self.image.format, self.image.value = "gif", _PLACEHOLDER


class SearchWidget(StaticRecord, w.VBox):
    """The search widget. ``query(q)`` runs a search from code; ``hits`` holds the last results."""

    def __init__(self, index: ImageIndex, k: int = 10, columns: int = 5, thumb_size: int = 128, show_map: bool = False) -> None:
        self.index, self.thumb_size = index, thumb_size
        self.hits: list[Hit] = []
        self.error: str | None = None
        self._query: Any = None
        self._generation = 0
        self._thread: threading.Thread | None = None

        self.upload = w.FileUpload(accept="image/*", multiple=False, description="Upload query")
        self.path = w.Text(placeholder="…or a path, an indexed file or an id", continuous_update=False, layout=w.Layout(width="320px"))
        self.go = w.Button(description="Search", button_style="primary")
        self.k_slider = w.IntSlider(value=max(1, min(k, max(1, len(index)))), min=1, max=max(1, min(100, len(index))), description="k", continuous_update=False)
        self.map_toggle = w.ToggleButton(value=show_map, description="2-D map", tooltip=TOOLTIPS["map"])
        self.k_slider.tooltip = TOOLTIPS["k"]
        self.knob, self.recall = _knob_slider(index), w.HTML()
        self.query_image = w.Image(value=_PLACEHOLDER, format="gif", layout=w.Layout(width=f"{thumb_size}px", height=f"{thumb_size}px", object_fit="contain"))
        self.status = w.HTML(f"<i>{html.escape(repr(index))}</i>")
        self.report = w.HTML(_report_html(index))
        self.map_image = w.Image(format="png", layout=w.Layout(display="block" if show_map else "none", max_width="520px"))
        self.cards: list[ResultCard] = []
        self.grid = w.GridBox(layout=w.Layout(grid_template_columns=f"repeat({columns}, {thumb_size + 16}px)"))

        self.upload.observe(self._on_upload, names="value")
        self.go.on_click(lambda _: self._on_path())
        self.path.observe(lambda _: self._on_path(), names="value")  # Enter or leaving the box
        self.k_slider.observe(lambda _: self._query is not None and self.query(self._query), names="value")
        self.map_toggle.observe(self._on_map_toggle, names="value")
        self.knob.observe(self._on_knob, names="value")
        controls = w.HBox([self.upload, self.path, self.go, self.k_slider, self.map_toggle])
        index_row = w.HBox([w.HTML(f"index <b>{html.escape(index.kind)}</b>"), self.knob, self.recall])
        super().__init__([controls, index_row, self.report, w.HBox([self.query_image, self.status]), self.grid, self.map_image])
        self._measure()

    # -- actions ----------------------------------------------------------------------------
    def query(self, query: Any) -> list[Hit]:
        """Search for ``query`` (anything :meth:`ImageIndex.search` accepts) and show the results."""
        self._query = query
        try:
            self.hits = self.index.search(query, top_k=self.k_slider.value)
        except Exception as exc:  # shown in the widget: a notebook user sees why
            self.error = f"{type(exc).__name__}: {exc}"
            self.status.value = f"<span style='color:var(--jp-error-color1,#c92a2a)'>{html.escape(self.error)}</span>"
            return []
        self.error = None
        self.status.value = f"{len(self.hits)} nearest of {len(self.index)} images — {html.escape(_describe(query))}"
        while len(self.cards) < len(self.hits):
            self.cards.append(ResultCard(self.thumb_size, self.query))
        for card, hit in zip(self.cards, self.hits):
            card.show(hit)
        self.grid.children = tuple(self.cards[: len(self.hits)])
        self._generation += 1
        self._thread = threading.Thread(target=self._fill, args=(self._generation, query, list(self.hits)), daemon=True)
        self._thread.start()
        if self.map_toggle.value:
            self._draw_map()
        return self.hits

    def wait(self, timeout: float = 30.0) -> None:
        """Wait until the thumbnails of the last query are in (for scripts and tests)."""
        if self._thread is not None:
            self._thread.join(timeout)

    # -- handlers ---------------------------------------------------------------------------
    def _on_upload(self, change: Any) -> None:
        files = change["new"]
        if files:
            self.query(bytes(files[0]["content"]))

    def _on_path(self) -> None:
        text = self.path.value.strip()
        if text:
            self.query(int(text) if text.isdigit() and text not in self.index else text)

    def _on_knob(self, change: Any) -> None:
        self.index.configure(**{self.knob.description: change["new"]})
        self._measure()
        if self._query is not None:
            self.query(self._query)

    def _measure(self) -> None:
        """Show the recall the current knob buys: recall@k vs exact search on 50 stored images."""
        from vitdream.search.recall import sample_recall

        if self.knob.layout.display == "none" or not len(self.index):
            self.recall.value = "<span style='font-size:12px'>exact search</span>"
            return
        measured = sample_recall(self.index, k=self.k_slider.value, queries=50)
        self.recall.value = (f"<span style='font-size:12px'>recall@{measured.k} <b>{measured.recall:.3f}</b> vs exact "
                             f"({measured.queries} sample queries), p50 {measured.p50_ms:.2f} ms</span>")

    def _on_map_toggle(self, change: Any) -> None:
        self.map_image.layout.display = "block" if change["new"] else "none"
        if change["new"]:
            self._draw_map()

    def _draw_map(self) -> None:
        try:
            self.map_image.value = self.index.map(self._query, top_k=self.k_slider.value).png()
        except Exception as exc:
            self.status.value += f"<br><span style='color:var(--jp-error-color1,#c92a2a)'>map: {html.escape(str(exc))}</span>"

    def _fill(self, generation: int, query: Any, hits: list[Hit]) -> None:
        """Background thread: query thumbnail, then each result's; stops if a newer query started."""
        thumb = _query_thumbnail(self.index, query, self.thumb_size)
        if thumb is not None and generation == self._generation:
            self.query_image.format, self.query_image.value = "jpeg", thumb
        for card, hit in zip(list(self.cards), hits):
            if generation != self._generation:
                return
            data = self.index.thumbnail(hit.path, self.thumb_size)
            if data is not None and card.hit == hit:
                card.image.format, card.image.value = "jpeg", data
        self.refresh_record()  # the thumbnails are in

    # -- static record (widgets/record.py) ------------------------------------------------------------
    record_name = "vitdream search widget"
    record_height = 128

    def record_text(self) -> str:
        rows = [f"{hit.score:.3f} {os.path.basename(hit.path)}" for hit in self.hits]
        return "\n".join([plain_text(self.status.value)] + rows)

    def record_images(self) -> list[bytes]:
        shown = self.grid.children
        return [self.query_image.value] + [card.image.value for card in self.cards if card in shown]

    def record_sources(self) -> list[Any]:
        return [self.status, self.query_image]


def _query_thumbnail(index: ImageIndex, query: Any, size: int) -> bytes | None:
    if isinstance(query, Hit):
        query = query.path
    if isinstance(query, int):
        query = index.item(query).path
    if isinstance(query, (str, os.PathLike)):
        return index.thumbnail(query, size)
    try:
        import io

        from vitdream.images import load_image

        image = load_image(query)
        image.thumbnail((size, size))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG")
        return buffer.getvalue()
    except Exception:
        return None


def _knob_slider(index: ImageIndex) -> w.SelectionSlider:
    """ef_search / nprobe as a slider (hidden for exact kinds and untrained IVF)."""
    from vitdream.search.recall import knob_of

    name, values = knob_of(index)
    if name is None or len(values) < 2:
        return w.SelectionSlider(options=[0], description=name or "knob", layout=w.Layout(display="none"))
    current = index.vectors.options.model_dump().get(name) if index.vectors is not None else None
    if current is None and name == "nprobe":
        current = max(1, values[-1] // 8)  # the kinds' default: nlist / 8
    if current not in values:
        values = sorted({*values, int(current)})
    return w.SelectionSlider(options=values, value=current, description=name, continuous_update=False, tooltip=TOOLTIPS.get(name, ""))


def _report_html(index: ImageIndex) -> str:
    """The last build's counts: indexed / failed (by kind) / skipped as not images."""
    from vitdream.search.image_index import summary_text

    summary = index.last_summary
    if not summary:
        return ""
    failed = "".join(f"<li>{html.escape(f.source)}: {html.escape(f.reason)}</li>" for f in index.failures[:10])
    details = f"<details><summary>failed files</summary><ul>{failed}</ul></details>" if failed else ""
    return f"<div style='font-size:12px'>last build: {html.escape(summary_text(summary))}{details}</div>"


def _describe(query: Any) -> str:
    if isinstance(query, Hit):
        return f"more like {os.path.basename(query.path)}"
    if isinstance(query, (bytes, bytearray)):
        return "uploaded image"
    return f"query {query!r}" if isinstance(query, int) else f"query {os.fspath(query) if isinstance(query, (str, os.PathLike)) else type(query).__name__}"


def search(index: ImageIndex | str | os.PathLike, k: int = 10, columns: int = 5, thumb_size: int = 128, show_map: bool = False) -> SearchWidget:
    """A search widget over ``index`` (an :class:`ImageIndex` or the path of a saved one)."""
    if not isinstance(index, ImageIndex):
        from vitdream.search import load_index

        index = load_index(index)
    return SearchWidget(index, k=k, columns=columns, thumb_size=thumb_size, show_map=show_map)


make_callable(__name__)  # vd.widgets.search(...) works even where the package attribute is this module
