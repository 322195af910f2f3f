"""DreamBooth examples: instance (+ class) images, prompts, and the seeded sample stream.

Sample ``p`` of a run (counting from 0 over the whole run, all devices together) is a pure
function of ``(seed, p)``: which instance and class image, crop, flip, and later its noise and
timestep. So the data a step sees does not depend on batch layout, process count, or on whether
the run was interrupted and resumed -- the basis of exact resume and of the DDP equivalence.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from vitdream.errors import VitdreamError
from vitdream.images import expand_sources, load_images


def sample_generator(seed: int, position: int, stream: int = 0) -> torch.Generator:
    """A CPU generator for one sample's randomness (``stream`` separates uses)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + position) * 16 + stream)


def load_image_folder(spec: Any, what: str) -> tuple[list[Any], list[str]]:
    """RGB images from a folder, glob or list; bad files are skipped and reported (warnings)."""
    import warnings

    sources = expand_sources(spec)
    result = load_images(sources)
    for bad in result.failures:
        warnings.warn(f"{what}: skipped {bad.source}: {bad.reason}", stacklevel=2)
    images = [im for im in result.images if im is not None]
    if not images:
        raise VitdreamError(f"{what}: no usable images in {spec if isinstance(spec, str) else f'{len(sources)} inputs'}")
    return images, [str(s) if isinstance(s, str) else f"<image {i}>" for i, s in enumerate(sources)]


def to_tensor(image: Any, resolution: int, center_crop: bool, flip: bool, crop_at: tuple[float, float]) -> torch.Tensor:
    """Resize the short side to ``resolution``, crop a square (centre or at ``crop_at`` in [0,1]^2), flip; in [-1, 1]."""
    import numpy as np
    from PIL import Image

    w, h = image.size
    scale = resolution / min(w, h)
    nw, nh = max(resolution, round(w * scale)), max(resolution, round(h * scale))
    image = image.resize((nw, nh), Image.BILINEAR)
    fx, fy = (0.5, 0.5) if center_crop else crop_at
    left, top = round((nw - resolution) * fx), round((nh - resolution) * fy)
    image = image.crop((left, top, left + resolution, top + resolution))
    if flip:
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


@dataclass
class Augment:
    resolution: int
    center_crop: bool
    random_flip: bool

    def draw(self, gen: torch.Generator) -> tuple[bool, tuple[float, float]]:
        u = torch.rand(3, generator=gen).tolist()
        return (self.random_flip and u[0] < 0.5), (u[1], u[2])


class DreamBoothDataset(Dataset):
    """This rank's share of the run's samples: instance image (+ class image), augmented, with its position.

    The image order follows diffusers: a fresh permutation of ``range(max(n_instance, n_class))``
    every pass, instance ``k % n_instance`` and class ``k % n_class``.
    """

    def __init__(
        self,
        instance_images: Sequence[Any],
        class_images: Sequence[Any] | None,
        augment: Augment,
        seed: int,
        num_micro_batches: int,
        batch_size: int = 1,
        world_size: int = 1,
        rank: int = 0,
        latents: dict[str, torch.Tensor] | None = None,
    ) -> None:
        self.instance_images, self.class_images = list(instance_images), list(class_images or [])
        self.augment, self.seed = augment, seed
        self.num_micro_batches, self.batch_size, self.world_size, self.rank = num_micro_batches, batch_size, world_size, rank
        self.latents = latents  # cached latent distributions: {"instance": (n, 2, 2C, h, w), "class": ...}
        self.pass_size = max(len(self.instance_images), len(self.class_images) or 1)
        self._perm_cache: dict[int, list[int]] = {}

    def position(self, i: int) -> int:
        """Run-wide sample position of this rank's item ``i`` (micro-batch ``i // batch_size``)."""
        micro, j = divmod(i, self.batch_size)
        return (micro * self.world_size + self.rank) * self.batch_size + j

    def __len__(self) -> int:
        return self.num_micro_batches * self.batch_size

    def _image_index(self, position: int) -> int:
        epoch, offset = divmod(position, self.pass_size)
        perm = self._perm_cache.get(epoch)
        if perm is None:
            gen = torch.Generator().manual_seed(self.seed * 7919 + epoch)
            perm = torch.randperm(self.pass_size, generator=gen).tolist()
            self._perm_cache = {epoch: perm}
        return perm[offset]

    def _example(self, kind: str, images: list[Any], k: int, gen: torch.Generator) -> torch.Tensor:
        flip, crop_at = self.augment.draw(gen)
        if self.latents is not None:
            return self.latents[kind][k, int(flip)]
        return to_tensor(images[k], self.augment.resolution, self.augment.center_crop, flip, crop_at)

    def __getitem__(self, i: int) -> dict[str, Any]:
        position = self.position(i)
        k = self._image_index(position)
        gen = sample_generator(self.seed, position, stream=0)
        item = {
            "position": position,
            "instance": self._example("instance", self.instance_images, k % len(self.instance_images), gen),
        }
        if self.class_images:
            item["class"] = self._example("class", self.class_images, k % len(self.class_images), gen)
        return item


def collate(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Instance examples first, then class examples: ONE batch for ONE forward pass (as diffusers)."""
    batch = {
        "positions": torch.tensor([it["position"] for it in items], dtype=torch.long),
        "pixels": torch.stack([it["instance"] for it in items] + [it["class"] for it in items if "class" in it]),
        "num_instance": torch.tensor(len(items)),
    }
    return batch


class ResumeSampler(Sampler[int]):
    """Yields items ``start..total-1`` but reports length ``total``: Lightning's batch counters, restored
    from the checkpoint, then run on exactly as in an uninterrupted run."""

    def __init__(self, start: int, total: int) -> None:
        self.start, self.total = start, total

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.total))

    def __len__(self) -> int:
        return self.total


class DreamBoothData(pl.LightningDataModule):
    """Class images made in ``prepare_data`` (once per node), then the seeded sample stream."""

    def __init__(self, config: Any, class_dir: Path | None, log: Any = None) -> None:
        super().__init__()
        self.config, self.class_dir, self.log = config, class_dir, log
        self.instance_images: list[Any] = []
        self.class_images: list[Any] = []

    def prepare_data(self) -> None:
        c = self.config
        if not c.prior_preservation:
            return
        from vitdream.dreambooth.class_images import ensure_class_images, existing_class_images

        if len(existing_class_images(self.class_dir)) >= c.num_class_images:
            return
        module = self.trainer.lightning_module
        device = self.trainer.strategy.root_device
        if self.log is not None:
            self.log.emit("status", state="class images", message=f"generating class images in {self.class_dir}")
        pipe = module.make_pipeline().to(device)
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(c.prior_generation_precision or "")
        autocast = torch.autocast(device.type, dtype=dtype) if dtype is not None and device.type == "cuda" else nullcontext()
        try:
            with autocast:
                ensure_class_images(
                    self.class_dir, c.class_prompt, c.num_class_images, pipeline=pipe, seed=c.seed,
                    resolution=c.resolution, sample_batch_size=c.sample_batch_size,
                    num_inference_steps=c.class_inference_steps,
                )
        finally:
            module.to("cpu")

    def setup(self, stage: str) -> None:
        c = self.config
        self.instance_images, _ = load_image_folder(c.instance_data_dir, "instance_data_dir")
        if c.prior_preservation:
            from vitdream.dreambooth.class_images import existing_class_images

            self.class_images, _ = load_image_folder(
                [str(p) for p in existing_class_images(self.class_dir)[: c.num_class_images]], f"class_data_dir {self.class_dir}"
            )

    def augment(self) -> Augment:
        c = self.config
        return Augment(c.resolution, c.center_crop, c.random_flip)

    def cached_latents(self, vae: Any) -> dict[str, torch.Tensor]:
        """VAE latent distribution parameters of every image (centre crop), unflipped and flipped."""
        aug, out = self.augment(), {}
        for kind, images in (("instance", self.instance_images), ("class", self.class_images)):
            if not images:
                continue
            rows = []
            for image in images:
                pixels = torch.stack([to_tensor(image, aug.resolution, True, flip, (0.5, 0.5)) for flip in (False, True)])
                with torch.no_grad():
                    rows.append(vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.parameters.float().cpu())
            out[kind] = torch.stack(rows)
        return out

    def train_dataloader(self) -> DataLoader:
        c, trainer = self.config, self.trainer
        latents = self.cached_latents(trainer.lightning_module.vae) if c.cache_latents else None
        dataset = DreamBoothDataset(
            self.instance_images, self.class_images, self.augment(), c.seed,
            num_micro_batches=c.max_train_steps * c.gradient_accumulation_steps, batch_size=c.train_batch_size,
            world_size=trainer.world_size, rank=trainer.global_rank, latents=latents,
        )
        start = trainer.global_step * c.gradient_accumulation_steps * c.train_batch_size
        return DataLoader(
            dataset, batch_size=c.train_batch_size, sampler=ResumeSampler(start, len(dataset)), collate_fn=collate,
            num_workers=c.dataloader_num_workers, persistent_workers=c.dataloader_num_workers > 0,
        )
