"""The DreamBooth demo subject of the shapes world: "sks star", a two-tone star -- red on top, green below.

The embedded mini Stable Diffusion has only ever seen shapes of one colour each, so it cannot draw
this star -- nor name it. DreamBooth teaches it from four or five pictures (:func:`dreambooth_subject`),
with the class noun ``"star"`` of the world. Its colours are the world's own on purpose: the mini SD's
VAE (trained on the world, frozen during DreamBooth) can only reproduce colours and patterns at the
scale of the world -- magenta, or stripes a few pixels wide, come back as a blur.

>>> import vitdream as vd
>>> subject = vd.datasets.dreambooth_subject()
>>> subject.instance_prompt, subject.class_prompt
('a photo of sks star', 'a photo of a star')
>>> paths = subject.save("my_star/")          # 5 PNGs: the instance_images of a DreamBooth run

Only PIL is imported here. Same arguments -> same pixels.
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from PIL import Image, ImageDraw

from vitdream.datasets.shapes import BACKGROUNDS, PALETTE

#: the colours of the bands, from the top
BAND_COLOURS: tuple[str, ...] = ("red", "green")
#: the backgrounds of the instance pictures; blue and white are left out: "on a blue background" is a new context
INSTANCE_BACKGROUNDS: tuple[str, ...] = ("black", "yellow", "black", "yellow", "black")
_SUPERSAMPLE = 4
#: DreamBooth settings for the embedded mini SD, which is about 200x smaller than SD 1.5: a larger
#: learning rate than diffusers' 5e-6 (made for SD 1.5), fewer steps and class images (CPU minutes).
#: ``vd.dreambooth(base=None)`` applies the same values by default; they are spelled out here so that
#: they also apply when the base is given as a path to the mini SD (or a copy of it).
MINI_SD_DREAMBOOTH: dict[str, Any] = {"learning_rate": 1e-4, "max_train_steps": 200, "num_class_images": 20}


def star_points(cx: float, cy: float, r: float, rotation: float) -> list[tuple[float, float]]:
    """The 10 corners of a five-pointed star (inner radius 0.45 r), as the shapes world draws it."""
    return [
        (cx + rad * math.cos(math.radians(a + rotation)), cy + rad * math.sin(math.radians(a + rotation)))
        for rad, a in ((r if k % 2 == 0 else 0.45 * r, -90 + 36 * k) for k in range(10))
    ]


def render_subject(
    background: str = "black",
    size: int = 32,
    center: tuple[float, float] = (0.5, 0.5),
    radius: float = 0.42,
    rotation: float = 0.0,
    bands: int = 2,
    colours: Sequence[str] = BAND_COLOURS,
) -> Image.Image:
    """One picture of the subject: a star cut into ``bands`` horizontal bands (2: halves) of
    alternating ``colours``, on a plain ``background`` (a colour name of the world or an RGB tuple)."""
    big = size * _SUPERSAMPLE
    bg = PALETTE[background] if isinstance(background, str) else tuple(background)
    fills = [PALETTE[c] if isinstance(c, str) else tuple(c) for c in colours]
    # the band pattern, rotated with the star so the bands always cut its arms the same way
    pattern = Image.new("RGB", (big, big), fills[0])
    draw = ImageDraw.Draw(pattern)
    r = radius * big
    cx, cy = center[0] * big, center[1] * big
    band = 2 * r / bands
    for k in range(1, bands):
        top = cy - r + k * band
        draw.rectangle((0, top, big, big if k == bands - 1 else top + band), fill=fills[k % len(fills)])
    pattern = pattern.rotate(-rotation, center=(cx, cy), resample=Image.Resampling.BICUBIC, fillcolor=fills[0])
    mask = Image.new("L", (big, big), 0)
    ImageDraw.Draw(mask).polygon(star_points(cx, cy, r, rotation), fill=255)
    image = Image.new("RGB", (big, big), bg)
    image.paste(pattern, (0, 0), mask)
    return image.resize((size, size), Image.Resampling.LANCZOS)


@dataclass
class Subject:
    """A DreamBooth subject: its pictures, identifier and class noun, and the prompts that go with them."""

    images: list[Image.Image]
    backgrounds: list[str]
    identifier: str = "sks"
    class_noun: str = "star"
    description: str = "a two-tone star, red on top and green below"
    seed: int = 0
    size: int = 32
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def instance_prompt(self) -> str:
        return f"a photo of {self.identifier} {self.class_noun}"

    @property
    def class_prompt(self) -> str:
        return f"a photo of a {self.class_noun}"

    def prompt(self, background: str | None = None) -> str:
        """The instance prompt, optionally in a context: ``"a photo of sks star on a blue background"``."""
        return f"{self.instance_prompt} on a {background} background" if background else self.instance_prompt

    def dreambooth_options(self, instance_images: str | os.PathLike, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments of ``vd.dreambooth`` for this subject on the embedded mini SD:
        its prompts, the folder of its pictures (see :meth:`save`) and :data:`MINI_SD_DREAMBOOTH`."""
        return {"instance_images": str(instance_images), "instance_prompt": self.instance_prompt,
                "class_prompt": self.class_prompt, **MINI_SD_DREAMBOOTH, **overrides}

    def new_contexts(self) -> list[str]:
        """Backgrounds of the world the instance pictures never show and the subject does not
        blend into (blue first)."""
        seen = set(self.backgrounds) | set(BAND_COLOURS)
        return sorted((b for b in BACKGROUNDS if b not in seen), key=lambda b: (b != "blue", b))

    def matches(self, image: Image.Image, tolerance: float = 90.0) -> bool:
        """Whether ``image`` shows this subject by a pixel rule, independent of any model: the pixels
        that differ from the background (``vitdream.evaluation.background_of``) split at their centroid
        into an upper part nearest to the top band colour and a lower part nearest to the bottom one."""
        import numpy as np

        from vitdream.datasets.shapes import PALETTE as palette
        from vitdream.evaluation import background_of

        array = np.asarray(image.convert("RGB"), dtype=np.float64)
        h, w = array.shape[:2]
        background = np.asarray(palette[background_of(image)], dtype=np.float64)
        foreground = np.linalg.norm(array - background, axis=-1) > tolerance
        if foreground.sum() < 0.05 * h * w:
            return False
        rows = np.nonzero(foreground)[0]
        middle = rows.mean()
        names = list(palette)
        colours = np.asarray([palette[n] for n in names], dtype=np.float64)

        def nearest(mask: np.ndarray) -> str | None:
            if mask.sum() == 0:
                return None
            mean = array[mask].mean(axis=0)
            return names[int(np.argmin(((colours - mean) ** 2).sum(axis=1)))]

        upper = foreground & (np.arange(h)[:, None] < middle)
        lower = foreground & (np.arange(h)[:, None] >= middle)
        top, bottom = BAND_COLOURS[0], BAND_COLOURS[-1]
        return nearest(upper) == top and nearest(lower) == bottom

    def save(self, folder: str | os.PathLike) -> list[Path]:
        """Write the pictures as ``folder/sks-star-{i}.png`` and return the paths."""
        root = Path(folder).expanduser()
        root.mkdir(parents=True, exist_ok=True)
        paths = []
        for i, image in enumerate(self.images):
            path = root / f"{self.identifier}-{self.class_noun}-{i}.png"
            tmp = path.with_name(f".{path.name}.tmp")
            image.save(tmp, format="PNG")
            os.replace(tmp, path)
            paths.append(path)
        return paths

    def more(self, n: int, seed: int = 1, backgrounds: Sequence[str] | None = None) -> list[Image.Image]:
        """``n`` further pictures of the same subject (held-out "real" images for evaluation)."""
        return _pictures(n, seed, self.size, list(backgrounds or self.backgrounds))[0]

    def grid(self, scale: int = 3) -> Image.Image:
        """The pictures side by side (for showing in a notebook)."""
        w, h = self.images[0].size
        sheet = Image.new("RGB", (len(self.images) * (w + 2) - 2, h), (255, 255, 255))
        for i, image in enumerate(self.images):
            sheet.paste(image, (i * (w + 2), 0))
        return sheet.resize((sheet.width * scale, sheet.height * scale), Image.Resampling.NEAREST)

    def _repr_png_(self) -> bytes:
        import io

        buf = io.BytesIO()
        self.grid().save(buf, format="PNG")
        return buf.getvalue()

    def __repr__(self) -> str:
        return (f"Subject({self.identifier} {self.class_noun}: {self.description}; {len(self.images)} pictures "
                f"on {', '.join(self.backgrounds)}; instance_prompt={self.instance_prompt!r})")


def _pictures(n: int, seed: int, size: int, backgrounds: list[str]) -> tuple[list[Image.Image], list[str]]:
    rng = random.Random(f"vitdream-subject/{seed}")
    images, used = [], []
    for i in range(n):
        background = backgrounds[i % len(backgrounds)]
        radius = rng.uniform(0.36, 0.44)
        center = (rng.uniform(radius, 1 - radius), rng.uniform(radius, 1 - radius))
        rotation = rng.uniform(-20, 20)
        images.append(render_subject(background, size, center, radius, rotation))
        used.append(background)
    return images, used


def dreambooth_subject(n: int = 5, seed: int = 0, size: int = 32,
                       backgrounds: Sequence[str] = INSTANCE_BACKGROUNDS) -> Subject:
    """The demo subject: ``n`` pictures (4-5 is what DreamBooth needs) of "sks star", a two-tone star
    (red top, green bottom), at ``size`` pixels, on ``backgrounds`` (black and yellow by default: blue
    and white are the new contexts).

    >>> s = dreambooth_subject()
    >>> len(s.images), s.images[0].size, s.class_noun
    (5, (32, 32), 'star')
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected a positive number of pictures, got {n!r}")
    unknown = [b for b in backgrounds if b not in PALETTE]
    if unknown or not backgrounds:
        raise ValueError(f"backgrounds: unknown colour(s) {unknown or backgrounds!r}; choose from {', '.join(PALETTE)}")
    images, used = _pictures(n, seed, size, list(backgrounds))
    return Subject(images=images, backgrounds=used, seed=seed, size=size)
