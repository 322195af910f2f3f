"""``vd.widgets.classify(clf)``: upload or pick an image -> top-k bars + attention-rollout overlay.

A thin view over :meth:`~vitdream.base.Classifier.classify`, ``labels``, ``attention_map`` and
``model_view`` of any :class:`vitdream.base.Classifier`; :meth:`ClassifyWidget.show`
is what the controls call, and what code (or a test) can call directly.
"""

from __future__ import annotations

import html
import io
from typing import Any

import ipywidgets as w

from vitdream.widgets import make_callable

from vitdream.errors import VitdreamError
from vitdream.widgets.help import TOOLTIPS
from vitdream.widgets.record import StaticRecord, plain_text

DISPLAY_SIZE = 224


class ClassifyWidget(StaticRecord, w.VBox):
    """Controls (upload, picker, top-k, attention toggle) above the image and its predictions."""

    def __init__(self, classifier: Any, images: Any = None, top_k: int = 5) -> None:
        from vitdream.images import expand_sources

        self.classifier = classifier
        self.upload = w.FileUpload(accept="image/*", multiple=False, description="Upload")
        choices = [str(s) for s in expand_sources(images)] if images is not None else []
        # "" not None: ipywidgets 8 turns a None value into "no selection", which hides the placeholder
        self.picker = w.Dropdown(options=[("(pick an image)", "")] + [(c.rsplit("/", 1)[-1], c) for c in choices])
        self.top_k = w.BoundedIntText(value=top_k, min=1, max=len(getattr(classifier, "labels", ())) or 1000, description="top-k", layout=w.Layout(width="140px"))
        self.show_attention = w.Checkbox(value=True, description="attention map", indent=False)
        self.top_k.tooltip, self.show_attention.tooltip = TOOLTIPS["top_k"], TOOLTIPS["attention"]
        self.image = w.Image(format="png", width=DISPLAY_SIZE, height=DISPLAY_SIZE)
        self.bars = w.HTML()
        self.status = w.HTML()
        self.current: Any = None
        self.predictions: list[Any] = []
        self.upload.observe(self._on_upload, names="value")
        self.picker.observe(lambda change: bool(change["new"]) and self.show(change["new"]), names="value")
        for control in (self.top_k, self.show_attention):
            control.observe(lambda _: self.current is not None and self.show(self.current), names="value")
        controls = w.HBox([self.upload, self.picker, self.top_k, self.show_attention])
        super().__init__([controls, w.HBox([self.image, self.bars]), self.status])

    def show(self, source: Any, name: str | None = None) -> list[Any]:
        """Classify ``source`` (path, bytes, PIL image, array) and display it; returns the predictions."""
        from vitdream.images import load_image
        from vitdream.vision.attention import overlay

        self.current = source
        try:
            image = load_image(source, name=name) if name else load_image(source)
            predictions = self.classifier.classify(image, top_k=self.top_k.value)
            heat = self.classifier.attention_map(image) if self.show_attention.value else None
            if heat is not None:
                view = overlay(self.classifier.model_view(image), heat, size=DISPLAY_SIZE)
            else:
                view = image.resize((DISPLAY_SIZE, DISPLAY_SIZE))
        except VitdreamError as exc:
            self.status.value = f"<span style='color:var(--jp-error-color1,#b00)'>{html.escape(str(exc))}</span>"
            self.predictions = []
            self.bars.value = ""
            return []
        buffer = io.BytesIO()
        view.save(buffer, format="PNG")
        self.image.value = buffer.getvalue()
        self.predictions = predictions
        self.bars.value = bars_html(predictions)
        self.status.value = ""
        return predictions

    # -- static record (widgets/record.py) ------------------------------------------------------------
    record_name = "vitdream classify widget"

    def record_text(self) -> str:
        if self.status.value:
            return plain_text(self.status.value)
        rows = [f"{p.label} {p.score:.3f}" for p in self.predictions]
        return "top predictions:\n" + "\n".join(rows) if rows else "no image classified yet"

    def record_images(self) -> list[bytes]:
        return [self.image.value] if self.predictions else []

    def record_sources(self) -> list[Any]:
        return [self.bars, self.status, self.image]

    def _on_upload(self, change: dict[str, Any]) -> None:
        files = change["new"]
        if files:
            item = files[0]
            self.show(bytes(item["content"]), name=item.get("name", "upload"))


def bars_html(predictions: list[Any]) -> str:
    """Horizontal score bars as plain HTML (renders anywhere, no plotting library)."""
    rows = []
    for p in predictions:
        width = max(0.0, min(1.0, p.score)) * 100
        rows.append(
            f"<div style='margin:2px 0'><div style='font-family:monospace'>{html.escape(p.label)} {p.score:.3f}</div>"
            f"<div style='background:#4c72b0;height:12px;width:{width:.1f}%'></div></div>"
        )
    return f"<div style='width:260px;padding-left:12px'>{''.join(rows)}</div>"


def classify(classifier: Any = None, images: Any = None, top_k: int = 5) -> ClassifyWidget:
    """The classify widget for ``classifier`` (default: ``vd.load_classifier()``); ``images``: a folder,
    glob or list to pick from."""
    if classifier is None or isinstance(classifier, str):
        from vitdream.vision import load_classifier

        classifier = load_classifier(classifier)
    return ClassifyWidget(classifier, images=images, top_k=top_k)


make_callable(__name__)  # vd.widgets.classify(...) works even where the package attribute is this module
