"""A static record of a widget's last state, for notebooks opened without a kernel.

A saved notebook holds a widget as a reference to a model that only lives in the kernel: nbconvert,
nbviewer and GitHub show nothing of it. :class:`StaticRecord` makes a vitdream widget display itself as
three outputs: the live widget, then its key numbers (``text/plain``) and a PNG snapshot of what it
shows (``image/png``). The last two also carry a widget view with an empty ``model_id``, which the
live front ends (JupyterLab, Notebook 7) render as hidden, while static renderers skip a widget view
whose state is not saved and show the text and the picture instead.

Both records carry a ``display_id`` and are updated in place (``update_display``), never re-displayed:
when a watched child value changes (throttled, with a trailing update so the final state always
lands) from whatever thread changed it, and after each cell from the main thread (so nbclient,
which only reads the messages of the running cell, records the last state too). The live widget
itself is never re-created.
"""

from __future__ import annotations

import html
import io
import re
import threading
import time
import uuid
import weakref
from typing import Any, Iterable

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
HIDDEN_VIEW = {"model_id": "", "version_major": 2, "version_minor": 0}  # live front ends hide it
SNAPSHOT_HEIGHT = 224
SNAPSHOT_MAX_WIDTH = 1100

_displayed: "weakref.WeakSet[StaticRecord]" = weakref.WeakSet()
_hook_lock = threading.Lock()
_hooked_shells: "weakref.WeakSet[Any]" = weakref.WeakSet()


def plain_text(markup: str) -> str:
    """The text of an HTML fragment, on one line."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", markup or ""))).strip()


def compose(images: Iterable[bytes], height: int = SNAPSHOT_HEIGHT, max_width: int = SNAPSHOT_MAX_WIDTH) -> bytes | None:
    """One PNG of ``images`` (encoded bytes) in rows, each scaled to ``height``; None when there are none."""
    from PIL import Image

    tiles = []
    for data in images:
        if not data:
            continue
        with Image.open(io.BytesIO(bytes(data))) as opened:
            image = opened.convert("RGB")
        if image.width <= 1 or image.height <= 1:  # placeholders
            continue
        scale = min(height / image.height, max_width / image.width)
        tiles.append(image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.LANCZOS))
    if not tiles:
        return None
    gap, rows, row, width = 6, [], [], 0
    for tile in tiles:
        if row and width + gap + tile.width > max_width:
            rows.append(row)
            row, width = [], 0
        width += (gap if row else 0) + tile.width
        row.append(tile)
    rows.append(row)
    canvas_w = max(sum(t.width for t in r) + gap * (len(r) - 1) for r in rows)
    canvas_h = sum(max(t.height for t in r) for r in rows) + gap * (len(rows) - 1)
    canvas = Image.new("RGB", (canvas_w, canvas_h), "white")
    y = 0
    for r in rows:
        x = 0
        for tile in r:
            canvas.paste(tile, (x, y))
            x += tile.width + gap
        y += max(t.height for t in r) + gap
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()


class StaticRecord:
    """Mixin for an ``ipywidgets`` container: subclasses say what to record; display does the rest.

    ``record_text()``: the key numbers, a few lines; ``record_images()``: encoded images the widget
    shows; ``record_sources()``: child widgets whose ``value`` changes mean the record is out of date.
    """

    record_name = "vitdream widget"
    record_interval_s = 1.0
    record_height = SNAPSHOT_HEIGHT

    def record_text(self) -> str:
        raise NotImplementedError

    def record_images(self) -> list[bytes]:
        raise NotImplementedError

    def record_sources(self) -> list[Any]:
        raise NotImplementedError

    # -- what is published ----------------------------------------------------------------------
    def record_bundles(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The text and snapshot bundles of the current state."""
        import base64

        text = self.record_text()
        png = compose(self.record_images(), height=self.record_height)
        text_bundle = {WIDGET_VIEW: HIDDEN_VIEW, "text/plain": text}
        image_bundle = {WIDGET_VIEW: HIDDEN_VIEW, "text/plain": f"[{self.record_name}: no picture yet]"}
        if png is not None:
            image_bundle.update({"image/png": base64.b64encode(png).decode("ascii"),
                                 "text/plain": f"[{self.record_name}: snapshot of its last state]"})
        return text_bundle, image_bundle

    def _fingerprint(self) -> int:
        return hash((self.record_text(), *(bytes(b) if isinstance(b, memoryview) else b for b in self.record_images())))

    # -- display and updates ------------------------------------------------------------------------
    def _ipython_display_(self) -> None:
        from IPython.display import display

        self._record_setup()
        live = dict(self._repr_mimebundle_())  # the widget view of ipywidgets 8
        live["text/plain"] = f"[{self.record_name}: live in Jupyter; its last state is recorded below]"
        display(live, raw=True)
        text_bundle, image_bundle = self.record_bundles()
        display(text_bundle, raw=True, display_id=f"{self._record_id}-text")
        display(image_bundle, raw=True, display_id=f"{self._record_id}-png")
        self._record_published = self._record_flushed = self._fingerprint()
        _displayed.add(self)
        _hook_post_run_cell()

    def _record_setup(self) -> None:
        if getattr(self, "_record_id", None):
            return
        self._record_id = f"vitdream-{uuid.uuid4().hex}"
        self._record_lock = threading.Lock()
        self._record_timer: threading.Timer | None = None
        self._record_at = 0.0
        for source in self.record_sources():
            source.observe(lambda _change: self.refresh_record(), names="value")

    def refresh_record(self, force: bool = False) -> None:
        """Publish the record now if it changed (at most every ``record_interval_s``; a trailing update
        follows a burst). Safe from any thread."""
        if self not in _displayed:
            return
        with self._record_lock:
            wait = self._record_at + self.record_interval_s - time.monotonic()
            if wait > 0 and not force:
                if self._record_timer is None:
                    self._record_timer = threading.Timer(wait, self._publish_pending)
                    self._record_timer.daemon = True
                    self._record_timer.start()
                return
            self._record_at = time.monotonic()
        self._publish()

    def _publish_pending(self) -> None:
        with self._record_lock:
            self._record_timer = None
            self._record_at = time.monotonic()
        self._publish()

    def _publish(self, from_main: bool = False) -> None:
        from IPython.display import update_display

        fingerprint = self._fingerprint()
        if fingerprint == (self._record_flushed if from_main else self._record_published):
            return
        text_bundle, image_bundle = self.record_bundles()
        update_display(text_bundle, raw=True, display_id=f"{self._record_id}-text")
        update_display(image_bundle, raw=True, display_id=f"{self._record_id}-png")
        self._record_published = fingerprint
        if from_main:
            self._record_flushed = fingerprint


def flush_records() -> None:
    """After a cell: publish, from the main thread, every record that changed since the last flush."""
    for widget in list(_displayed):
        try:
            widget._publish(from_main=True)
        except Exception:  # noqa: BLE001 -- a record must never break the user's cell
            pass


def _hook_post_run_cell() -> None:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return
    shell = get_ipython()
    if shell is None:
        return
    with _hook_lock:
        if shell not in _hooked_shells:
            shell.events.register("post_run_cell", lambda *_: flush_records())
            _hooked_shells.add(shell)
