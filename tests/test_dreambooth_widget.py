"""The DreamBooth dashboard over a real (tiny) background run: curves, images, Stop/Resume, errors."""

from __future__ import annotations

import time

import pytest
import torch

import vitdream as vd
from vitdream.testing.dreambooth import make_tiny_dreambooth


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


@pytest.fixture(scope="module")
def opts(tmp_path_factory):
    root = tmp_path_factory.mktemp("dbw")
    return dict(make_tiny_dreambooth(root), class_prompt="a photo of a dog", class_data_dir=str(root / "class"),
                num_class_images=2, class_inference_steps=2, learning_rate=1e-3, report_to=["csv"])


def wait_until(predicate, timeout=120.0):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_dashboard_follows_background_run_stop_and_resume(opts, tmp_path):
    run = vd.dreambooth(**opts, output_dir=str(tmp_path / "run"), max_steps=5, checkpointing_steps=100,
                        validation_prompt="a photo of sks dog", validation_steps=1, num_validation_images=1,
                        validation_inference_steps=1, evaluators=[])  # live metrics: test_dreambooth_evaluation.py
    run.progress = False
    board = vd.widgets.train(run, throttle_s=0.05)
    assert vd.widgets.train(run) is board  # re-display: the same live dashboard
    assert board.resume_button.disabled and not board.start_button.disabled
    stopped_at = []

    def stop_after_two(event):
        if event["type"] == "step" and event["step"] == 2 and not stopped_at:
            stopped_at.append(2)
            board.stop_button.click()  # as the user would, from another thread

    run.subscribe(stop_after_two)
    board.start_button.click()
    assert run.running  # training happens in the background
    run.wait(120)
    assert run.state == "stopped"
    wait_until(lambda: "stopped, checkpoint saved" in board.status.value)  # the status is drawn last
    assert [p.name for p in run.checkpoints()] == ["checkpoint-2.ckpt"]
    assert board.progress.value == 2 and board.plot.value[:4] == b"\x89PNG"
    assert len(board.images.children) == 1 and "step 2" in board.images.children[0].children[1].value
    view, first_pixels = board.images.children[0].children[0], board.images.children[0].children[0].value

    wait_until(lambda: not board.resume_button.disabled)
    board.resume_button.click()
    run.wait(120)
    wait_until(lambda: "finished" in board.status.value and board.progress.value == 5)
    history = [e["step"] for e in run.history()]
    assert history == [1, 2, 3, 4, 5]
    last = run.history()[-1]
    assert last["steps_per_s"] > 0 and last["eta_s"] == 0 and last["prior_loss"] is not None and last["lr"] == 1e-3
    assert f"{last['loss']:.4f}" in board.status.value
    assert "ETA" in board.status.value and board.errors.value == ""
    # later validation images update the same image widget by value (never a new widget)
    wait_until(lambda: "step 5" in board.images.children[0].children[1].value)
    assert board.images.children[0].children[0] is view and view.value != first_pixels


def test_dashboard_shows_training_errors_with_traceback(opts, tmp_path):
    empty = tmp_path / "no-images"
    empty.mkdir()
    run = vd.dreambooth(**{**opts, "instance_images": str(empty)}, output_dir=str(tmp_path / "bad"), max_steps=2)
    board = vd.widgets.train(run, throttle_s=0.01)
    run.start()
    run.wait(120)
    assert run.state == "failed" and "instance_data_dir" in str(run.error)
    wait_until(lambda: "Traceback" in board.errors.value)
    assert "no usable images" in board.errors.value and "failed" in board.status.value
