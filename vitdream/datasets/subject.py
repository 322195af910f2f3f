"""The DreamBooth demo subject of the shapes world: "sks star", a two-tone star -- red on top, green below.

The shapes world draws stars in many looks (plain, two-tone, striped, in every colour pair) on many
backgrounds, but never this one: the red-over-green two-tone star is held out of it
(:data:`vitdream.datasets.shapes.HELD_OUT`). So the embedded mini Stable Diffusion knows what a star
is, and that stars vary, but cannot draw this star -- nor name it. DreamBooth teaches it from four or
five pictures (:func:`dreambooth_subject`), all on black or grey, with the class noun ``"star"``;
:meth:`Subject.new_contexts` are the backgrounds none of them shows.

>>> import vitdream as vd
>>> subject = vd.datasets.dreambooth_subject()
>>> subject.instance_prompt, subject.class_prompt
('a photo of sks star', 'a photo of a star')
>>> paths = subject.save("my_star/")          # 5 PNGs: the instance_images of a DreamBooth run

Only PIL is imported here. Same arguments -> same pixels.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from PIL import Image

from vitdream.atomic import atomic_open
from vitdream.datasets.shapes import BACKGROUNDS, PALETTE, ShapeSpec, render

#: the colours of the two halves, from the top
BAND_COLOURS: tuple[str, ...] = ("red", "green")
#: the backgrounds of the instance pictures: every other background of the world is a new context
INSTANCE_BACKGROUNDS: tuple[str, ...] = ("black", "grey", "black", "grey", "black")
#: DreamBooth settings for the embedded mini SD, which is about 200x smaller than SD 1.5: a larger
#: learning rate than diffusers' 5e-6 (made for SD 1.5), 1,200 steps and twice the prior-preservation
#: weight (3.4 minutes on 2 CPU cores). ``vd.dreambooth(base=None)`` applies the same values by default
#: (``EMBEDDED_BASE_DEFAULTS``, a test keeps them equal); they are spelled out here so that they also
#: apply when the base is given as a path to the mini SD (or a copy of it).
MINI_SD_DREAMBOOTH: dict[str, Any] = {
    "learning_rate": 1e-4, "max_train_steps": 1200, "num_class_images": 100, "prior_loss_weight": 2.0,
    "validation_steps": 400, "cache_latents": True, "fused_adam": True,
}


def render_subject(
    background: str = "black",
    size: int = 32,
    center: tuple[float, float] = (0.5, 0.5),
    radius: float = 0.42,
    rotation: float = 0.0,
    colours: Sequence[str] = BAND_COLOURS,
) -> Image.Image:
    """One picture of the subject: a star whose upper half is ``colours[0]`` and lower half ``colours[1]``
    (horizontal halves, whatever the rotation, as the world draws two-tone shapes), on ``background``."""
    if background not in PALETTE:
        raise ValueError(f"background: unknown colour {background!r}; choose from {', '.join(PALETTE)}")
    spec = ShapeSpec("star", colours[0], background, center, radius, rotation, True, True, "two-tone", colours[1])
    return render(spec, size)


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
        """Backgrounds of the world that no instance picture shows and the subject does not blend into
        (blue first)."""
        seen = set(self.backgrounds) | set(BAND_COLOURS)
        return sorted((b for b in BACKGROUNDS if b not in seen), key=lambda b: (b != "blue", b))

    def matches(self, image: Image.Image, label: str | None = None) -> bool:
        """Whether ``image`` shows this subject, by a pixel rule independent of any model
        (:func:`vitdream.datasets.reading.read_look`): a two-tone shape, red on top, green below. Pass
        ``label``, a classifier's top-1 label of the image, to also require the class noun's shape
        (``"red star"``): the pixel rule alone accepts a red-over-green circle too."""
        from vitdream.datasets.reading import read_look

        pixels = read_look(image).matches("two-tone", BAND_COLOURS[0], BAND_COLOURS[1])
        return pixels and (label is None or label.split()[-1:] == [self.class_noun])

    def save(self, folder: str | os.PathLike) -> list[Path]:
        """Write the pictures as ``folder/sks-star-{i}.png`` and return the paths."""
        root = Path(folder).expanduser()
        root.mkdir(parents=True, exist_ok=True)
        paths = []
        for i, image in enumerate(self.images):
            path = root / f"{self.identifier}-{self.class_noun}-{i}.png"
            with atomic_open(path, durable=False) as fh:
                image.save(fh, format="PNG")
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
        radius = rng.uniform(0.34, 0.44)
        center = (rng.uniform(radius, 1 - radius), rng.uniform(radius, 1 - radius))
        images.append(render_subject(background, size, center, radius, rng.uniform(0, 360)))
        used.append(background)
    return images, used


def dreambooth_subject(n: int = 5, seed: int = 0, size: int = 32,
                       backgrounds: Sequence[str] = INSTANCE_BACKGROUNDS) -> Subject:
    """The demo subject: ``n`` pictures (4-5 is what DreamBooth needs) of "sks star", a two-tone star
    (red top, green bottom), at ``size`` pixels, on ``backgrounds`` (black and grey by default: blue,
    white, yellow and purple are the new contexts).

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
