"""End-to-end DreamBooth runs on a tiny SD: kill -9 + resume equivalence, pruning, slim checkpoints,
export to plain diffusers, 2-process DDP (gloo) matching the math, LoRA export, CLI, config errors."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

import vitdream as vd
from vitdream.errors import OptionsError
from vitdream.testing.dreambooth import make_tiny_dreambooth

# Tolerance of weight comparisons: same seeded samples and arithmetic order on CPU, so runs agree to
# float32 rounding; DDP's gloo all-reduce sums in another order (a few ulps of the gradients). With
# adam_epsilon=1 AdamW's update is about lr * gradient, so such ulps are not amplified into lr-sized
# sign flips as they would be with eps=1e-8; the runs move the weights by far more than the tolerances.
ATOL = 1e-6
DDP_ATOL = 1e-6
STRATEGY = "ddp_fork"  # 2 processes, gloo; forked from the CLI process, so the heavy imports happen once


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("db")
    opts = make_tiny_dreambooth(root)
    return root, dict(
        opts, instance_prompt="a photo of sks dog", class_prompt="a photo of a dog", class_data_dir=str(root / "class"),
        num_class_images=2, class_inference_steps=2, max_train_steps=4, checkpointing_steps=2, checkpoints_total_limit=1,
        train_batch_size=1, gradient_accumulation_steps=2, learning_rate=0.05, adam_epsilon=1.0, lr_scheduler="linear",
        lr_warmup_steps=1, snr_gamma=5.0, offset_noise=0.1, random_flip=True, report_to=["csv"],
    )


def child_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "VITDREAM_LOAD_PLUGINS": "", "HF_HUB_OFFLINE": "1",
            "PYTHONWARNINGS": "ignore"}


def weights(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items() if k.startswith(("unet.", "text_encoder."))}


def assert_same(a: dict, b: dict, atol: float) -> None:
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst <= atol, f"weights differ by {worst}"


@pytest.fixture(scope="module")
def reference(setup):
    """An uninterrupted run (batch 1 x 2 accumulation steps), TensorBoard on."""
    root, opts = setup
    run = vd.dreambooth(**{**opts, "report_to": ["tensorboard", "csv"]}, output_dir=str(root / "ref"))
    run.progress = False
    run.fit()
    return run


def test_kill9_then_resume_matches_uninterrupted(setup, reference):
    root, opts = setup
    out = root / "killed"
    script = textwrap.dedent(f"""
        import os, signal, torch, vitdream as vd
        torch.set_num_threads(1)
        run = vd.dreambooth(**{opts!r}, output_dir={str(out)!r})
        def kill(event):
            if event["type"] == "step" and event["step"] == 3:
                os.kill(os.getpid(), signal.SIGKILL)  # after checkpoint-2, mid-way to checkpoint-4
        run.subscribe(kill)
        run.fit()
    """)
    proc = subprocess.run([sys.executable, "-c", script], env=child_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-3000:]
    assert [p.name for p in (out / "checkpoints").glob("*.ckpt")] == ["checkpoint-2.ckpt"]

    run = vd.dreambooth(**opts, output_dir=str(out))
    run.progress = False
    run.fit(resume="latest")
    assert run.trainer.global_step == 4 and run.state == "finished"
    assert_same(weights(run.module), weights(reference.module), ATOL)
    # the resumed run's loss curve continues the uninterrupted one
    ref_losses = {e["step"]: e["loss"] for e in reference.history()}
    assert [e["step"] for e in run.history()] == [3, 4]
    assert run.history()[-1]["loss"] == pytest.approx(ref_losses[4], abs=1e-5)
    # checkpoints_total_limit=1 pruned checkpoint-2
    assert [p.name for p in run.checkpoints()] == ["checkpoint-4.ckpt"]


def test_checkpoint_holds_full_state_but_no_frozen_weights(reference):
    ckpt = torch.load(reference.latest_checkpoint(), map_location="cpu", weights_only=True)
    keys = ckpt["state_dict"].keys()
    assert not any(k.startswith("vae.") for k in keys)
    assert any(k.startswith("unet.") for k in keys) and any(k.startswith("text_encoder.") for k in keys)
    assert ckpt["global_step"] == 4 and ckpt["optimizer_states"] and ckpt["lr_schedulers"]
    assert "torch" in ckpt["rng_states"] and "numpy" in ckpt["rng_states"]
    assert list((reference.output_dir / "logs").rglob("events.out.tfevents*"))
    assert "train/prior_loss" in next((reference.output_dir / "logs" / "csv").rglob("metrics.csv")).read_text()


def test_export_loads_in_plain_diffusers(reference, tmp_path):
    from diffusers import StableDiffusionPipeline

    out = reference.export(tmp_path / "model")
    assert not list(out.rglob("*.bin")) and list(out.rglob("*.safetensors"))
    pipe = StableDiffusionPipeline.from_pretrained(str(out))
    for name in ("unet", "text_encoder"):
        exported = getattr(pipe, name).state_dict()
        for key, value in getattr(reference.module, name).state_dict().items():
            assert torch.equal(exported[key], value), key
    image = pipe("a photo of sks dog", num_inference_steps=2, height=16, width=16).images[0]
    assert image.size == (16, 16)


def test_ddp_two_processes_match_the_math(setup, reference, tmp_path):
    """2 processes x batch 1 (gloo all-reduce) == 1 process x batch 1 x 2 accumulation steps: same samples, same mean."""
    root, opts = setup
    config = {**opts, "gradient_accumulation_steps": 1, "devices": 2, "strategy": STRATEGY, "accelerator": "cpu",
              "output_dir": str(tmp_path / "ddp")}
    (tmp_path / "ddp.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.run([sys.executable, "-m", "vitdream.cli", "dreambooth", str(tmp_path / "ddp.yaml"),
                           "--export", str(tmp_path / "ddp-model")], env=child_env(), capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(tmp_path / "ddp-model"))
    got = {f"{n}.{k}": v for n in ("unet", "text_encoder") for k, v in getattr(pipe, n).state_dict().items()}
    want = weights(reference.module)
    assert_same({k: got[k] for k in want}, want, DDP_ATOL)
    base = StableDiffusionPipeline.from_pretrained(opts["base"])
    moved = max((want[f"unet.{k}"] - v).abs().max().item() for k, v in base.unet.state_dict().items())
    assert moved > 1000 * DDP_ATOL  # training changed the weights far beyond the tolerance


def test_lora_trainer_exports_weights_diffusers_loads(setup, tmp_path):
    from diffusers import StableDiffusionPipeline

    root, opts = setup
    run = vd.dreambooth(**{**opts, "max_train_steps": 2, "gradient_accumulation_steps": 1}, trainer="dreambooth-lora",
                        train_text_encoder=True, rank=2, output_dir=str(tmp_path / "lora"))
    run.progress = False
    run.fit()
    ckpt = torch.load(run.latest_checkpoint(), map_location="cpu", weights_only=True)
    assert ckpt["state_dict"] and all("lora" in k for k in ckpt["state_dict"])  # adapters only
    assert any(k.startswith("text_encoder.") for k in ckpt["state_dict"])
    out = run.export(tmp_path / "lora-weights")
    assert (out / "pytorch_lora_weights.safetensors").is_file()
    pipe = StableDiffusionPipeline.from_pretrained(opts["base"])
    before = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    pipe.load_lora_weights(str(out))
    pipe.fuse_lora()
    after = {k.replace(".base_layer", ""): v for k, v in pipe.unet.state_dict().items() if "lora_" not in k}
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed and all(k.rsplit(".", 2)[-2] in ("to_q", "to_k", "to_v", "0") for k in changed)  # the adapted layers


def test_config_errors_name_the_key_before_anything_is_written(setup, tmp_path):
    root, opts = setup
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({**opts, "output_dir": str(tmp_path / "never"), "learning_rat": 1e-4}))
    with pytest.raises(OptionsError, match=r"bad.yaml: .*unknown option 'learning_rat'"):
        vd.dreambooth(config)
    with pytest.raises(OptionsError, match=r"option 'prior_loss_weight'.*greater than or equal to 0"):
        vd.dreambooth(**opts, prior_loss_weight=-1)
    with pytest.raises(OptionsError, match=r"mixed_precision"):
        vd.dreambooth(**opts, mixed_precision="fp8")
    with pytest.raises(OptionsError, match=r"resume_from_checkpoint"):
        vd.dreambooth(**opts, resume_from_checkpoint=str(tmp_path / "missing.ckpt"))
    from vitdream.cli import main

    with pytest.raises(SystemExit) as exit:
        main(["dreambooth", str(config)])
    assert exit.value.code == 1
    assert not (tmp_path / "never").exists()
    with pytest.raises(OptionsError, match="'max_steps' and 'max_train_steps' are the same option"):
        vd.dreambooth(**opts, max_steps=7)
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({**opts, "output_dir": str(tmp_path / "out")}))
    run = vd.dreambooth(good, max_steps=7)  # keywords override the file, aliases included
    assert run.config.max_train_steps == 7 and run.config.prior_preservation
    assert not (tmp_path / "out").exists()  # nothing is written before fit()
