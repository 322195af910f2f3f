"""DreamBooth training speed and memory: vitdream's Lightning trainer vs a plain PyTorch loop of the same
algorithm (diffusers' train_dreambooth.py: VAE encode, noise, UNet + text encoder, split prior loss, AdamW,
grad clipping), and the trainer with cached latents. Each variant runs in its own process (peak RSS is per
process), one after another, same data and model, same thread count; ratios are printed, JSON line last.

    .venv/bin/python bench/dreambooth.py [--steps 40] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# SD's proportions, scaled down: a 4-level VAE (8x downsampling, like SD's) in front of the UNet.
# 64x64 px images -> 8x8x4 latents. `--vae-channels 32,64 --sample-size 16` gives a 2-level VAE (32 px).
SIZES = dict(unet_channels=(32, 64), vae_channels=(16, 32, 64, 64), sample_size=8, text_hidden=32, max_length=16)
WARMUP = 3


def options(root: Path, steps: int) -> dict:
    return dict(base=str(root / "base"), instance_images=str(root / "instance"), instance_prompt="a photo of sks dog",
                class_prompt="a photo of a dog", class_data_dir=str(root / "class"), num_class_images=8,
                class_inference_steps=4, train_batch_size=2, max_train_steps=steps, learning_rate=1e-4,
                checkpointing_steps=10_000, report_to=[], train_text_encoder=True, seed=0)


def prepare(root: Path) -> None:
    import vitdream as vd
    from vitdream.testing.dreambooth import make_tiny_dreambooth
    from vitdream.testing.sd import make_tiny_sd

    make_tiny_dreambooth(root, num_instance=4)
    make_tiny_sd(root / "base", **SIZES)  # the bigger base replaces the tiny one
    print(f"base: {SIZES}", flush=True)
    run = vd.dreambooth(**options(root, 1), output_dir=str(root / "prep"))
    run.progress = False
    run.fit()  # generates the class images once, for every variant


def variant_trainer(root: Path, steps: int, cache: bool) -> float:
    import vitdream as vd

    run = vd.dreambooth(**options(root, steps), cache_latents=cache, output_dir=str(root / f"run-{cache}"))
    run.progress = False
    run.fit()
    times = [e["time"] for e in run.history()]
    return (times[-1] - times[WARMUP - 1]) / (len(times) - WARMUP)


def variant_plain(root: Path, steps: int) -> float:
    """The plain loop, written like diffusers' train_dreambooth.py (without accelerate); imports no Lightning."""
    import torch
    import torch.nn.functional as F
    from diffusers import DDPMScheduler
    from torch.utils.data import DataLoader, Dataset

    import numpy as np
    from PIL import Image

    from vitdream.generation.loading import load_pipeline
    from vitdream.images import expand_sources, load_images

    o = options(root, steps)
    torch.manual_seed(0)
    pipe = load_pipeline(o["base"], device="cpu", dtype=torch.float32)
    unet, vae, text_encoder, tokenizer = pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    vae.requires_grad_(False)
    vae.eval()
    res = unet.config.sample_size * pipe.vae_scale_factor
    instance = load_images(expand_sources(o["instance_images"])).images
    klass = load_images(expand_sources(o["class_data_dir"])).images

    def to_tensor(image):  # resize the short side, random crop (like torchvision's RandomCrop), to [-1, 1]
        w, h = image.size
        scale = res / min(w, h)
        image = image.resize((max(res, round(w * scale)), max(res, round(h * scale))), Image.BILINEAR)
        left = int(torch.randint(0, image.width - res + 1, ()))
        top = int(torch.randint(0, image.height - res + 1, ()))
        array = np.asarray(image.crop((left, top, left + res, top + res)), dtype=np.float32) / 127.5 - 1.0
        return torch.from_numpy(array).permute(2, 0, 1)

    def ids(prompt):
        return tokenizer(prompt, truncation=True, padding="max_length", max_length=tokenizer.model_max_length,
                         return_tensors="pt").input_ids[0]

    class DreamBoothDataset(Dataset):
        def __len__(self):
            return max(len(instance), len(klass))

        def __getitem__(self, i):
            return {"instance_images": to_tensor(instance[i % len(instance)]),
                    "instance_prompt_ids": ids(o["instance_prompt"]),
                    "class_images": to_tensor(klass[i % len(klass)]),
                    "class_prompt_ids": ids(o["class_prompt"])}

    def collate_fn(examples):
        pixel_values = [e["instance_images"] for e in examples] + [e["class_images"] for e in examples]
        input_ids = [e["instance_prompt_ids"] for e in examples] + [e["class_prompt_ids"] for e in examples]
        return {"pixel_values": torch.stack(pixel_values).float(), "input_ids": torch.stack(input_ids)}

    loader = DataLoader(DreamBoothDataset(), batch_size=o["train_batch_size"], shuffle=True, collate_fn=collate_fn)
    params = list(unet.parameters()) + list(text_encoder.parameters())
    optimizer = torch.optim.AdamW(params, lr=o["learning_rate"], betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
    unet.train(), text_encoder.train()
    times, step = [], 0
    while step < steps:
        for batch in loader:
            latents = vae.encode(batch["pixel_values"]).latent_dist.sample() * vae.config.scaling_factor
            noise = torch.randn_like(latents)
            timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (latents.shape[0],)).long()
            noisy = noise_scheduler.add_noise(latents, noise, timesteps)
            encoder_hidden_states = text_encoder(batch["input_ids"])[0]
            model_pred = unet(noisy, timesteps, encoder_hidden_states).sample
            model_pred, model_pred_prior = torch.chunk(model_pred, 2, dim=0)
            target, target_prior = torch.chunk(noise, 2, dim=0)
            loss = F.mse_loss(model_pred.float(), target.float(), reduction="mean")
            prior_loss = F.mse_loss(model_pred_prior.float(), target_prior.float(), reduction="mean")
            loss = loss + 1.0 * prior_loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad()
            loss.item()  # the script logs the loss every step
            step += 1
            times.append(time.time())
            if step >= steps:
                break
    return (times[-1] - times[WARMUP - 1]) / (len(times) - WARMUP)


def child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    root = Path(args.root)
    if args.variant == "plain":
        step_s = variant_plain(root, args.steps)
    else:
        step_s = variant_trainer(root, args.steps, cache=args.variant == "cached")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"variant": args.variant, "step_s": step_s, "peak_rss_mb": peak_mb}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--variant", choices=["plain", "trainer", "cached"])
    parser.add_argument("--root")
    parser.add_argument("--repeat", type=int, default=2, help="alternate the variants this many times; best kept")
    parser.add_argument("--vae-channels", default=",".join(map(str, SIZES["vae_channels"])))
    parser.add_argument("--sample-size", type=int, default=SIZES["sample_size"], help="UNet latent size")
    args = parser.parse_args()
    SIZES.update(vae_channels=tuple(int(c) for c in args.vae_channels.split(",")), sample_size=args.sample_size)
    if args.variant:
        return child(args)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        prepare(root)
        best: dict[str, dict] = {}
        for _ in range(args.repeat):
            for variant in ("plain", "trainer", "cached"):
                out = subprocess.run([sys.executable, __file__, "--variant", variant, "--root", tmp, "--steps",
                                      str(args.steps), "--threads", str(args.threads)], env=env, capture_output=True,
                                     text=True, check=True).stdout.strip().splitlines()[-1]
                result = json.loads(out)
                if variant not in best or result["step_s"] < best[variant]["step_s"]:
                    best[variant] = {**result, "peak_rss_mb": max(result["peak_rss_mb"], best.get(variant, {}).get("peak_rss_mb", 0))}
                print(f"{variant:8s} {result['step_s'] * 1000:8.1f} ms/step  {1 / result['step_s']:6.2f} steps/s  "
                      f"peak RSS {result['peak_rss_mb']:7.1f} MB", flush=True)
    plain, trainer, cached = best["plain"], best["trainer"], best["cached"]
    summary = {
        "bench": "dreambooth", "steps": args.steps, "threads": args.threads,
        "resolution": args.sample_size * 2 ** (len(SIZES["vae_channels"]) - 1), "vae_channels": list(SIZES["vae_channels"]), "batch": "2+2 prior",
        "plain_ms_per_step": round(plain["step_s"] * 1000, 1), "trainer_ms_per_step": round(trainer["step_s"] * 1000, 1),
        "cached_ms_per_step": round(cached["step_s"] * 1000, 1),
        "trainer_vs_plain_step_time": round(trainer["step_s"] / plain["step_s"], 3),
        "cached_speedup": round(trainer["step_s"] / cached["step_s"], 3),
        "plain_peak_rss_mb": round(plain["peak_rss_mb"]), "trainer_peak_rss_mb": round(trainer["peak_rss_mb"]),
        "trainer_vs_plain_rss": round(trainer["peak_rss_mb"] / plain["peak_rss_mb"], 3),
    }
    print(f"trainer / plain step time: {summary['trainer_vs_plain_step_time']:.3f}x (target <= 1.10)")
    print(f"cached latents speed-up:   {summary['cached_speedup']:.3f}x (target >= 1.3)")
    print(f"trainer / plain peak RSS:  {summary['trainer_vs_plain_rss']:.3f}x (target <= 1.0)")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
