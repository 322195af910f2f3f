"""Classification throughput: transformers pipeline (bs 1 and 16) vs vitdream fp32 vs vitdream's fast path.

ViT-B/16 with random weights from the default ``ViTConfig`` (speed does not depend on the weights),
``--images`` RGB images of mixed sizes saved as JPEG files (decoding is part of the work), all
variants timed side by side in one process after one warm-up batch each. Top-1 agreement of the fast
path vs fp32 is measured on the bench images and on the embedded evaluation set (the mini ViT on
held-out shapes-world images) when the mini ViT is present. Prints one JSON line at the end.

    .venv/bin/python bench/classify.py [--images 64] [--fast onnx-int8]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GFLOP_PER_IMAGE = 17.6  # ViT-B/16 at 224x224


def make_model(folder: Path) -> Path:
    import torch
    from transformers import ViTConfig, ViTForImageClassification
    from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

    if not (folder / "model.safetensors").exists():
        torch.manual_seed(0)
        ViTForImageClassification(ViTConfig()).save_pretrained(folder)
        ViTImageProcessorPil().save_pretrained(folder)
    return folder


def make_images(folder: Path, n: int) -> list[str]:
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        h, w = int(rng.integers(160, 640)), int(rng.integers(160, 640))
        base = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)  # smooth-ish, photo-like sizes
        image = Image.fromarray(base).resize((w, h), Image.BICUBIC)
        paths.append(str(folder / f"{i:03d}.jpg"))
        image.save(paths[-1], quality=90)
    return paths


def timed(name: str, fn, warmup) -> tuple[float, object]:
    warmup()
    start = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    print(f"  {name}: {seconds:.1f} s", file=sys.stderr, flush=True)
    return seconds, out


def top1_of_pipeline(result) -> list[str]:
    return [r[0]["label"] for r in result]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--fast", default="onnx-int8", choices=["int8", "onnx", "onnx-int8"])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "vitdream-bench-classify")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    os.environ.setdefault("VITDREAM_CACHE", str(args.work / "cache"))

    import torch
    from transformers import AutoImageProcessor, AutoModelForImageClassification, pipeline

    import vitdream as vd

    args.work.mkdir(parents=True, exist_ok=True)
    model_dir = make_model(args.work / "vit-b16")
    images_dir = args.work / f"images-{args.images}"
    images_dir.mkdir(exist_ok=True)
    paths = make_images(images_dir, args.images)
    warm = paths[:2]

    pipe = pipeline(
        "image-classification",
        model=AutoModelForImageClassification.from_pretrained(model_dir),
        image_processor=AutoImageProcessor.from_pretrained(model_dir, backend="pil"),
    )
    results: dict[str, float] = {}
    with torch.inference_mode():
        t, pipe1 = timed("pipeline bs1", lambda: pipe(paths, top_k=1, batch_size=1), lambda: pipe(warm, top_k=1, batch_size=1))
        results["pipeline_bs1"] = len(paths) / t
        t, _ = timed("pipeline bs16", lambda: pipe(paths, top_k=1, batch_size=16), lambda: pipe(warm, top_k=1, batch_size=16))
        results["pipeline_bs16"] = len(paths) / t

    clf = vd.load_classifier(model_dir, batch_size=16, progress=False)
    t, ours = timed("vitdream fp32", lambda: clf.classify(paths, top_k=1), lambda: clf.classify(warm, top_k=1))
    results["vitdream_fp32"] = len(paths) / t
    setup_start = time.perf_counter()
    clf.speed_up(args.fast, warm)
    setup_s = time.perf_counter() - setup_start
    t, fast = timed(f"vitdream {args.fast}", lambda: clf.classify(paths, top_k=1), lambda: clf.classify(warm, top_k=1))
    results[f"vitdream_{args.fast}"] = len(paths) / t

    fp32_top1 = [p[0].label for p in ours]
    agreement_bench = float(np.mean([a[0].label == b for a, b in zip(fast, fp32_top1)]))
    agreement_pipeline = float(np.mean([a == b for a, b in zip(fp32_top1, top1_of_pipeline(pipe1))]))
    agreement_eval = eval_set_agreement(vd, args.fast)

    best_pipeline = max(results["pipeline_bs1"], results["pipeline_bs16"])
    record = {
        "bench": "classify",
        "model": "ViT-B/16 random (default ViTConfig)",
        "images": len(paths),
        "threads": torch.get_num_threads(),
        "images_per_s": {k: round(v, 3) for k, v in results.items()},
        "gflop_per_s": {k: round(v * GFLOP_PER_IMAGE, 1) for k, v in results.items()},
        "ratio_fp32_vs_best_pipeline": round(results["vitdream_fp32"] / best_pipeline, 3),
        "ratio_fast_vs_best_pipeline": round(results[f"vitdream_{args.fast}"] / best_pipeline, 3),
        "ratio_fast_vs_fp32": round(results[f"vitdream_{args.fast}"] / results["vitdream_fp32"], 3),
        "fast_path": args.fast,
        "fast_setup_s": round(setup_s, 1),
        "top1_agreement_fast_vs_fp32_bench_images": agreement_bench,
        "top1_agreement_fast_vs_fp32_eval_set": agreement_eval,
        "top1_agreement_fp32_vs_pipeline": agreement_pipeline,
    }
    for key, value in results.items():
        print(f"{key:>22}: {value:7.3f} img/s  {value * GFLOP_PER_IMAGE:7.1f} GFLOP/s  x{value / best_pipeline:.2f} vs best pipeline")
    print(json.dumps(record))


def eval_set_agreement(vd, kind: str) -> float | None:
    """Fast-path vs fp32 top-1 agreement of the embedded mini ViT on 512 held-out shapes-world images."""
    from vitdream.errors import ModelLoadError

    try:
        clf = vd.load_classifier(None, progress=False)
    except ModelLoadError:
        return None
    images = [item["image"] for item in vd.datasets.shapes(512, seed=20)]
    return clf.speed_up(kind, images).top1_agreement


if __name__ == "__main__":
    main()
