"""Train the embedded mini ViT of the shapes world from scratch (CPU, seeded).

A small ``ViTForImageClassification`` (32x32 input, 4x4 patches) learns the 16 "{colour} {shape}"
classes from freshly rendered images every step (no image is seen twice), with light blur and noise
augmentation so that it also judges the softer images the mini Stable Diffusion decodes. Saved with
``save_pretrained`` (safetensors) plus a ViT image-processor config, loadable offline by
``AutoModelForImageClassification`` / ``AutoImageProcessor``.

    python scripts/train_mini_vit.py            # writes vitdream/assets/mini-vit/
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

from training_common import ROOT, log, relative  # noqa: E402 -- scripts/ is on sys.path

sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import ImageFilter  # noqa: E402

from vitdream.datasets.shapes import CLASSES, ShapesDataset  # noqa: E402

IMAGE_SIZE = 32


class Pool:
    """``n`` pictures of ``ds`` rendered once (uint8) -- rendering costs more than a mini-ViT step."""

    def __init__(self, ds: ShapesDataset, n: int):
        from PIL import Image

        t0 = time.time()
        self.arrays = np.stack([np.asarray(ds[i]["image"]) for i in range(n)])
        self.labels = [ds.spec(i).label for i in range(n)]
        self.image = Image.fromarray
        log(f"rendered a pool of {n} pictures in {time.time() - t0:.0f} s")

    def __getitem__(self, i: int) -> dict:
        return {"image": self.image(self.arrays[i]), "label_id": CLASSES.index(self.labels[i])}


def batch(ds, indices, rng: np.random.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images normalised like the saved processor does ((x - 0.5) / 0.5), and label ids."""
    arrays, labels = [], []
    for i in indices:
        item = ds[int(i)]
        image = item["image"]
        if rng is not None and rng.random() < 0.5:
            image = image.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.3, 1.0))))
        arr = np.asarray(image, dtype=np.float32) / 255.0
        if rng is not None and rng.random() < 0.5:
            arr = arr + rng.normal(0, rng.uniform(0.01, 0.05), arr.shape).astype(np.float32)
        arrays.append(arr)
        labels.append(item["label_id"])
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    return (x - 0.5) / 0.5, torch.tensor(labels)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "vitdream/assets/mini-vit")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--patch", type=int, default=4)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--n-test", type=int, default=2000)
    p.add_argument("--init", type=Path, default=None, help="continue training from this saved mini ViT")
    p.add_argument("--pool", type=int, default=0,
                   help="render this many pictures once and sample batches from them (0: fresh pictures every step)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessorPil

    config = ViTConfig(image_size=IMAGE_SIZE, patch_size=args.patch, num_channels=3, hidden_size=args.hidden,
                       num_hidden_layers=args.layers, num_attention_heads=4, intermediate_size=2 * args.hidden,
                       hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=len(CLASSES),
                       id2label=dict(enumerate(CLASSES)), label2id={c: i for i, c in enumerate(CLASSES)})
    model = ViTForImageClassification.from_pretrained(args.init) if args.init else ViTForImageClassification(config)
    log(f"mini ViT: {sum(q.numel() for q in model.parameters()) / 1e6:.3f} M params; args { {k: relative(v) for k, v in vars(args).items()} }")
    # the judge sees every look, the held-out DreamBooth subject too (the generative model does not)
    train = ShapesDataset(args.steps * args.batch, seed=args.seed + (30 if args.init else 10), held_out=())
    if args.pool:  # sample every step from a pool rendered once, instead of fresh pictures
        train = Pool(train, args.pool)
    test = ShapesDataset(args.n_test, seed=args.seed + 20)  # held out: a different seed
    rng = np.random.default_rng(args.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    warmup = max(1, args.steps // 20)
    t0 = time.time()

    def accuracy_on(ds: ShapesDataset, n: int) -> float:
        model.eval()
        correct = 0
        with torch.no_grad():
            for start in range(0, n, 256):
                x, y = batch(ds, range(start, min(start + 256, n)), None)
                correct += int((model(pixel_values=x).logits.argmax(-1) == y).sum())
        model.train()
        return correct / n

    model.train()
    for step in range(args.steps):
        lr = args.lr * (step + 1) / warmup if step < warmup else \
            args.lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (args.steps - warmup)))
        for g in opt.param_groups:
            g["lr"] = lr
        indices = rng.integers(0, args.pool, args.batch) if args.pool else range(step * args.batch, (step + 1) * args.batch)
        x, y = batch(train, indices, rng)
        loss = F.cross_entropy(model(pixel_values=x).logits, y, label_smoothing=0.05)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == args.steps - 1:
            log(f"step {step} loss {loss.item():.4f} lr {lr:.2e} ({(time.time() - t0) / (step + 1):.2f} s/step)")
        if step % 500 == 499:
            log(f"step {step} held-out top-1 on 512: {accuracy_on(test, min(512, len(test))):.4f}")
    minutes = (time.time() - t0) / 60
    accuracy = accuracy_on(test, len(test))
    model.eval()
    log(f"held-out top-1 accuracy: {accuracy:.4f} on {len(test)} fresh images; training took {minutes:.1f} min")

    processor = ViTImageProcessorPil(do_resize=True, size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
                                     do_rescale=True, do_normalize=True, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    tmp = args.out.with_name(args.out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    processor.save_pretrained(tmp)
    pre = tmp / "preprocessor_config.json"
    cfg = json.loads(pre.read_text())
    cfg["image_processor_type"] = "ViTImageProcessor"  # the torchvision backend where available, PIL otherwise
    pre.write_text(json.dumps(cfg, indent=2))
    stages = []
    if args.init and (args.init / "training.json").exists():
        stages = json.loads((args.init / "training.json").read_text()).get("stages", [])
    stages.append({"command": "scripts/train_mini_vit.py " + " ".join(relative(a) for a in sys.argv[1:]),
                   "minutes": round(minutes, 1), "heldout_top1": accuracy})
    (tmp / "training.json").write_text(json.dumps({
        "heldout_top1": accuracy, "n_test": len(test), "train_minutes": round(minutes, 1),
        "args": {k: relative(v) for k, v in vars(args).items()}, "stages": stages}, indent=2))
    if args.out.exists():
        shutil.rmtree(args.out)
    os.replace(tmp, args.out)
    log(f"saved to {args.out}")


if __name__ == "__main__":
    main()
