"""Live DreamBooth evaluation: the best-step rule on scripted histories, the copy alarm by hand, and tiny
runs that validate, log, keep the best checkpoint, stop early, resume with their history and show a
third-party evaluator in the dashboard."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

import vitdream as vd
from vitdream import hookimpl
from vitdream.base import Evaluator
from vitdream.dreambooth.best import BestStepRule
from vitdream.dreambooth.validation import CopyAlarm
from vitdream.errors import VitdreamError
from vitdream.testing.dreambooth import make_tiny_dreambooth

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

NAN = float("nan")


def row(step, sf, pf=NAN, pres=NAN, copies=0):
    return {"step": step, "subject_fidelity": sf, "prompt_fidelity": pf, "PRES": pres, "copies": copies}


def test_best_step_rule_on_a_scripted_history():
    rule = BestStepRule(max_prompt_fidelity_drop=0.1, max_drift=0.1)
    history = [row(0, 0.30, 0.90, 0.20),
               row(100, 0.50, 0.85, 0.25),   # qualifies
               row(200, 0.70, 0.75, 0.25),   # highest fidelity, but prompt fidelity fell 0.15 > 0.1
               row(300, 0.65, 0.90, 0.35),   # drift: PRES rose 0.15 > 0.1
               row(400, 0.60, 0.88, 0.28),   # qualifies, best of those that do
               row(500, 0.90, 0.95, 0.20, copies=1)]  # a copy of an instance image
    assert rule.pick(history) == 400
    assert rule.pick(list(reversed(history))) == 400  # order does not matter
    assert BestStepRule(max_prompt_fidelity_drop=0.2, max_drift=0.2).pick(history) == 200
    assert rule.pick([row(0, 0.3, 0.9, 0.2), row(100, 0.5, 0.5, 0.2)]) is None
    assert rule.pick([row(0, 0.3), row(50, 0.4), row(100, 0.4)]) == 50  # NaN bounds unused; ties: the earliest
    text = rule.explain(history)
    assert "step 400: subject_fidelity 0.600 -- best" in text and "copy an instance image" in text
    assert "prompt fidelity 0.750 < 0.900 - 0.1" in text and "drift: PRES 0.350 > 0.200 + 0.1" in text


def test_copy_alarm_finds_each_samples_nearest_instance_by_cosine():
    instances = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]])
    samples = np.array([[0.0, 3.0, 0.1], [1.0, 1.0, 0.0]])
    similarity, nearest = CopyAlarm(instances, threshold=0.97).nearest(samples)
    assert nearest.tolist() == [1, 0]
    assert similarity.tolist() == pytest.approx([3 / math.sqrt(9.01), 1 / math.sqrt(2)], abs=1e-6)


class ConstantFidelity(Evaluator):
    """Every image gets subject fidelity 0.5 (so the first validation stays the best)."""

    id = "constant-fidelity"
    metrics = ("same",)
    uses = frozenset({"references"})
    provides = {"subject_fidelity": "same"}

    def _score(self, images, prompts, references):
        return {"same": [0.5] * len(images)}


class Brightness(Evaluator):
    """A third-party evaluator: mean brightness, with embeddings (the mean colour)."""

    id = "brightness-eval"
    metrics = ("brightness",)

    def _score(self, images, prompts, references):
        return {"brightness": [np.asarray(im, np.float64).mean() / 255 for im in images]}

    def _embed(self, images):
        return np.stack([np.asarray(im, np.float64).mean((0, 1)) + 1.0 for im in images])


class ThirdParty:
    @hookimpl
    def register_evaluators(self, register):
        register(Brightness)
        register(ConstantFidelity)


@pytest.fixture(scope="module")
def opts(tmp_path_factory):
    root = tmp_path_factory.mktemp("dbe")
    return dict(make_tiny_dreambooth(root), instance_prompt="a photo of sks dog", class_prompt="a photo of a dog",
                class_data_dir=str(root / "class"), num_class_images=2, class_inference_steps=2, learning_rate=1e-3,
                evaluation_inference_steps=2, checkpointing_steps=100)


@pytest.fixture
def third_party(fresh_plugins):
    fresh_plugins.register_plugin(ThirdParty(), name="third-party-evaluator")
    yield


def test_a_run_validates_logs_keeps_its_best_step_and_shows_a_third_party_evaluator(opts, tmp_path, third_party):
    from vitdream.widgets.evaluation import metric_curves

    run = vd.dreambooth(**opts, output_dir=str(tmp_path / "run"), max_steps=4, validation_steps=2,
                        evaluators=[{"id": "vit-embedding", "isolate": False}, "brightness-eval"],
                        report_to=["csv", "tensorboard"])
    run.progress = False
    run.fit()
    events = run.log.of_type("evaluation")
    assert [e["step"] for e in events] == [0, 2, 4]
    first = events[0]
    # the fixed validation set: 3 subject prompts + the class prompt, 2 seeds each, the same at every step
    assert first["prompts"] == [p for p in ("a photo of sks dog", "a photo of sks dog on a blue background",
                                            "a photo of sks dog on a white background", "a photo of a dog") for _ in (0, 1)]
    assert first["seeds"] == [0, 1] * 4 and all(e["seeds"] == first["seeds"] for e in events)
    # the metrics: from the evaluators (vit-embedding provides subject fidelity and the embeddings)
    history = run.metric_history()
    assert [r["step"] for r in history] == [0, 2, 4]
    for r in history:
        assert -1 <= r["subject_fidelity"] <= 1 and -1 <= r["PRES"] <= 1 and r["DIV"] >= 0
        assert math.isnan(r["prompt_fidelity"])  # no evaluator provides it here
        assert 0 <= r["brightness-eval/brightness"] <= 1 and r["copies"] == 0 and r["copy_similarity"] < 0.99
    assert run.best_step == BestStepRule().pick(history) and run.best_step in (2, 4)
    assert len(run.metrics) == 3
    # logged: TensorBoard event file and Lightning's CSV carry eval/<metric>
    assert list((run.output_dir / "logs").rglob("events.out.tfevents.*"))
    rows = [r for f in (run.output_dir / "logs").rglob("metrics.csv") for r in csv.DictReader(open(f))]
    assert {r["step"] for r in rows if r.get("eval/subject_fidelity")} == {"0", "2", "4"}
    # the best step's checkpoint is kept and exportable; compare shows the same samples side by side
    assert run.checkpoint_at("best").name == f"checkpoint-{run.best_step}.ckpt"
    assert (run.export(tmp_path / "best", step="best") / "model_index.json").is_file()
    sheet = run.compare([0, 2, "best"])
    assert sheet.height > 3 * 96
    with pytest.raises(VitdreamError, match="validated steps: 0, 2, 4"):
        run.compare([3])
    with pytest.raises(VitdreamError, match="no checkpoint kept"):
        run.export(tmp_path / "x", step=0)
    # the dashboard: the third-party metric is a curve beside the loss, any step's samples can be picked
    board = vd.widgets.train(run, throttle_s=0.05)
    board.render()
    assert [v for _, v in board.evaluation.picker.options] == [0, 2, 4] and board.evaluation.picker.value == 4
    assert len(board.evaluation.samples.children) == 8 and f"best step {run.best_step}" in board.status.value
    board.evaluation.picker.value = 0
    assert "seed 0" in board.evaluation.samples.children[0].children[1].value
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    metric_curves(ax, board.evaluations, board.best_step)
    assert {"subject_fidelity", "PRES", "DIV", "brightness-eval/brightness"} <= {line.get_label() for line in ax.lines}


def test_early_stopping_and_resume_keep_the_metric_history(opts, tmp_path, third_party):
    out = str(tmp_path / "run")
    common = dict(opts, output_dir=out, max_steps=8, validation_steps=2, report_to=[],
                  evaluators=["constant-fidelity", "brightness-eval"])
    run = vd.dreambooth(**common, early_stopping_patience=1)
    run.progress = False
    run.fit()  # step 2 is the best (ties keep the earliest); step 4 brings nothing new: stop
    assert run.state == "finished" and run.history()[-1]["step"] == 4
    assert run.log.of_type("early_stop")[0]["best_step"] == 2
    assert [r["step"] for r in run.metric_history()] == [0, 2, 4] and run.best_step == 2
    # a new process-like run object on the same folder resumes, shows the old metrics and adds new ones
    again = vd.dreambooth(**common)
    again.progress = False
    again.fit(resume="latest")
    restored = [e["step"] for e in again.log.of_type("evaluation") if e.get("restored")]
    assert restored == [0, 2, 4]
    assert [r["step"] for r in again.metric_history()] == [0, 2, 4, 6, 8]
    assert again.best_step == 2


def test_validation_steps_none_turns_evaluation_off(opts, tmp_path):
    run = vd.dreambooth(**opts, output_dir=str(tmp_path / "run"), max_steps=2, validation_steps=None, report_to=[])
    run.progress = False
    run.fit()
    assert run.log.of_type("evaluation") == [] and not (run.output_dir / "metrics.csv").exists()
    assert run.best_step is None and len(run.metrics) == 0


class GeneratorModule:
    """What LiveEvaluation needs of a DreamBooth module (``sample``): here the embedded base model's images,
    or -- a model trained until it reproduces its instance pictures -- those pictures themselves."""

    def __init__(self, copies=None):
        self.copies = copies
        self.generator = vd.load_generator()

    def sample(self, prompts, seeds, steps, guidance_scale):
        if self.copies is not None:
            return [self.copies[(p + s) % len(self.copies)] for p in range(len(prompts)) for s in seeds]
        return [im for prompt in prompts for im in self.generator.generate(
            prompt, seed=seeds[0], num_images=len(seeds), steps=steps, guidance_scale=guidance_scale)]


def test_copy_alarm_fires_on_reproduced_instance_images_and_stays_quiet_on_the_base_model(tmp_path):
    from vitdream.dreambooth.config import DreamBoothConfig
    from vitdream.dreambooth.validation import LiveEvaluation
    from vitdream.events import EventLog
    from vitdream.widgets.evaluation import EvaluationPanel

    subject = vd.datasets.dreambooth_subject()
    config = DreamBoothConfig(instance_images=subject.images, instance_prompt=subject.instance_prompt,
                              class_prompt=subject.class_prompt, evaluation_inference_steps=10)
    assert config.copy_threshold == 0.99 and config.evaluator_specs[0] == {"id": "vit-embedding", "isolate": True}
    results = {}
    for name, module in (("base", GeneratorModule()), ("copying", GeneratorModule(copies=subject.images))):
        log = EventLog()
        live = LiveEvaluation(config, log, tmp_path / name, lambda: subject.images)
        results[name] = live._evaluate(module, 100), log.of_type("evaluation")[0]
    base, base_event = results["base"]
    assert base["copies"] == 0 and base["copy_similarity"] < 0.99 and base_event["copies"] == []
    copying, event = results["copying"]
    assert copying["copies"] == 8 and copying["copy_similarity"] == pytest.approx(1.0, abs=1e-5)
    assert [c["nearest_instance"] for c in event["copies"]] == [(p + s) % 5 for p in range(4) for s in (0, 1)]
    panel = EvaluationPanel()
    panel.update({100: event}, None)
    assert "this is a copy of instance image 1" in panel.samples.children[1].children[1].value
    quiet = EvaluationPanel()
    quiet.update({100: base_event}, None)
    assert len(quiet.samples.children) == 8 and not any("copy of" in box.children[1].value for box in quiet.samples.children)
