"""What the guidance scale changes in the embedded mini SD: prompts that name every attribute of the
shapes world (shape, colours, pattern, background), the same seeds at every scale, 20 DDIM steps.

Prompt ``k`` uses seeds ``100k ...`` at every scale. For each scale: the share of images with *all* attributes right (shape by the mini ViT, colours,
pattern and background by the model-free pixel reader: ``vitdream.evaluation.world_checks``), each
attribute's share, and per-prompt diversity (mean pairwise cosine distance of mini-ViT embeddings
over the seeds of one prompt, averaged over prompts).

    python scripts/guidance_effect.py            # 32 prompts x 4 seeds x 8 scales; about 5 minutes, one core

Writes scripts/logs/guidance_effect.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

SCALES = (1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0)


def world_prompts(n: int, seed: int) -> list[str]:
    """``n`` prompts naming every attribute, drawn from the world's looks (the held-out one excluded)."""
    from vitdream.datasets import caption, shapes

    ds = shapes(n, seed=seed)
    return [caption(s.shape, s.colour, s.background, pattern=s.pattern, colour2=s.colour2)
            for s in (ds.spec(i) for i in range(n))]


def measure(generator, classifier, prompts: list[str], seeds: int, scales=SCALES, steps: int = 20) -> dict:
    """The table: one row per guidance scale (see the module docstring)."""
    from vitdream.evaluation import diversity, world_checks

    report = {}
    for scale in scales:
        t0 = time.perf_counter()
        # prompt k uses seeds 100k .. 100k + seeds - 1 at every scale: the same noise across scales,
        # different noise across prompts (4 shared seeds would make the whole table hinge on 4 draws)
        images = {p: generator.generate(p, num_images=seeds, seed=100 * k, guidance_scale=scale, steps=steps)
                  for k, p in enumerate(prompts)}
        seconds = (time.perf_counter() - t0) / (len(prompts) * seeds)
        flat = [im for p in prompts for im in images[p]]
        checks = world_checks(flat, [p for p in prompts for _ in range(seeds)], classifier)
        divs = [diversity(np.asarray(classifier.embed(images[p]))) for p in prompts]
        row = {"all_right": round(float(np.mean([c["all"] for c in checks])), 4), "n": len(flat),
               "diversity": round(float(np.mean(divs)), 4), "s_per_image": round(seconds, 3)}
        for key in ("shape", "colour", "colour2", "pattern", "background"):
            values = [c[key] for c in checks if key in c]
            row[key] = round(float(np.mean(values)), 4) if values else None
        report[str(scale)] = row
        print(scale, json.dumps(row), flush=True)
    return report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prompts", type=int, default=32)
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--base", default=None, help="the pipeline to measure (default: the embedded mini SD)")
    p.add_argument("--out", type=Path, default=ROOT / "scripts/logs/guidance_effect.json")
    args = p.parse_args()
    import torch

    import vitdream as vd

    torch.set_num_threads(1)
    generator = vd.load_generator(args.base)
    classifier = vd.load_classifier(progress=False)
    prompts = world_prompts(args.prompts, seed=7)
    report = {"prompts": prompts, "seeds": args.seeds, "steps": 20, "sampler": "ddim",
              "scales": measure(generator, classifier, prompts, args.seeds)}
    first, last = report["scales"]["1.0"], report["scales"]["7.5"]
    report["all_right_gain_1_to_7.5"] = round(last["all_right"] - first["all_right"], 4)
    report["diversity_change_1_to_7.5"] = round(last["diversity"] - first["diversity"], 4)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"all right: {first['all_right']} at 1.0 -> {last['all_right']} at 7.5; diversity "
          f"{first['diversity']} -> {last['diversity']}; wrote {args.out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
