"""Indexing a folder of image files end to end vs the embedder's pure forward speed; peak RSS; kill -9 and resume.

The folder: ``--images`` generated photo-like files of mixed sizes (160-640 px) and formats
(JPEG, PNG incl. 16-bit and RGBA, WebP, BMP, TIFF, grayscale GIF, TGA), plus 1% broken files and
1% text files, generated once into ``--work`` and reused. The model: ``--model vit-ti`` (ViT-Ti/16
sized, hidden 192, 12 layers, 224x224, random weights: speed does not depend on them) or
``--model mini`` (the embedded 32x32 mini ViT, where decoding dominates).

Measured, side by side:

- pure forward: the model alone on already decoded, preprocessed batches, before and after;
- end to end: ``vd.build_index(folder, out=...)`` in a child process (stat, decode in worker
  threads overlapped with the model, preprocess, embed, add to ``faiss-flat``, checkpoint saves),
  with the progress bar (rate, ETA) on stderr and the child's peak RSS;
- with ``--kill-after S``: a second child is killed with SIGKILL after S seconds, then the same
  call is run again: it must report the saved files as unchanged and embed only the rest.

    .venv/bin/python bench/index_files.py --images 10000 [--model vit-ti] [--kill-after 60]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FORMATS = [("jpg", "JPEG", {"quality": 90}), ("png", "PNG", {"compress_level": 1}), ("webp", "WEBP", {"quality": 85, "method": 0}),
           ("bmp", "BMP", {}), ("tif", "TIFF", {}), ("gif", "GIF", {}), ("tga", "TGA", {}), ("jpeg", "JPEG", {"quality": 75})]


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
    """n files: mostly images in FORMATS, every 100th broken (cut in half), every 100th+50 a text file."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        sub = folder / f"{i // 1000:03d}"
        ext, fmt, kw = FORMATS[i % len(FORMATS)]
        if i % 100 == 50:
            ext = "txt"
        path = sub / f"{i:06d}.{ext}"
        paths.append(str(path))
        if path.exists():
            continue
        sub.mkdir(exist_ok=True)
        if ext == "txt":
            path.write_text(f"notes {i}\n")
            continue
        rng = np.random.default_rng(i)
        h, w = int(rng.integers(160, 640)), int(rng.integers(160, 640))
        base = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
        image = Image.fromarray(base).resize((w, h), Image.BICUBIC)
        if fmt == "GIF":
            image = image.convert("L")  # grayscale GIF: no slow palette quantisation when generating
        elif fmt == "PNG" and i % 3 == 0:
            image = Image.fromarray((np.asarray(image.convert("L")).astype(np.uint16) * 257))  # 16-bit
        elif fmt == "PNG" and i % 3 == 1:
            image.putalpha(200)
        image.save(path, format=fmt, **kw)
        if i % 100 == 0:
            data = path.read_bytes()
            path.write_bytes(data[: len(data) // 2])
    return paths


def child(args: argparse.Namespace) -> None:
    """Build (or resume) the index; print a JSON line with the report and this process's peak RSS."""
    import vitdream as vd

    embedder = vd.load_embedder(None if args.model_path == "embedded" else args.model_path, progress=False)
    start = time.perf_counter()
    index = vd.build_index(args.folder, embedder=embedder, kind="faiss-flat", out=args.out, progress=True, checkpoint_seconds=args.checkpoint)
    seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"count": len(index), "seconds": seconds, "peak_rss_mb": round(rss, 1), **index.last_report.summary()}), flush=True)


def run_child(args: argparse.Namespace, model: Path, folder: Path, out: Path, kill_after: float | None = None) -> dict | None:
    cmd = [sys.executable, __file__, "--child", "--model-path", str(model), "--folder", str(folder), "--out", str(out), "--checkpoint", str(args.checkpoint)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    if kill_after is not None:
        try:
            proc.wait(kill_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return None
    out_text, _ = proc.communicate()
    return json.loads(out_text.strip().splitlines()[-1])


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
    parser.add_argument("--model", choices=["vit-ti", "mini"], default="vit-ti")
    parser.add_argument("--pure", type=int, default=256, help="images for each pure-forward measurement")
    parser.add_argument("--work", default=None, help="folder for the model and images (default: a temp folder)")
    parser.add_argument("--checkpoint", type=float, default=30.0, help="checkpoint_seconds of the build")
    parser.add_argument("--kill-after", type=float, default=None, help="also: kill -9 a build after S seconds, then resume")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model-path", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    import vitdream as vd
    from vitdream.images import load_image

    work = Path(args.work or tempfile.mkdtemp(prefix="vd-index-files-"))
    model = make_model(work / "vit-ti") if args.model == "vit-ti" else None
    t = time.perf_counter()
    folder = work / f"images-{args.images}"
    paths = make_images(folder, args.images)
    print(f"{len(paths)} files ready in {time.perf_counter() - t:.0f} s", flush=True)
    embedder = vd.load_embedder(model, progress=False)
    model_arg = model or "embedded"
    bs = embedder.options.batch_size
    sample = [p for p in paths[: args.pure * 2] if not p.endswith(".txt")][: args.pure]
    pre = []
    for p in sample:
        try:
            pre.append(embedder.preprocessor.resize_crop(load_image(p)))
        except Exception:
            continue
    batches = [embedder.preprocessor.normalize(pre[i : i + bs]) for i in range(0, len(pre), bs)]
    pure_forward(embedder, batches[:2])  # warm-up

    out = work / f"index-{args.images}.vdindex"
    shutil.rmtree(out, ignore_errors=True)
    before = pure_forward(embedder, batches)
    full = run_child(args, model_arg, folder, out)
    after = pure_forward(embedder, batches)
    pure = (before + after) / 2
    loadable = full["indexed"] + full["failed"]  # images decoded (the failed ones cost a decode too)
    e2e = full["indexed"] / full["seconds"]
    print(f"pure forward      {before:7.1f} / {after:7.1f} img/s (before / after), mean {pure:.1f}")
    print(f"end to end        {e2e:7.1f} img/s ({full['indexed']} indexed, {full['failed']} failed {full['failed_by_kind']}, "
          f"{full['skipped_not_images']} skipped, in {full['seconds']:.1f} s, batch {bs})")
    print(f"ratio             {e2e / pure:.3f}  (target >= 0.90)")
    print(f"peak RSS          {full['peak_rss_mb']:.0f} MB for {args.images} files")
    result = {"bench": "index_files", "model": args.model, "images": args.images, "pure_forward_img_s": round(pure, 2),
              "pure_before": round(before, 2), "pure_after": round(after, 2), "end_to_end_img_s": round(e2e, 2),
              "ratio": round(e2e / pure, 3), "peak_rss_mb": full["peak_rss_mb"], "report": {k: full[k] for k in ("indexed", "failed", "failed_by_kind", "skipped_not_images")},
              "images_decoded": loadable}

    if args.kill_after:
        shutil.rmtree(out, ignore_errors=True)
        assert run_child(args, model_arg, folder, out, kill_after=args.kill_after) is None, "the build finished before the kill"
        saved = len(vd.load_index(out)) if (out / "CURRENT").exists() else 0
        resumed = run_child(args, model_arg, folder, out)
        print(f"kill -9 after {args.kill_after:.0f} s: {saved} saved; resumed run: {resumed['unchanged']} unchanged (not re-embedded), "
              f"{resumed['added']} added, {resumed['count']} in the index (the full build: {full['count']})")
        assert resumed["unchanged"] == saved and resumed["count"] == full["count"]
        result["kill_resume"] = {"kill_after_s": args.kill_after, "saved_before_kill": saved, "unchanged_on_resume": resumed["unchanged"],
                                 "added_on_resume": resumed["added"], "final_count": resumed["count"]}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
