"""``vd.widgets.generate(gen)``: prompt, guidance-scale slider, steps, seed, sampler, live preview, sweep, save;
word maps (click a word of the prompt: its cross-attention map over the image); a study tab (a guidance
or sampler study of the prompt, plotted live as rows arrive, cancellable).

A thin view over :meth:`vitdream.base.Generator.generate` and ``preview`` (any generator backend). Moving a slider regenerates with the same seed, so
only the changed setting shows its effect. Sliders report on release (``continuous_update=False``);
one background worker runs the newest request and cancels a stale one mid-way. The worker sets
widget values directly (never ``with output:`` from a thread) and throttles previews.
"""

from __future__ import annotations

import html
import io
import secrets
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import ipywidgets as w

from vitdream.widgets import make_callable

from vitdream.errors import VitdreamError
from vitdream.widgets.help import TOOLTIPS
from vitdream.widgets.record import StaticRecord, plain_text

DISPLAY_SIZE = 256
PREVIEW_INTERVAL_S = 0.25


def show_png(image_widget: w.Image, data: bytes | None) -> None:
    """Show PNG ``data`` in ``image_widget``; hide it while there is none (no broken-image icon)."""
    image_widget.value = data or b""
    image_widget.layout.display = None if data else "none"


def png_bytes(image: Any, size: int | None = DISPLAY_SIZE) -> bytes:
    """PNG bytes of ``image``, enlarged (nearest neighbour) to at least ``size`` pixels wide for display."""
    from PIL import Image

    if size and image.width < size:
        factor = -(-size // image.width)
        image = image.resize((image.width * factor, image.height * factor), Image.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class GenerateWidget(StaticRecord, w.VBox):
    """Controls above the image, the per-step preview/progress, the sweep row and a status line."""

    def __init__(self, generator: Any, prompt: str = "", *, guidance_scale: float = 7.5, steps: int = 20,
                 seed: int = 0, sampler: str = "ddim", preview: bool = True,
                 sweep_scales: Sequence[float] = (1, 3, 5, 7.5, 10), attention: bool = True,
                 evaluators: Sequence[Any] | None = None) -> None:
        from vitdream.generation import list_samplers
        from vitdream.widgets.study_tab import StudyTab

        self.generator = generator
        self.sweep_scales = list(sweep_scales)
        self.images: list[Any] = []  # the latest result, each with its settings in .info
        self.sweep_tiles: list[Any] = []  # the latest sweep's images
        slow = dict(continuous_update=False)
        self.prompt = w.Text(value=prompt, placeholder="a photo of sks dog", description="prompt", **slow,
                             layout=w.Layout(width="520px"))
        self.negative = w.Text(value="", description="negative", **slow, layout=w.Layout(width="520px"))
        self.guidance = w.FloatSlider(value=guidance_scale, min=0, max=20, step=0.5, description="guidance", **slow)
        self.steps = w.IntSlider(value=steps, min=1, max=100, description="steps", **slow)
        self.seed = w.BoundedIntText(value=seed, min=0, max=2**31 - 1, description="seed", layout=w.Layout(width="200px"))
        self.new_seed = w.Button(description="new seed", layout=w.Layout(width="90px"))
        rows = list_samplers()
        self.sampler = w.Dropdown(
            options=[(f"{r['id']}{' (stochastic)' if r.get('stochastic') else ''}"
                      f"{'' if r.get('deterministic', True) else ' (not seed-deterministic)'}", r["id"]) for r in rows],
            value=sampler, description="sampler")
        descriptions = {r["id"]: r.get("description", "") for r in rows}
        self.sampler_info = w.HTML(layout=w.Layout(margin="0 0 0 90px"))
        show_info = lambda _c=None: setattr(self.sampler_info, "value",  # noqa: E731
                                            f"<small>{html.escape(descriptions.get(self.sampler.value, ''))}</small>")
        self.sampler.observe(show_info, names="value")
        show_info()
        self.live_preview = w.Checkbox(value=preview, description="live preview", indent=False)
        self.word_maps = w.Checkbox(value=attention, description="word maps", indent=False,
                                    tooltip="record cross-attention: click a word to see where it acted")
        self.words = w.ToggleButtons(options=[], style={"button_width": "auto"})
        self.words.layout.display = "none"
        self.generate_button = w.Button(description="Generate", button_style="primary")
        self.sweep_button = w.Button(description="Sweep guidance")
        self.save_path = w.Text(value="", placeholder="(auto) vitdream-SEED.png", description="save as")
        self.save_button = w.Button(description="Save PNG")
        self.image = w.Image(format="png", layout=w.Layout(object_fit="contain", display="none"))
        self.progress = w.IntProgress(value=0, min=0, max=steps, description="", layout=w.Layout(width="256px"))
        self.sweep_image = w.Image(format="png", layout=w.Layout(object_fit="contain", display="none"))
        self.status = w.HTML()
        self.study = StudyTab(self, evaluators)
        for name in ("guidance", "steps", "seed", "new_seed", "sampler", "negative", "live_preview"):
            getattr(self, name).tooltip = TOOLTIPS[name]
        self.sweep_button.tooltip = TOOLTIPS["sweep"]

        self._lock = threading.Lock()
        self._pending: str | None = None
        self._cancel = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._worker: threading.Thread | None = None

        for control in (self.prompt, self.negative, self.guidance, self.steps, self.seed, self.sampler):
            control.observe(lambda _change: self.request("generate"), names="value")
        self.new_seed.on_click(lambda _b: setattr(self.seed, "value", secrets.randbelow(2**31)))
        self.generate_button.on_click(lambda _b: self.request("generate"))
        self.sweep_button.on_click(lambda _b: self.request("sweep"))
        self.save_button.on_click(lambda _b: self.save())
        self.words.observe(lambda change: self.show_word(change["new"]), names="value")
        image_tab = w.VBox([
            w.HBox([self.guidance, self.steps]),
            w.HBox([self.seed, self.new_seed, self.sampler, self.live_preview, self.word_maps]),
            self.sampler_info,
            w.HBox([self.generate_button, self.sweep_button, self.save_path, self.save_button]),
            w.HBox([w.VBox([self.image, self.words, self.progress]), self.sweep_image],
                   layout=w.Layout(align_items="flex-start")),
        ])
        self.tabs = w.Tab([image_tab, self.study])
        for i, title in enumerate(("image", "study")):
            self.tabs.set_title(i, title)
        super().__init__([self.prompt, self.negative, self.tabs, self.status])

    # -- requests and the worker -----------------------------------------------------------
    def request(self, kind: str = "generate") -> None:
        """Ask for a generation (or ``"sweep"``); a running one is cancelled, the newest request wins."""
        if not self.prompt.value.strip():
            self._say("type a prompt, then press Enter or Generate", error=False)
            return
        with self._lock:
            self._pending = kind
            self._cancel.set()
            self._idle.clear()
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="vitdream-generate", daemon=True)
                self._worker.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every request is done (for scripts and tests); False on timeout."""
        return self._idle.wait(timeout)

    def _work(self) -> None:
        while True:
            with self._lock:
                kind, self._pending = self._pending, None
                if kind is None:
                    self._worker = None
                    self._idle.set()
                    return
                self._cancel = cancel = threading.Event()
            try:
                {"sweep": self._sweep, "study": self.study.run}.get(kind, self._generate)(cancel)
            except VitdreamError as exc:
                if not cancel.is_set():
                    self._say(str(exc))
            except Exception as exc:  # keep the widget alive; show what went wrong
                self._say(f"{type(exc).__name__}: {exc}")

    def _settings(self) -> dict[str, Any]:
        return dict(prompt=self.prompt.value, negative_prompt=self.negative.value, guidance_scale=self.guidance.value,
                    steps=self.steps.value, seed=self.seed.value, sampler=self.sampler.value)

    def _generate(self, cancel: threading.Event) -> None:
        settings = self._settings()
        self.progress.value, self.progress.max = 0, settings["steps"]
        last_preview = [time.monotonic()]

        def on_step(info: dict[str, Any]) -> None:
            self.progress.value = info["step"]
            now = time.monotonic()
            latents = info.get("latents")
            if (self.live_preview.value and latents is not None and info["step"] < info["num_steps"]
                    and now - last_preview[0] >= PREVIEW_INTERVAL_S):
                preview = self.generator.preview(latents[:1])
                if preview:
                    show_png(self.image, png_bytes(preview[0]))
                last_preview[0] = time.monotonic()

        start = time.perf_counter()
        extra = {"attention": True} if self.word_maps.value else {}
        self.images = self.generator.generate(settings.pop("prompt"), callback=on_step, cancel=cancel, **settings, **extra)
        show_png(self.image, png_bytes(self.images[0]))
        self._offer_words(getattr(self.images[0], "attention", None))
        self._say(f"seed {self.seed.value} · guidance {self.guidance.value:g} · {self.steps.value} steps · "
                  f"{self.sampler.value} · {time.perf_counter() - start:.2f} s", error=False)

    def _sweep(self, cancel: threading.Event) -> None:
        from vitdream.base.results import image_row

        settings = self._settings()
        prompt = settings.pop("prompt")
        self.sweep_tiles = tiles = []
        for scale in self.sweep_scales:
            settings["guidance_scale"] = scale
            tiles.append(self.generator.generate(prompt, cancel=cancel, **settings)[0])
            labels = [f"g={g:g}" for g in self.sweep_scales[: len(tiles)]]
            show_png(self.sweep_image, png_bytes(image_row(tiles, labels, min_side=128), None))
        self._say(f"sweep, seed {self.seed.value}: guidance {', '.join(f'{g:g}' for g in self.sweep_scales)}", error=False)

    # -- word maps -------------------------------------------------------------------------
    def _offer_words(self, maps: Any) -> None:
        """One button per word of the prompt (and "image"), or none without maps."""
        if maps is None:
            self.words.options, self.words.layout.display = [], "none"
            return
        self.words.options = [("image", -1)] + [(word, i) for i, word in enumerate(maps.words)]
        self.words.value = -1
        self.words.layout.display = None

    def show_word(self, index: int | None) -> None:
        """Show word ``index``'s cross-attention map over the image (-1: the plain image)."""
        maps = getattr(self.images[0], "attention", None) if self.images else None
        if maps is None or index is None:
            return
        picture = self.images[0] if index < 0 else maps.overlay(index)
        show_png(self.image, png_bytes(picture))
        if index >= 0:
            self._say(f"where \u201c{maps.words[index]}\u201d acted: cross-attention summed over heads, layers and steps "
                      f"(bright = more)", error=False)

    # -- static record (widgets/record.py) ------------------------------------------------------------
    record_name = "vitdream generate widget"
    record_height = 256

    def record_text(self) -> str:
        prompt = f"prompt {self.prompt.value!r}" + (f", negative {self.negative.value!r}" if self.negative.value else "")
        return "\n".join(t for t in (prompt, plain_text(self.status.value)) if t)  # status: the last image's settings

    def record_images(self) -> list[bytes]:
        return [v for v in (self.image.value, self.sweep_image.value, self.study.plot.value) if v]

    def record_sources(self) -> list[Any]:
        return [self.status]

    # -- saving ----------------------------------------------------------------------------
    def save(self, path: str | Path | None = None) -> Path | None:
        """Save the current image with its settings in the PNG metadata; returns the path."""
        from vitdream.generation.pngmeta import save_image

        if not self.images:
            self._say("nothing to save yet: generate an image first", error=False)
            return None
        path = Path(path or self.save_path.value or f"vitdream-{self.seed.value}.png")
        try:
            save_image(self.images[0], path)
        except (OSError, ValueError) as exc:
            self._say(f"{path}: {exc}")
            return None
        self._say(f"saved {html.escape(str(path))} (settings in its metadata: <code>gen.reproduce(path)</code>)",
                  error=False, escape=False)
        return path

    def _say(self, message: str, error: bool = True, escape: bool = True) -> None:
        text = html.escape(message) if escape else message
        self.status.value = f"<span style='color:var(--jp-error-color1,#b00)'>{text}</span>" if error else text


def generate(generator: Any = None, prompt: str = "", **settings: Any) -> GenerateWidget:
    """The generation widget for ``generator`` (default: ``vd.load_generator()``, the embedded mini SD).

    ``settings``: initial ``guidance_scale``, ``steps``, ``seed``, ``sampler``, ``preview``, ``sweep_scales``,
    ``attention`` (word maps, default on), ``evaluators`` (the study tab's; default shapes-world + vit-embedding).
    An initial image is generated at once when ``prompt`` is given.
    """
    if generator is None or isinstance(generator, (str, Path)):
        from vitdream.generation import load_generator

        generator = load_generator(generator)
    widget = GenerateWidget(generator, prompt, **settings)
    if prompt:
        widget.request("generate")
    return widget


make_callable(__name__)  # vd.widgets.generate(...) works even where the package attribute is this module
