"""Indexing image files end to end vs the embedder's pure forward throughput, side by side.

A ViT-Ti/16-sized model (hidden 192, 12 layers, 224x224, random weights: speed does not depend
on them), ``--images`` photo-like JPEG files of mixed sizes (160-640 px). Timed in one process:

- pure forward: the model on already decoded, preprocessed batches (no files, no decoding);
- end to end: ``vd.build_index(folder)`` -- stat, decode (worker threads, overlapped with the
  model), preprocess, embed, add to ``faiss-flat``.

The pure forward rate is measured before and after the end-to-end run and averaged (the
machine is shared). Target: end to end >= 90% of pure forward. Prints one JSON line at the end.

    .venv/bin/python bench/index_files.py [--images 2000] [--pure 512]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def make_model(folder: Path) -> Path:
    import torch
    from transformers import ViTConfig, ViTForImageClassification
    from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

    if not (folder / "model.safetensors").exists():
        torch.manual_seed(0)
        config = ViTConfig(hidden_size=192, num_hidden_layers=12, num_attention_heads=3, intermediate_size=768)
        ViTForImageClassification(config).save_pretrained(folder)
        ViTImageProcessorPil().save_pretrained(folder)
    return folder


def make_images(folder: Path, n: int) -> list[str]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = folder / f"{i:05d}.jpg"
        paths.append(str(path))
        if path.exists():
            continue
        h, w = int(rng.integers(160, 640)), int(rng.integers(160, 640))
        base = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
        Image.fromarray(base).resize((w, h), Image.BICUBIC).save(path, quality=90)
    return paths


def pure_forward(embedder, batches: list) -> float:
    """Images/s of the model alone on preprocessed batches."""
    start = time.perf_counter()
    n = 0
    for pixels in batches:
        embedder._embed_pixels(pixels, -1, "cls", True)
        n += len(pixels)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--pure", type=int, default=512, help="images for each pure-forward measurement")
    parser.add_argument("--work", default=None, help="folder for the model and images (default: a temp folder)")
    args = parser.parse_args()

    import vitdream as vd
    from vitdream.images import load_image

    work = Path(args.work or tempfile.mkdtemp(prefix="vd-index-files-"))
    model = make_model(work / "vit-ti")
    paths = make_images(work / "images", args.images)
    embedder = vd.load_embedder(model, progress=False)
    bs = embedder.options.batch_size
    pre = [embedder.preprocessor.resize_crop(load_image(p)) for p in paths[: args.pure]]
    batches = [embedder.preprocessor.normalize(pre[i : i + bs]) for i in range(0, len(pre), bs)]
    pure_forward(embedder, batches[:2])  # warm-up

    before = pure_forward(embedder, batches)
    start = time.perf_counter()
    index = vd.build_index(paths, embedder=embedder, kind="faiss-flat", progress=False)
    e2e_s = time.perf_counter() - start
    after = pure_forward(embedder, batches)
    assert len(index) == args.images and not index.failures

    pure = (before + after) / 2
    e2e = args.images / e2e_s
    print(f"pure forward      {before:7.1f} / {after:7.1f} img/s (before / after), mean {pure:.1f}")
    print(f"end to end        {e2e:7.1f} img/s ({args.images} files in {e2e_s:.1f} s, workers={embedder.options.workers or 'auto'}, batch {bs})")
    print(f"ratio             {e2e / pure:.3f}  (target >= 0.90)")
    print(json.dumps({"bench": "index_files", "images": args.images, "pure_forward_img_s": round(pure, 2), "pure_before": round(before, 2),
                      "pure_after": round(after, 2), "end_to_end_img_s": round(e2e, 2), "ratio": round(e2e / pure, 3)}))


if __name__ == "__main__":
    main()
