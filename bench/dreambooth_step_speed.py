"""Seconds per DreamBooth step on the embedded world: plain AdamW vs ``fused_adam``, pixels vs ``cache_latents``.

All four variants run in this process, one after another, same seed and thread count (the embedded defaults
otherwise, 150 steps, no validation; the first 20 steps are warm-up). Prints one JSON line with the
seconds per step of each variant and their ratios to the plain one.

    .venv/bin/python bench/dreambooth_step_speed.py --threads 2
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import vitdream as vd  # noqa: E402

VARIANTS = {"plain": {"fused_adam": False, "cache_latents": False}, "cached latents": {"fused_adam": False},
            "fused AdamW": {"cache_latents": False}, "both (default)": {}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=150)
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    root = Path(tempfile.mkdtemp(prefix="vitdream-step-speed-"))
    subject = vd.datasets.dreambooth_subject()
    subject.save(root / "sks")
    seconds = {}
    for name, extra in VARIANTS.items():
        options = subject.dreambooth_options(root / "sks", max_train_steps=args.steps, validation_steps=None, **extra)
        run = vd.dreambooth(**options, output_dir=str(root / "run"), class_data_dir=str(root / "class"))
        run.progress = False
        run.fit()
        times = [e["time"] for e in run.history()]
        seconds[name] = (times[-1] - times[20]) / (len(times) - 21)
        shutil.rmtree(root / "run")
    shutil.rmtree(root, ignore_errors=True)
    print(json.dumps({"threads": args.threads, "s_per_step": {k: round(v, 4) for k, v in seconds.items()},
                      "ratio_to_plain": {k: round(v / seconds["plain"], 2) for k, v in seconds.items()}}))


if __name__ == "__main__":
    main()
