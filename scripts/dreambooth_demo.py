"""Measure the DreamBooth demo of the shapes world: the defaults, their wall time, and the paper's ablation.

Trains "sks star" (``vd.datasets.dreambooth_subject()``) on the embedded mini SD twice with the
defaults of ``vd.dreambooth(base=None)`` -- with and without prior preservation, same seed -- then
reports, for the base model and both runs (``--samples`` images per prompt, seeds 0, 1, ...):

- training wall time (class-image generation included, and without it);
- ``subject``: share of "a photo of sks star" images that show the subject (``Subject.matches``: the
  model-free pixel rule for the two-tone star, and the mini ViT's label for the shape);
- ``contexts``: for every background no instance picture shows (``Subject.new_contexts``), the share
  of "a photo of sks star on a {bg} background" images showing the subject, and with that background;
- ``identifier_steers``: share of seeds where "a photo of sks star" shows the subject and "a photo of
  a star" (same seed) does not;
- ``class_prompt_shows_subject``: share of "a photo of a star" images showing it (language drift);
- ``identifier_gap``: how far "sks" moves the text conditioning and the images (:func:`identifier_gap`);
- ``vd.evaluate_dreambooth``: subject fidelity, prompt fidelity, PRES, DIV (mini-ViT embeddings).

    python scripts/dreambooth_demo.py                # about 5 minutes on one core
    python scripts/dreambooth_demo.py --steps 300    # any DreamBooth option can be overridden

Writes ``scripts/logs/dreambooth_demo.json`` and sample grids next to it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import vitdream as vd  # noqa: E402
from vitdream.evaluation import as_generator  # noqa: E402


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def subject_match(generator, subject, classifier, samples: int) -> dict:
    """The shares described in the module docstring, for one model; seeds 0 .. samples - 1."""
    from vitdream.datasets.reading import background_of

    def draw(prompt: str) -> list:
        return generator.generate(prompt, num_images=samples, seed=0, guidance_scale=7.5, steps=20)

    def shows(images: list) -> list[bool]:
        labels = [p[0].label for p in classifier.classify(images, top_k=1)]
        return [subject.matches(im, label) for im, label in zip(images, labels)]

    instance, plain = shows(draw(subject.instance_prompt)), shows(draw(subject.class_prompt))
    contexts = {}
    for bg in subject.new_contexts():
        images = draw(subject.prompt(bg))
        contexts[bg] = {"subject": round(sum(shows(images)) / samples, 3),
                        "background": round(sum(background_of(im) == bg for im in images) / samples, 3)}
    return {"samples": samples, "subject": round(sum(instance) / samples, 3), "contexts": contexts,
            "contexts_meeting_bar": sum(c["subject"] >= 0.5 and c["background"] >= 0.8 for c in contexts.values()),
            "identifier_steers": round(sum(a and not b for a, b in zip(instance, plain)) / samples, 3),
            "class_prompt_shows_subject": round(sum(plain) / samples, 3)}


def identifier_gap(generator, subject, seeds: int = 8) -> dict:
    """How far the identifier moves the model: the text conditioning of "a photo of sks star" vs "a photo
    of a star" (L2 distance over all token positions, relative to the plain prompt's norm), and their
    images with the same seeds (mean absolute pixel difference, 0-255); "a photo of red star" vs "a photo
    of a star" is the yardstick of a word the model knows."""
    import numpy as np
    import torch

    pipe = generator.pipe

    def condition(prompt: str):
        with torch.no_grad():
            return pipe.encode_prompt(prompt, pipe.device, 1, False)[0][0]

    def pixels(prompt: str):
        images = generator.generate(prompt, num_images=seeds, seed=300, guidance_scale=7.5, steps=20)
        return np.stack([np.asarray(im.convert("RGB"), dtype=np.float32) for im in images])

    plain = subject.class_prompt
    b, plain_pixels = condition(plain), pixels(plain)  # the reference, computed once
    out = {}
    for name, prompt in (("identifier", subject.instance_prompt), ("known_word", plain.replace(" a ", " red "))):
        a = condition(prompt)
        out[name] = {"condition": round(float((a - b).norm() / b.norm()), 3),
                     "image": round(float(np.abs(pixels(prompt) - plain_pixels).mean()), 1)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "vitdream-dreambooth-demo")
    p.add_argument("--logs", type=Path, default=ROOT / "scripts/logs")
    p.add_argument("--steps", type=int, default=None, help="max_train_steps (default: the embedded-base default)")
    p.add_argument("--lr", type=float, default=None, help="learning_rate (default: the embedded-base default)")
    p.add_argument("--num-images", type=int, default=8, help="generations per prompt in vd.evaluate_dreambooth")
    p.add_argument("--samples", type=int, default=16, help="generations per prompt for the subject shares")
    p.add_argument("--tag", default="", help="suffix of the output files")
    p.add_argument("--backgrounds", default=None, help="comma-separated backgrounds of the instance pictures")
    p.add_argument("--trainer", default=None, help="trainer plugin id (default: dreambooth, full fine-tune)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="any other vd.dreambooth option (YAML value), e.g. --option train_text_encoder=false")
    p.add_argument("--base", default=None, help="a copy of the mini SD to start from (default: the embedded one)")
    args = p.parse_args()

    import torch
    import yaml

    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    subject = (vd.datasets.dreambooth_subject(backgrounds=args.backgrounds.split(",")) if args.backgrounds
               else vd.datasets.dreambooth_subject())
    instance_dir = args.work / "sks_star"
    subject.save(instance_dir)
    overrides = {k: v for k, v in (("max_train_steps", args.steps), ("learning_rate", args.lr)) if v is not None}
    for item in args.option:
        key, _, value = item.partition("=")
        overrides[key] = yaml.safe_load(value)
    if args.base:  # the embedded-base defaults only apply to base=None; give them explicitly for a copy
        from vitdream.datasets.subject import MINI_SD_DREAMBOOTH

        overrides = {**MINI_SD_DREAMBOOTH, **overrides, "base": args.base}
    report: dict = {"threads": torch.get_num_threads(), "overrides": overrides, "runs": {}}
    runs = {}
    for name, extra in (("with prior", {}), ("without prior", {"with_prior_preservation": False})):
        run = vd.dreambooth(trainer=args.trainer, instance_images=str(instance_dir), instance_prompt=subject.instance_prompt,
                            class_prompt=subject.class_prompt, output_dir=str(args.work / name.replace(" ", "-")),
                            class_data_dir=str(args.work / "class_images"), **overrides, **extra)
        t0, c0 = time.perf_counter(), time.process_time()
        run.fit()
        wall = time.perf_counter() - t0
        history = run.history()
        report["runs"][name] = {
            "wall_s": round(wall, 1), "cpu_s": round(time.process_time() - c0, 1),
            "steps": run.config.max_train_steps, "learning_rate": run.config.learning_rate,
            "num_class_images": run.config.num_class_images if run.config.prior_preservation else 0,
            # from the "start" event (after class images, model loading) to the last step
            "train_s": round(history[-1]["time"] - run.log.of_type("start")[0]["time"], 1) if history else None,
        }
        log(f"{name}: {report['runs'][name]}")
        runs[name] = run

    classifier = vd.load_classifier(progress=False)
    models = {name: as_generator(model) for name, model in {"base": args.base, **runs}.items()}
    report["subject_match"] = {name: subject_match(gen, subject, classifier, args.samples)
                               for name, gen in models.items()}
    report["identifier_gap"] = {name: identifier_gap(gen, subject) for name, gen in models.items()}
    for name, row in report["subject_match"].items():
        log(f"{name}: {json.dumps(row)}")
    result = vd.evaluate_dreambooth({"base": args.base, **runs}, num_images=args.num_images, progress=False)
    report["metrics"] = result.metrics
    for name in result.metrics:
        log(f"{name}: {json.dumps({k: round(v, 3) for k, v in result.metrics[name].items()})}")
    args.logs.mkdir(parents=True, exist_ok=True)
    (args.logs / f"dreambooth_demo{args.tag}.json").write_text(json.dumps(report, indent=2, default=str))
    result.grid(max_images=6).save(args.logs / f"dreambooth_demo{args.tag}.png")
    log(f"wrote {args.logs / f'dreambooth_demo{args.tag}.json'}")


if __name__ == "__main__":
    main()
