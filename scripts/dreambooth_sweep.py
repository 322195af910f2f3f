"""Try DreamBooth settings on the shapes-world subject and record what each buys.

Each ``--config`` (a JSON object of ``vd.dreambooth`` options) trains "sks star" on ``--base`` and is
measured like ``scripts/dreambooth_demo.py`` measures the defaults (subject share, new contexts, whether
the identifier steers, the class prompt's drift; ``--samples`` images per prompt, seeds 0, 1, ...).
Results are appended to ``--out`` (one row per config, with its wall time), so a sweep can be stopped
and continued; the rows are how the defaults of ``vd.dreambooth(base=None)`` were chosen.

    python scripts/dreambooth_sweep.py --base scripts/logs/mini_sd_v2/checkpoint \\
        --config '{"learning_rate": 2e-4, "max_train_steps": 400}' \\
        --config '{"learning_rate": 2e-4, "max_train_steps": 400, "prior_loss_weight": 2}'
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
sys.path.insert(0, str(ROOT / "scripts"))

import vitdream as vd  # noqa: E402
from dreambooth_demo import identifier_gap, log, subject_match  # noqa: E402
from training_common import relative  # noqa: E402
from vitdream.atomic import atomic_write_text  # noqa: E402
from vitdream.evaluation import as_generator  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", default=None, help="a copy of the mini SD (default: the embedded one)")
    p.add_argument("--config", action="append", default=[], help="JSON object of vd.dreambooth options")
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--out", type=Path, default=ROOT / "scripts/logs/dreambooth_sweep.json")
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "vitdream-dreambooth-sweep")
    p.add_argument("--note", default="", help="recorded with every row")
    args = p.parse_args()

    import torch

    from vitdream.datasets.subject import MINI_SD_DREAMBOOTH

    args.work.mkdir(parents=True, exist_ok=True)
    subject = vd.datasets.dreambooth_subject()
    instance_dir = args.work / "sks_star"
    if not instance_dir.exists():
        subject.save(instance_dir)
    classifier = vd.load_classifier(progress=False)
    rows = json.loads(args.out.read_text()) if args.out.exists() else []
    for text in args.config:
        config = {"validation_steps": None, **json.loads(text)}
        options = {**MINI_SD_DREAMBOOTH, **config}
        if args.base:
            options["base"] = args.base
        output = args.work / "run"
        shutil.rmtree(output, ignore_errors=True)
        run = vd.dreambooth(instance_images=str(instance_dir), instance_prompt=subject.instance_prompt,
                            class_prompt=subject.class_prompt, output_dir=str(output),
                            class_data_dir=str(args.work / "class_images"), **options)
        t0 = time.perf_counter()
        run.fit()
        wall = time.perf_counter() - t0
        history = run.history()
        train_s = history[-1]["time"] - run.log.of_type("start")[0]["time"] if history else None
        row = {"config": {k: v for k, v in options.items() if k != "base"}, "base": relative(args.base) if args.base else "embedded",
               "threads": torch.get_num_threads(), "wall_s": round(wall, 1),
               "train_s": round(train_s, 1) if train_s else None, "note": args.note,
               **subject_match(generator := as_generator(run), subject, classifier, args.samples),
               "gap": identifier_gap(generator, subject)}
        log(json.dumps(row))
        rows.append(row)
        atomic_write_text(args.out, json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
