"""Study cost and what the studies show, on the embedded mini SD.

A guidance study (4 world prompts x ``--seeds`` seeds x 7 scales, 20 DDIM steps) and a sampler study
(ddim / euler / dpm-solver++ x 5, 10, 20, 50 steps, 2 prompts), both scored by the default evaluators
(shapes-world prompt fidelity, mini-ViT embedding diversity). Reports the wall time of each, the
share spent generating (the rest is scoring), and the tables.

    .venv/bin/python bench/studies.py [--threads 1] [--seeds 8]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["a photo of a red star on a blue background", "a photo of a green circle on a white background",
           "a photo of a yellow triangle on a purple background", "a photo of a blue square on a grey background"]


def timed(make) -> tuple[object, float, float]:
    start = time.perf_counter()
    study = make()
    total = time.perf_counter() - start
    generating = sum(r["seconds_per_image"] * r["images"] for r in study.rows)
    return study, total, generating


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seeds", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import vitdream as vd

    gen = vd.load_generator()
    gen.generate(PROMPTS[0], steps=2, seed=0)  # warm up
    guidance, g_total, g_gen = timed(lambda: gen.guidance_study(PROMPTS, seeds=range(args.seeds), steps=20, progress=False))
    samplers, s_total, s_gen = timed(lambda: gen.sampler_study(PROMPTS[:2], samplers=["ddim", "euler", "dpm-solver++"],
                                                              steps=[5, 10, 20, 50], seeds=range(args.seeds // 2),
                                                              progress=False))
    commit = subprocess.run(["git", "log", "-1", "--format=%h", "--", "vitdream/assets/mini-sd"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    print(guidance.table)
    print(samplers.table)
    print(json.dumps({
        "threads": args.threads, "mini_sd_weights_commit": commit,
        "guidance_study": {"images": sum(r["images"] for r in guidance.rows), "seconds": round(g_total, 1),
                           "generating_share": round(g_gen / g_total, 3)},
        "sampler_study": {"images": sum(r["images"] for r in samplers.rows), "seconds": round(s_total, 1),
                          "generating_share": round(s_gen / s_total, 3)},
    }, indent=2))


if __name__ == "__main__":
    main()
