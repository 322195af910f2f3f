"""What live evaluation costs: a default DreamBooth run on the embedded world (``vd.dreambooth(base=None)``
defaults: 1,200 steps, validation every 400 steps; the figures in docs/benchmarks.md were measured with
the earlier defaults, ``--steps 200`` and validation every 100)
with and without it (``validation_steps=None``). Class images are generated once before timing; each round
runs both variants in alternating order, in this process, same seed and thread count. Prints one JSON line:
wall times, the extra wall time of the best rounds, and ``evaluation_share`` -- the seconds spent validating
over the rest of the same run (robust to other load on the machine, which moves both).

    .venv/bin/python bench/dreambooth_validation.py [--rounds 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=None, help="max_train_steps (default: the embedded-base default)")
    args = p.parse_args()

    import torch

    import vitdream as vd

    torch.set_num_threads(args.threads)
    root = Path(tempfile.mkdtemp(prefix="vd-bench-validation-"))
    subject = vd.datasets.dreambooth_subject()
    subject.save(root / "instance")
    common = dict(instance_images=str(root / "instance"), instance_prompt=subject.instance_prompt,
                  class_prompt=subject.class_prompt, class_data_dir=str(root / "class"), report_to=["tensorboard", "csv"])
    if args.steps:
        common["max_train_steps"] = args.steps
    warm = vd.dreambooth(**common, output_dir=str(root / "warm"), max_train_steps=1, validation_steps=None)
    warm.progress = False
    warm.fit()  # class images, imports, caches
    times: dict[str, list[float]] = {"with validation": [], "without": []}
    evaluation_s: list[float] = []
    for r in range(args.rounds):
        order = ["with validation", "without"] if r % 2 == 0 else ["without", "with validation"]
        for name in order:
            extra = {} if name == "with validation" else {"validation_steps": None}
            run = vd.dreambooth(**common, **extra, output_dir=str(root / f"{name.replace(' ', '-')}-{r}"))
            run.progress = False
            t0 = time.perf_counter()
            run.fit()
            times[name].append(time.perf_counter() - t0)
            if name == "with validation":
                evaluation_s.append(sum(e["seconds"] for e in run.log.of_type("evaluation")))
                last = run.metric_history()
    best = {k: min(v) for k, v in times.items()}
    report = {
        "steps": run.config.max_train_steps, "validation_steps": run.config.validation_steps, "threads": args.threads,
        "wall_s": {k: [round(x, 1) for x in v] for k, v in times.items()},
        "evaluation_s": [round(x, 1) for x in evaluation_s],
        "extra_wall": round(best["with validation"] / best["without"] - 1, 3),
        # contention-robust: the evaluation's own seconds over the rest of the same run
        "evaluation_share": [round(e / (w - e), 3) for e, w in zip(evaluation_s, times["with validation"])],
        "metrics": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()} for row in last],
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
