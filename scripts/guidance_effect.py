"""What the guidance scale changes in the embedded mini SD, measured by the mini ViT (and the border
colour for backgrounds): 20 DDIM steps, the same seeds at every scale.

    python scripts/guidance_effect.py            # about 2-3 minutes on one core

Prompts: "a photo of a {label}" (label correct), "a photo of a {label} on a {bg} background" (label and
background correct), "a photo of a {shape}" (shape correct, colour left to the model).
Writes scripts/logs/guidance_effect.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vitdream.datasets.shapes import BACKGROUNDS, CLASSES, SHAPES  # noqa: E402
from vitdream.evaluation import background_of  # noqa: E402


def main() -> None:
    from diffusers import StableDiffusionPipeline

    import vitdream as vd
    from vitdream.assets import mini_sd_path

    torch.set_num_threads(1)
    pipe = StableDiffusionPipeline.from_pretrained(mini_sd_path())
    pipe.set_progress_bar_config(disable=True)
    classifier = vd.load_classifier(progress=False)  # the embedded mini ViT

    def judge(images):
        return [predictions[0].label for predictions in classifier.classify(images, top_k=1)]

    plain = [(f"a photo of a {label}", label, None) for label in CLASSES for _ in range(4)]
    context = [(f"a photo of a {label} on a {bg} background", label, bg)
               for i, label in enumerate(CLASSES) for bg in [b for b in BACKGROUNDS if b != label.split()[0]][i % 3::3][:2]
               for _ in range(2)]
    shape_only = [(f"a photo of a {shape}", shape, None) for shape in SHAPES for _ in range(8)]
    report = {}
    for scale in (1.0, 2.0, 4.0, 7.5):
        row = {}
        for name, items in (("label", plain), ("label+background", context), ("shape only", shape_only)):
            t0 = time.time()
            images = pipe([p for p, _, _ in items], num_inference_steps=20, guidance_scale=scale,
                          generator=torch.Generator().manual_seed(7)).images
            preds = judge(images)
            if name == "shape only":
                ok = [p.split()[1] == want for p, (_, want, _) in zip(preds, items)]
            else:
                ok = [p == want and (bg is None or background_of(im) == bg)
                      for p, im, (_, want, bg) in zip(preds, images, items)]
            row[name] = round(float(np.mean(ok)), 3)
            row[f"{name} n"] = len(items)
            row[f"{name} s/image"] = round((time.time() - t0) / len(items), 3)
        report[str(scale)] = row
        print(scale, json.dumps(row), flush=True)
    (ROOT / "scripts/logs/guidance_effect.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
