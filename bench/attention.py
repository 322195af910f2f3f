"""Attention maps: extra time per image when on (side by side), and how well the maps localise.

Part 1: the same prompt, seed and steps, generated with ``attention=False`` and ``attention=True``
in alternation over ``--reps`` rounds, on the embedded mini SD and on an SD-1.x-shaped tiny
pipeline with more cross-attention (``--wide``: UNet 64/128, 32x32 latents); the medians and their
ratio are reported. Part 2: on the embedded mini SD, ``--samples`` fresh world prompts: the share of
the shape word's map on the shape's pixels and of ``background``'s map off them, against the area
share (:mod:`vitdream.generation.localisation`).

    .venv/bin/python bench/attention.py [--threads 1] [--reps 7] [--steps 20] [--samples 16]
    .venv/bin/python bench/attention.py --sd15 [--reps 3] [--steps 2]   # overhead on an SD-1.5 UNet only

``--sd15``: the UNet of Stable Diffusion 1.5 (diffusers' default ``UNet2DConditionModel`` config with
``cross_attention_dim=768``, 860 M parameters, random weights) on 32x32 latents (a 256x256 image's),
with a tiny text encoder of width 768 and a tiny VAE: the overhead where the UNet is a real one.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "a photo of a red circle on a blue background"


def overhead(gen, steps: int, reps: int) -> dict:
    times = {False: [], True: []}
    gen.generate(PROMPT, seed=0, steps=steps, attention=True)  # warm up
    for _ in range(reps):
        for attention in (False, True):
            start = time.perf_counter()
            gen.generate(PROMPT, seed=0, steps=steps, attention=attention)
            times[attention].append(time.perf_counter() - start)
    off, on = statistics.median(times[False]), statistics.median(times[True])
    return {"off_s": round(off, 4), "on_s": round(on, 4), "ratio": round(on / off, 3)}


def sd15_generator():
    from diffusers import UNet2DConditionModel

    from vitdream.generation import load_generator
    from vitdream.testing.sd import tiny_sd_pipeline

    pipe = tiny_sd_pipeline(text_hidden=768, sample_size=32)
    torch.manual_seed(0)
    pipe.unet = UNet2DConditionModel(sample_size=32, cross_attention_dim=768).eval()
    return load_generator(pipe)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--sd15", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.sd15:
        print(json.dumps({"threads": args.threads, "steps": args.steps, "reps": args.reps,
                          "overhead_sd15_unet_32x32_latents": overhead(sd15_generator(), args.steps, args.reps)}, indent=2))
        return

    from vitdream.generation import load_generator
    from vitdream.generation.localisation import localisation, summary, world_prompts
    from vitdream.testing.sd import tiny_sd_pipeline

    mini = load_generator()
    wide = load_generator(tiny_sd_pipeline(unet_channels=(64, 128), vae_channels=(32, 64), sample_size=32, text_hidden=64))
    prompts = world_prompts(args.samples, seed=1)
    table = localisation(mini, prompts, seeds=range(1000, 1000 + args.samples), steps=args.steps)
    commit = subprocess.run(["git", "log", "-1", "--format=%h", "--", "vitdream/assets/mini-sd"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    result = {
        "threads": args.threads, "steps": args.steps, "reps": args.reps,
        "overhead_mini_sd": overhead(mini, args.steps, args.reps),
        "overhead_wide_tiny_sd": overhead(wide, args.steps, args.reps),
        "localisation": {k: round(v, 3) for k, v in summary(table).items()},
        "samples": args.samples, "mini_sd_weights_commit": commit,
    }
    print(table)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
