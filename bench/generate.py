"""Generation benchmark: batched CFG vs two-call CFG vs guidance <= 1, and slider-to-image latency.

Part 1, on a tiny-but-not-trivial SD (UNet 32/64 channels, 16x16x4 latents, 32x32 images): the
same denoising loop, same latents and embeddings, run as (a) batched CFG (one UNet call on a
doubled batch per step), (b) two UNet calls per step, (c) guidance <= 1 (conditional pass only).
Variants are interleaved over ``--reps`` rounds; medians of per-step time are compared.

Part 2: the widget's slider-to-image latency (set the guidance slider, wait for the new image) with
the embedded mini SD at its native size and 20 steps. If the mini SD is not trained yet, a
randomly initialised pipeline of exactly its architecture (from ``scripts/train_mini_sd.py``)
stands in; the JSON says which.

    .venv/bin/python bench/generate.py [--threads N] [--reps 5] [--steps 20]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "a photo of a red circle on a blue background"


CONFIGS = {  # name -> tiny_sd_pipeline sizes
    "tiny": dict(unet_channels=(32, 64), vae_channels=(32, 64), sample_size=16),
    "wider": dict(unet_channels=(64, 128), vae_channels=(32, 64), sample_size=32, text_hidden=64),
}


def cfg_variants(config: str, steps: int, reps: int) -> dict:
    from vitdream.generation import load_generator
    from vitdream.generation.cfg import denoise
    from vitdream.testing.sd import tiny_sd_pipeline

    gen = load_generator(tiny_sd_pipeline(**CONFIGS[config]))
    pipe = gen.pipe
    settings = gen.settings(PROMPT, steps=steps, seed=0, guidance_scale=7.5)
    sampler = gen.make_sampler(settings)

    def run(variant: str):
        with torch.inference_mode():
            cond, uncond = pipe.encode_prompt(PROMPT, pipe.device, 1, True, None)
            scheduler = sampler.make_scheduler(pipe.scheduler.config)
            scheduler.set_timesteps(steps)
            latents = gen.initial_latents(settings, [torch.Generator().manual_seed(0)]) * scheduler.init_noise_sigma
            start, cpu = time.perf_counter(), time.process_time()
            out = denoise(pipe.unet, scheduler, latents, cond, None if variant == "single" else uncond,
                          guidance_scale=7.5, batched=variant == "batched")
            return (time.perf_counter() - start) / steps, (time.process_time() - cpu) / steps, out

    times: dict[str, list[float]] = {"batched": [], "two_call": [], "single": []}
    cpu_times: dict[str, list[float]] = {k: [] for k in times}
    outputs = {}
    run("batched")  # warm-up
    for _ in range(reps):
        for variant in times:
            seconds, cpu_seconds, outputs[variant] = run(variant)
            times[variant].append(seconds)
            cpu_times[variant].append(cpu_seconds)
    med = {k: statistics.median(v) for k, v in times.items()}
    cpu = {k: statistics.median(v) for k, v in cpu_times.items()}
    images = {k: np.asarray(gen.decode(outputs[k])[0], dtype=np.int16) for k in ("batched", "two_call")}
    return {
        "config": config,
        "unet_params_m": round(sum(p.numel() for p in pipe.unet.parameters()) / 1e6, 2),
        "latent_size": gen.native_size // pipe.vae_scale_factor,
        "steps": steps,
        "reps": reps,
        "step_ms": {k: round(v * 1000, 2) for k, v in med.items()},
        "batched_vs_two_call": round(med["two_call"] / med["batched"], 2),
        "single_vs_batched": round(med["batched"] / med["single"], 2),
        "cpu_step_ms": {k: round(v * 1000, 2) for k, v in cpu.items()},
        "cpu_batched_vs_two_call": round(cpu["two_call"] / cpu["batched"], 2),
        "cpu_single_vs_batched": round(cpu["batched"] / cpu["single"], 2),
        "latents_max_abs_diff_batched_vs_two_call": float((outputs["batched"] - outputs["two_call"]).abs().max()),
        "image_max_pixel_diff_batched_vs_two_call": int(np.abs(images["batched"] - images["two_call"]).max()),
    }


def mini_sd_generator():
    """The embedded mini SD, or a random pipeline of its exact architecture if it is not trained yet."""
    from vitdream.errors import ModelLoadError
    from vitdream.generation import load_generator

    try:
        return load_generator(), "embedded mini SD"
    except ModelLoadError:
        pass
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    spec = importlib.util.spec_from_file_location("train_mini_sd", ROOT / "scripts" / "train_mini_sd.py")
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    tok = train.build_tokenizer(Path(tempfile.mkdtemp()) / "tok")
    channels = tuple(int(c) for c in "64,128".split(","))
    pipe = StableDiffusionPipeline(
        vae=train.build_vae(), text_encoder=train.build_text_encoder(tok), tokenizer=tok,
        unet=train.build_unet(channels), scheduler=DDIMScheduler.from_config(train.noise_scheduler().config),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    return load_generator(pipe), "stand-in: random weights, mini SD architecture (mini SD not trained yet)"


def slider_latency(steps: int, reps: int) -> dict:
    from vitdream.widgets.generate import GenerateWidget

    gen, which = mini_sd_generator()
    result = {"model": which, "size": gen.native_size, "steps": steps}
    for preview in (False, True):
        widget = GenerateWidget(gen, PROMPT, steps=steps, seed=0, preview=preview)
        widget.request()
        widget.wait()  # warm-up
        latencies, cpu = [], []
        for i in range(reps):
            start, cpu_start = time.perf_counter(), time.process_time()
            widget.guidance.value = 3.0 + i  # a slider release
            widget.wait()
            latencies.append(time.perf_counter() - start)
            cpu.append(time.process_time() - cpu_start)
        key = "with_preview" if preview else "no_preview"
        result[f"latency_s_{key}"] = {"median": round(statistics.median(latencies), 3), "max": round(max(latencies), 3),
                                      "cpu_median": round(statistics.median(cpu), 3)}
    start = time.perf_counter()
    gen.generate(PROMPT, steps=steps, seed=0, guidance_scale=1.0)
    result["generate_s_guidance_1"] = round(time.perf_counter() - start, 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20, help="steps of the slider-to-image generations")
    parser.add_argument("--cfg-steps", type=int, default=10, help="steps per timed CFG loop")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = [cfg_variants(name, args.cfg_steps, args.reps) for name in CONFIGS]
    for c in cfg:
        print(f"CFG [{c['config']}], {c['unet_params_m']} M-param UNet, {c['latent_size']}x{c['latent_size']} latents, "
              f"{args.threads} thread(s), ms/step wall (cpu): batched {c['step_ms']['batched']} "
              f"({c['cpu_step_ms']['batched']}), two calls {c['step_ms']['two_call']} ({c['cpu_step_ms']['two_call']}), "
              f"guidance<=1 {c['step_ms']['single']} ({c['cpu_step_ms']['single']})", file=sys.stderr)
        print(f"  batched vs two calls {c['batched_vs_two_call']}x (cpu {c['cpu_batched_vs_two_call']}x, target >= 1.3), "
              f"max latent diff {c['latents_max_abs_diff_batched_vs_two_call']:.2e}, max pixel diff "
              f"{c['image_max_pixel_diff_batched_vs_two_call']}; guidance<=1 vs batched {c['single_vs_batched']}x "
              f"(cpu {c['cpu_single_vs_batched']}x, target >= 1.8)", file=sys.stderr)
    slider = slider_latency(args.steps, args.reps)
    print(f"slider-to-image ({slider['model']}, {slider['size']}px, {args.steps} steps): median "
          f"{slider['latency_s_no_preview']['median']} s without preview, "
          f"{slider['latency_s_with_preview']['median']} s with live preview (target <= 1.5 s); process CPU time "
          f"{slider['latency_s_no_preview']['cpu_median']} s / {slider['latency_s_with_preview']['cpu_median']} s", file=sys.stderr)
    print(json.dumps({"bench": "generate", "threads": args.threads, "cfg": cfg, "slider": slider}))


if __name__ == "__main__":
    main()
