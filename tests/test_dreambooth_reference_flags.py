"""diffusers' train_dreambooth[_lora].py flags: the docs table agrees with the parser and the options, every
flag in it does what the table says, and a command line from diffusers' README runs end to end."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

import vitdream as vd
from vitdream.dreambooth.config import EMBEDDED_BASE_DEFAULTS, DreamBoothConfig
from vitdream.dreambooth.lora import LoRAConfig
from vitdream.dreambooth.reference import ABSENT, FLAGS, FLAGS_BY_NAME, REFUSED, build_parser, parse_command
from vitdream.errors import OptionsError, VitdreamError
from vitdream.testing.dreambooth import make_tiny_dreambooth

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

DOCS = Path(__file__).resolve().parents[1] / "docs" / "dreambooth.md"
HAS = {name: importlib.util.find_spec(name) is not None for name in ("bitsandbytes", "xformers", "wandb")}


# -- the docs table ---------------------------------------------------------------------------------------
def _values(cell: str) -> dict[str, object]:
    """``main`` and the ``LoRA:`` / ``embedded:`` values of a defaults cell (Python literals in backticks)."""
    out = {"main": ast.literal_eval(re.match(r"`([^`]*)`", cell).group(1))}
    for key in ("LoRA", "embedded"):
        m = re.search(rf"{key}: `([^`]*)`", cell)
        if m:
            out[key] = ast.literal_eval(m.group(1))
    return out


def docs_table() -> dict[str, dict[str, object]]:
    lines = DOCS.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("<!-- reference-flags"))
    rows = {}
    for line in lines[start + 3:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        assert len(cells) == 6, line
        name = cells[0].strip("`")
        assert name not in rows, f"{name} twice in the table"
        rows[name] = {"scripts": tuple("full" if s == "full" else "lora" for s in cells[1].split(", ")),
                      "diffusers": _values(cells[2]), "vitdream": _values(cells[3]), "status": cells[4], "does": cells[5]}
    return rows


TABLE = docs_table()
STATUSES = {"same", "default differs", "differs", "refused", "no effect"}


def vitdream_default(flag: str, script: str, embedded: bool = False) -> object:
    """The option's default (with a base given, or ``embedded``: without one)."""
    config_class = LoRAConfig if script == "lora" else DreamBoothConfig
    if embedded and flag in EMBEDDED_BASE_DEFAULTS:
        return getattr(config_class(instance_data_dir="x"), flag)
    return config_class.model_fields[flag].get_default(call_default_factory=True)


def test_table_lists_every_flag_of_both_scripts_and_the_parser_takes_them():
    assert set(TABLE) == set(FLAGS_BY_NAME)
    parser_flags = {a.dest for a in build_parser()._actions}
    for name, row in TABLE.items():
        assert row["scripts"] == FLAGS_BY_NAME[name].scripts, name
        assert row["status"] in STATUSES, name
        assert name in parser_flags, f"the CLI does not take --{name}"
        script = "lora" if row["scripts"] == ("lora",) else "full"
        assert name in (LoRAConfig if script == "lora" else DreamBoothConfig).model_fields, f"no option {name}"


def test_from_command_is_reachable_from_a_fresh_import():
    import subprocess

    code = "import vitdream as vd; assert callable(vd.dreambooth.from_command) and callable(vd.dreambooth)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.parametrize("name", sorted(TABLE))
def test_table_defaults_are_the_scripts_and_vitdreams(name):
    row, flag = TABLE[name], FLAGS_BY_NAME[name]
    first = row["scripts"][0]
    assert row["diffusers"]["main"] == flag.default(first)
    if "lora" in row["scripts"] and first == "full":
        assert row["diffusers"].get("LoRA", row["diffusers"]["main"]) == flag.default("lora")
    assert row["vitdream"]["main"] == vitdream_default(name, first)
    if first == "full":
        assert row["vitdream"].get("LoRA", row["vitdream"]["main"]) == vitdream_default(name, "lora")
        assert row["vitdream"].get("embedded", row["vitdream"]["main"]) == vitdream_default(name, "full", embedded=True)
        assert "embedded" not in row["vitdream"] or name in EMBEDDED_BASE_DEFAULTS
    defaults_differ = any(row["vitdream"].get("LoRA" if s == "lora" and first == "full" else "main", row["vitdream"]["main"])
                          != flag.default(s) for s in row["scripts"])
    if row["status"] == "same":
        assert not defaults_differ, f"{name}: 'same' but the defaults differ"
    if row["status"] == "default differs":
        assert defaults_differ, f"{name}: 'default differs' but the defaults are equal"
    assert (row["status"] == "refused") == (name in REFUSED)
    assert (row["status"] == "no effect") == (name == "local_rank")


@pytest.mark.parametrize("config_class,script", [(DreamBoothConfig, "full"), (LoRAConfig, "lora")])
def test_diffusers_defaults_preset_takes_every_script_default(config_class, script):
    config = config_class(instance_data_dir="x", diffusers_defaults=True)
    converted = {"mixed_precision": {None: "no"}, "report_to": {"tensorboard": ["tensorboard"]}}
    for flag in FLAGS:
        want = flag.default(script)
        if want is ABSENT or flag.name in ("pretrained_model_name_or_path", "instance_data_dir", "instance_prompt"):
            continue
        assert getattr(config, flag.name) == converted.get(flag.name, {}).get(want, want), flag.name
    assert config.class_inference_steps == 50 and config.prior_preservation is False
    explicit = config_class(instance_data_dir="x", diffusers_defaults=True, train_batch_size=2)
    assert explicit.train_batch_size == 2  # options given win over the preset


# -- flags that are refused -----------------------------------------------------------------------------
REFUSALS = [
    ("push_to_hub", ["--push_to_hub"], "vitdream does not upload"),
    ("hub_token", ["--hub_token=hf_secret"], "never takes a token(?!.*hf_secret)"),
    ("hub_model_id", ["--hub_model_id=me/dog"], "vitdream does not upload"),
    ("validation_images", ["--validation_images", "a.png", "b.png"], "image-conditioned pipelines"),
    ("pre_compute_text_embeddings", ["--train_text_encoder", "--pre_compute_text_embeddings"], "cannot be used with train_text_encoder"),
    ("report_to", ["--report_to=comet_ml"], "report_to"),
    ("lr_scheduler", ["--lr_scheduler=piecewise_constant"], "lr_scheduler"),
    ("mixed_precision", ["--mixed_precision=fp8"], "invalid choice"),
    ("class_labels_conditioning", ["--class_labels_conditioning=labels"], "class_labels_conditioning"),
    ("resume_from_checkpoint", ["--resume_from_checkpoint=checkpoint-7"], "checkpoint-<step> folder"),
    ("with_prior_preservation", ["--with_prior_preservation", "--set", "class_prompt=null"], "needs class_prompt"),
    ("rank", ["train_dreambooth.py", "--rank=8"], "unknown option 'rank'"),
]
if not HAS["bitsandbytes"]:
    REFUSALS.append(("use_8bit_adam", ["--use_8bit_adam"], "needs the bitsandbytes package"))
if not HAS["xformers"]:
    REFUSALS.append(("enable_xformers_memory_efficient_attention", ["--enable_xformers_memory_efficient_attention"],
                     "needs the xformers package"))
if not HAS["wandb"]:
    REFUSALS.append(("report_to", ["--report_to=wandb"], "wandb package"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("ref")
    opts = make_tiny_dreambooth(root)
    return SimpleNamespace(root=root, base=opts["base"], instance=opts["instance_images"])


def command(tiny, out, *extra):
    return ["--pretrained_model_name_or_path", tiny.base, "--instance_data_dir", tiny.instance,
            "--instance_prompt=a photo of sks dog", f"--output_dir={out}", *extra]


@pytest.mark.parametrize("flag,extra,message", REFUSALS, ids=[f"{r[0]}:{' '.join(r[1])}" for r in REFUSALS])
def test_refused_flags_fail_before_anything_is_written(tiny, tmp_path, flag, extra, message):
    from vitdream.cli import main

    out = tmp_path / "never"
    argv = command(tiny, out, *extra)
    with pytest.raises(OptionsError, match=message) as error:
        vd.dreambooth.from_command(argv)
    assert flag in str(error.value)
    with pytest.raises(SystemExit) as exit:
        main(["dreambooth", *argv])
    assert exit.value.code == 1
    assert not out.exists()


# -- flags that work: each case checks what the table says ----------------------------------------------------
def created(tiny, tmp_path, *extra, script="train_dreambooth.py"):
    return vd.dreambooth.from_command([script, *command(tiny, tmp_path / "run", *extra)])


def built(run):
    from vitdream.dreambooth.run_length import settle_run_options

    settle_run_options(run.config, run.output_dir, resuming=False)
    run.module = run.build_module(run.load_components())
    return run.module


def tiny_batch(n=1, prior=True):
    gen = torch.Generator().manual_seed(0)
    rows = 2 * n if prior else n
    return {"pixels": torch.rand(rows, 3, 16, 16, generator=gen) * 2 - 1, "positions": torch.arange(n),
            "num_instance": torch.tensor(n)}


def fake_trainer(module, **fields):
    return SimpleNamespace(lightning_module=module, world_size=1, global_rank=0, global_step=0, is_global_zero=True,
                           strategy=SimpleNamespace(root_device=torch.device("cpu")), **fields)


def callback(trainer, name):
    return next(c for c in trainer.callbacks if type(c).__name__ == name)


def check_base(run):
    components = run.load_components()
    assert list(components["unet"].config.block_out_channels) == [8, 16]  # the tiny base, not the embedded mini SD
    assert run.config.resolution == 16  # resolution None: the base's native size


def spy_from_pretrained(monkeypatch):
    from diffusers import StableDiffusionPipeline

    seen = {}
    original = StableDiffusionPipeline.from_pretrained.__func__

    def record(cls, *args, **kwargs):
        seen.update(kwargs)
        return original(cls, *args, **{k: v for k, v in kwargs.items() if k != "revision"})

    monkeypatch.setattr(StableDiffusionPipeline, "from_pretrained", classmethod(record))
    return seen


def check_tokenizer(run, tmp_path):
    module = built(run)
    assert module.tokenizer.model_max_length == 9 and module.prompt_ids.shape == (2, 9)
    run.config.tokenizer_name = str(tmp_path / "no-such-tokenizer")
    with pytest.raises(VitdreamError, match="tokenizer_name .*no-such-tokenizer.*could not load"):
        run.load_components()


def check_instance_glob(run, tmp_path):
    from vitdream.dreambooth.data import DreamBoothData
    from vitdream.dreambooth.run_length import settle_run_options

    data = DreamBoothData(run.config, None)
    data.setup("fit")
    assert len(data.instance_images) == 2  # the glob matched 0.png and 1.png
    run.config.instance_data_dir = str(tmp_path / "empty")
    with pytest.raises(VitdreamError, match="instance_data_dir: no usable images in"):
        settle_run_options(run.config, run.output_dir, resuming=False)  # fit() checks this before writing anything


def check_prompts(run):
    module = built(run)
    ids = module.tokenizer(["a photo of sks dog", "a photo of a dog"], padding="max_length", truncation=True,
                           max_length=module.tokenizer.model_max_length, return_tensors="pt").input_ids
    assert torch.equal(module.prompt_ids, ids) and run.config.prior_preservation


def check_validation(run):
    trainer = run.build_trainer()
    previews = callback(trainer, "ValidationImages")
    assert previews.prompts == ["a photo of sks dog on the beach"] and previews.num_images == 2 and previews.every == 3


def check_validation_scheduler(run, monkeypatch):
    from vitdream.dreambooth.module import DreamBoothModule

    module, pipes = built(run), []
    make = DreamBoothModule.make_pipeline
    monkeypatch.setattr(DreamBoothModule, "make_pipeline", lambda self: pipes.append(make(self)) or pipes[-1])
    images = module.sample("a photo of sks dog", [0], num_inference_steps=2)
    assert len(images) == 1 and type(pipes[0].scheduler).__name__ == "DDPMScheduler"
    assert type(module.inference_scheduler).__name__ != "DDPMScheduler"  # only the previews change


def check_validation_epochs(run):
    from vitdream.dreambooth.run_length import settle_run_options

    settle_run_options(run.config, run.output_dir, resuming=False)
    assert run.config.validation_steps == 2 * 3  # 3 instance images, batch 1: 3 steps per pass


def check_prior_off(run, recorded):
    assert not run.config.prior_preservation and run.class_dir() is None
    assert any("without with_prior_preservation" in str(w.message) for w in recorded)


def check_prior_loss_weight(run):
    module = built(run)
    losses = module.compute_losses(tiny_batch())
    assert losses["loss"].item() == pytest.approx(losses["instance_loss"].item() + 0.25 * losses["prior_loss"].item(), rel=1e-6)


def check_class_images(run, monkeypatch, tmp_path):
    from vitdream.dreambooth import class_images
    from vitdream.dreambooth.data import DreamBoothData

    calls = []
    monkeypatch.setattr(class_images, "ensure_class_images", lambda *a, **k: calls.append((a, k)))
    module = built(run)
    data = DreamBoothData(run.config, run.class_dir())
    data.trainer = fake_trainer(module)
    data.prepare_data()
    (folder, prompt, count), options = calls[0]
    assert folder == tmp_path / "class" and prompt == "a photo of a dog" and count == 3
    assert options["sample_batch_size"] == 2 and options["num_inference_steps"] == run.config.class_inference_steps
    assert run.config.prior_generation_precision == "no"  # on CPU: fp32 generation whatever the precision


def check_seed(run, monkeypatch):
    from vitdream.dreambooth.run_length import drawn_seed, settle_run_options

    assert run.config.seed is None
    settle_run_options(run.config, run.output_dir, resuming=False)
    drawn = run.config.seed
    assert isinstance(drawn, int)
    run.output_dir.mkdir(parents=True)
    (run.output_dir / "config.yaml").write_text(yaml.safe_dump({"seed": 1234}))
    run.config.seed = None
    settle_run_options(run.config, run.output_dir, resuming=True)
    assert run.config.seed == 1234  # a resumed run keeps the seed it was drawn
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("PL_GLOBAL_SEED", "77")
    assert drawn_seed(run.output_dir, resuming=False) == 77  # a DDP worker takes rank 0's draw


def check_center_crop(run):
    from vitdream.dreambooth.data import DreamBoothData

    assert run.config.resolution == 12 and DreamBoothData(run.config, None).augment().center_crop


def check_text_encoder_trains(run, on):
    keys = built(run).trainable_state_keys()
    assert any(k.startswith("text_encoder.") for k in keys) == on and any(k.startswith("unet.") for k in keys)


def check_epochs(run):
    from vitdream.dreambooth.run_length import settle_run_options

    settle_run_options(run.config, run.output_dir, resuming=False)
    assert run.config.max_train_steps == 2 * 2  # 2 passes x ceil(3 images / batch 2)


def check_lightning_trainer(run):
    built(run)
    trainer = run.build_trainer()
    assert trainer.max_steps == 7 and trainer.accumulate_grad_batches == 3 and trainer.gradient_clip_val == 0.5
    checkpoints = callback(trainer, "StepCheckpoints")
    assert checkpoints.every == 2 and checkpoints.total_limit == 2


def check_gradient_checkpointing(run):
    assert built(run).unet.is_gradient_checkpointing


def check_optimizer(run):
    from diffusers.optimization import get_scheduler

    module = built(run)
    module._trainer = SimpleNamespace(world_size=1)
    setup = module.configure_optimizers()
    optimizer, scheduler = setup["optimizer"], setup["lr_scheduler"]["scheduler"]
    group = optimizer.param_groups[0]
    assert group["initial_lr"] == pytest.approx(1e-3 * 2 * 3)  # scale_lr: x accumulation 2 x batch 3 x 1 process
    assert group["betas"] == (0.8, 0.95) and group["weight_decay"] == 0.02 and group["eps"] == 1e-6
    twin = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=6e-3)
    want = get_scheduler("cosine_with_restarts", twin, num_warmup_steps=2, num_training_steps=10, num_cycles=2, power=2.0)
    for _ in range(10):
        assert scheduler.get_last_lr()[0] == pytest.approx(want.get_last_lr()[0])
        optimizer.step(), scheduler.step(), twin.step(), want.step()


def check_polynomial_power(run):
    from diffusers.optimization import get_scheduler

    module = built(run)
    module._trainer = SimpleNamespace(world_size=1)
    scheduler = module.configure_optimizers()["lr_scheduler"]["scheduler"]
    twin = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=run.config.learning_rate)
    want = get_scheduler("polynomial", twin, num_warmup_steps=0, num_training_steps=run.config.max_train_steps, power=3.0)
    for _ in range(5):
        scheduler.optimizer.step(), scheduler.step(), twin.step(), want.step()
    assert scheduler.get_last_lr()[0] == pytest.approx(want.get_last_lr()[0])
    assert want.get_last_lr()[0] != pytest.approx(run.config.learning_rate * (1 - 5 / run.config.max_train_steps))


def check_workers(run):
    from vitdream.dreambooth.data import DreamBoothData

    module = built(run)
    data = DreamBoothData(run.config, None)
    data.trainer = fake_trainer(module)
    data.setup("fit")
    assert data.train_dataloader().num_workers == 2


def check_logging(run, tensorboard_only):
    from pytorch_lightning.loggers import TensorBoardLogger

    loggers = run.build_loggers()
    tensorboard = [lg for lg in loggers if isinstance(lg, TensorBoardLogger)]
    assert Path(tensorboard[0].log_dir) == run.output_dir / "tb"
    assert (len(loggers) == 1) == tensorboard_only


def check_report_to(run):
    check_logging(run, tensorboard_only=True)
    everything = DreamBoothConfig(instance_data_dir="x", report_to="all").report_to
    assert everything == ["tensorboard", "csv"] + (["wandb"] if HAS["wandb"] else [])  # "all": what is installed
    assert DreamBoothConfig(instance_data_dir="x", report_to="csv, tensorboard").report_to == ["csv", "tensorboard"]


def check_tf32(run):
    before = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = False
        built(run).on_fit_start()
        assert torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def check_local_rank(run, tiny, tmp_path):
    plain = created(tiny, tmp_path)
    assert run.config.local_rank == 3
    assert run.config.model_dump(exclude={"local_rank"}) == plain.config.model_dump(exclude={"local_rank"})


def check_set_grads_to_none(run, to_none):
    module = built(run)
    optimizer = torch.optim.AdamW(module.trainable_parameters())
    module.compute_losses(tiny_batch())["loss"].backward()
    module.optimizer_zero_grad(0, 0, optimizer)
    grads = [p.grad for p in module.trainable_parameters()]
    if to_none:
        assert all(g is None for g in grads)
    else:
        assert sum(g is not None for g in grads) > len(grads) // 2 and all(g is None or not g.any() for g in grads)


def check_offset_noise(run, tiny, tmp_path):
    assert run.config.offset_noise == 0.1  # a switch: diffusers' 0.1, not 1.0
    plain = built(created(tiny, tmp_path))
    module = built(run)
    batch = tiny_batch()
    noise_plain = plain.training_inputs(batch)[2]  # epsilon prediction: the target is the noise
    noise_offset = module.training_inputs(batch)[2]
    offset = noise_offset - noise_plain  # same per-sample draws; the offset is one number per sample and channel
    assert offset.abs().max() > 0
    assert torch.allclose(offset, offset[:, :, :1, :1].expand_as(offset), atol=1e-6)
    assert 0.01 < offset[:, :, 0, 0].std() < 0.5


def check_snr_gamma(run, recorded):
    module = built(run)
    timesteps = torch.tensor([10, 500, 990])
    from diffusers.training_utils import compute_snr

    snr = compute_snr(module.noise_scheduler, timesteps)
    assert torch.allclose(module.snr_weights(timesteps), torch.clamp(snr, max=5.0) / snr)
    assert any("snr_gamma with prior preservation" in str(w.message) for w in recorded)


def check_precompute(run, precompute):
    module = built(run)
    first = module.prompt_embeddings()
    assert (module._prompt_embeds is not None) == precompute  # cached, or re-encoded every step (as diffusers)
    assert torch.equal(first, module.prompt_embeddings()) and not first.requires_grad


def check_tokenizer_max_length(run):
    assert built(run).prompt_ids.shape == (2, 7)


def check_attention_mask(run, tiny, tmp_path):
    module = built(run)
    embeds = module.prompt_embeddings()
    mask = module.prompt_mask
    with torch.no_grad():
        want = module.text_encoder(module.prompt_ids, attention_mask=mask)[0]
        unmasked = module.text_encoder(module.prompt_ids)[0]
    assert torch.equal(embeds, want) and mask.min() == 0
    assert not torch.allclose(embeds, unmasked)


def check_skip_save_text_encoder(run, tmp_path):
    module = built(run)
    out = tmp_path / "export"
    run._save_pipeline(module, out)
    assert not (out / "text_encoder").exists() and (out / "unet").is_dir()
    assert json.loads((out / "model_index.json").read_text())["text_encoder"] == [None, None]


def check_class_labels(run, tmp_path):
    from diffusers import UNet2DConditionModel

    from vitdream.dreambooth.module import DreamBoothModule

    with pytest.raises(VitdreamError, match="no class embedding"):
        built(run)  # the tiny UNet has none: labels would be ignored
    components = run.load_components()
    unet_config = {**components["unet"].config, "class_embed_type": "timestep"}
    components["unet"] = UNet2DConditionModel.from_config(unet_config)
    module, seen = DreamBoothModule(run.config, components), {}
    module.unet.register_forward_pre_hook(lambda m, args, kwargs: seen.update(kwargs), with_kwargs=True)
    module.compute_losses(tiny_batch(prior=False))
    assert seen["class_labels"] is not None and seen["class_labels"].shape == (1,)


def check_rank(run):
    module = built(run)
    lora_a = [p for name, p in module.unet.named_parameters() if "lora_A" in name]
    assert lora_a and all(p.shape[0] == 2 for p in lora_a) and module.config.lora_alpha is None


def check_resolution(run):
    assert run.config.resolution == 12


def check_mixed_precision(run):
    from vitdream.dreambooth.run_length import check_precision

    assert run.config.lightning_precision == "bf16-mixed"
    check_precision(run.config)
    run.config.mixed_precision = "fp16"
    if not torch.cuda.is_available():
        with pytest.raises(VitdreamError, match="mixed_precision: fp16 needs a GPU"):
            check_precision(run.config)  # fit() checks this before writing anything


def check_max_train_steps(run):
    assert run.build_trainer().max_steps == 5 and run.config.max_train_steps == 5


def check_checkpoint_flags(run):
    checkpoints = callback(run.build_trainer(), "StepCheckpoints")
    assert checkpoints.every == 2 and checkpoints.total_limit == 2


# flag -> (command-line extras, check(run, fixtures...)); each row is one case of test_flag_behaviour
CASES = {
    "pretrained_model_name_or_path": ([], check_base),
    "revision": (["--revision=main", "--variant=fp16"], "revision_variant"),
    "variant": (["--variant=fp16", "--revision=main"], "revision_variant"),
    "tokenizer_name": (["--tokenizer_name={tokenizer}"], check_tokenizer),
    "instance_data_dir": (["--instance_data_dir={instance}/[01].png"], check_instance_glob),
    "class_data_dir": (["--class_prompt=a photo of a dog", "--class_data_dir={tmp}/class", "--num_class_images=3",
                        "--sample_batch_size=2", "--prior_generation_precision=no"], check_class_images),
    "num_class_images": (["--class_prompt=a photo of a dog", "--class_data_dir={tmp}/class", "--num_class_images=3",
                          "--sample_batch_size=2", "--prior_generation_precision=no"], check_class_images),
    "sample_batch_size": (["--class_prompt=a photo of a dog", "--class_data_dir={tmp}/class", "--num_class_images=3",
                           "--sample_batch_size=2", "--prior_generation_precision=no"], check_class_images),
    "prior_generation_precision": (["--class_prompt=a photo of a dog", "--class_data_dir={tmp}/class",
                                    "--num_class_images=3", "--sample_batch_size=2", "--prior_generation_precision=no"],
                                   check_class_images),
    "instance_prompt": (["--class_prompt=a photo of a dog", "--with_prior_preservation"], check_prompts),
    "class_prompt": (["--class_prompt=a photo of a dog"], check_prompts),
    "with_prior_preservation": (["--class_prompt=a photo of a dog", "--no-with_prior_preservation"], check_prior_off),
    "validation_prompt": (["--validation_prompt=a photo of sks dog on the beach", "--num_validation_images=2",
                           "--validation_steps=3"], check_validation),
    "num_validation_images": (["--validation_prompt=a photo of sks dog on the beach", "--num_validation_images=2",
                               "--validation_steps=3"], check_validation),
    "validation_steps": (["--validation_prompt=a photo of sks dog on the beach", "--num_validation_images=2",
                          "--validation_steps=3"], check_validation),
    "validation_scheduler": (["--validation_scheduler=DDPMScheduler"], check_validation_scheduler),
    "validation_epochs": (["train_dreambooth_lora.py", "--validation_epochs=2"], check_validation_epochs),
    "prior_loss_weight": (["--class_prompt=a photo of a dog", "--prior_loss_weight=0.25"], check_prior_loss_weight),
    "output_dir": ([], "end_to_end"),
    "seed": (["--diffusers-defaults", "--max_train_steps=3"], check_seed),
    "resolution": (["--resolution=12", "--center_crop"], check_resolution),
    "center_crop": (["--resolution=12", "--center_crop"], check_center_crop),
    "train_text_encoder": (["--no-train_text_encoder"], lambda run: check_text_encoder_trains(run, False)),
    "train_batch_size": (["--train_batch_size=2", "--set", "max_train_steps=null", "--num_train_epochs=2"], check_epochs),
    "num_train_epochs": (["--train_batch_size=2", "--set", "max_train_steps=null", "--num_train_epochs=2"], check_epochs),
    "max_train_steps": (["--max_train_steps=5"], check_max_train_steps),
    "checkpointing_steps": (["--checkpointing_steps=2", "--checkpoints_total_limit=2"], check_checkpoint_flags),
    "checkpoints_total_limit": (["--checkpointing_steps=2", "--checkpoints_total_limit=2"], check_checkpoint_flags),
    "resume_from_checkpoint": ([], "resume"),
    "gradient_accumulation_steps": (["--max_train_steps=7", "--gradient_accumulation_steps=3", "--max_grad_norm=0.5",
                                     "--checkpointing_steps=2", "--checkpoints_total_limit=2"], check_lightning_trainer),
    "max_grad_norm": (["--max_train_steps=7", "--gradient_accumulation_steps=3", "--max_grad_norm=0.5",
                       "--checkpointing_steps=2", "--checkpoints_total_limit=2"], check_lightning_trainer),
    "gradient_checkpointing": (["--gradient_checkpointing"], check_gradient_checkpointing),
    **{name: (["--learning_rate=1e-3", "--scale_lr", "--gradient_accumulation_steps=2", "--train_batch_size=3",
               "--lr_scheduler=cosine_with_restarts", "--lr_warmup_steps=2", "--lr_num_cycles=2", "--max_train_steps=10",
               "--adam_beta1=0.8", "--adam_beta2=0.95", "--adam_weight_decay=0.02", "--adam_epsilon=1e-6"], check_optimizer)
       for name in ("learning_rate", "scale_lr", "lr_scheduler", "lr_warmup_steps", "lr_num_cycles", "adam_beta1",
                    "adam_beta2", "adam_weight_decay", "adam_epsilon")},
    "lr_power": (["--lr_scheduler=polynomial", "--lr_power=3.0", "--max_train_steps=10"], check_polynomial_power),
    "use_8bit_adam": ([], "8bit"),
    "dataloader_num_workers": (["--dataloader_num_workers=2"], check_workers),
    "push_to_hub": ([], "refused"),
    "hub_token": ([], "refused"),
    "hub_model_id": ([], "refused"),
    "validation_images": ([], "refused"),
    "logging_dir": (["--logging_dir=tb"], lambda run: check_logging(run, False)),
    "report_to": (["--logging_dir=tb", "--report_to=tensorboard"], lambda run: check_report_to(run)),
    "allow_tf32": (["--allow_tf32"], check_tf32),
    "mixed_precision": (["--mixed_precision=bf16"], check_mixed_precision),
    "local_rank": (["--local_rank=3"], check_local_rank),
    "enable_xformers_memory_efficient_attention": ([], "xformers"),
    "set_grads_to_none": (["--class_prompt=a photo of a dog", "--no-set_grads_to_none"],
                          lambda run: check_set_grads_to_none(run, False)),
    "offset_noise": (["--offset_noise"], check_offset_noise),
    "snr_gamma": (["--class_prompt=a photo of a dog", "--snr_gamma=5.0"], check_snr_gamma),
    "pre_compute_text_embeddings": (["--no-train_text_encoder", "--no-pre_compute_text_embeddings"],
                                    lambda run: check_precompute(run, False)),
    "tokenizer_max_length": (["--tokenizer_max_length=7"], check_tokenizer_max_length),
    "text_encoder_use_attention_mask": (["--text_encoder_use_attention_mask"], check_attention_mask),
    "skip_save_text_encoder": (["--skip_save_text_encoder"], check_skip_save_text_encoder),
    "class_labels_conditioning": (["--class_labels_conditioning=timesteps"], check_class_labels),
    "rank": (["train_dreambooth_lora.py", "--rank=2"], check_rank),
}
# flags whose behaviour another test of this module checks
ELSEWHERE = {"revision_variant": "test_revision_and_variant_reach_from_pretrained",
             "end_to_end": "test_readme_command_runs_end_to_end", "resume": "test_resume_from_a_diffusers_checkpoint_folder",
             "refused": "test_refused_flags_fail_before_anything_is_written",
             "8bit": "test_refused_flags_fail_before_anything_is_written",
             "xformers": "test_refused_flags_fail_before_anything_is_written"}


def test_every_flag_in_the_table_has_a_behaviour_test():
    assert set(CASES) == set(TABLE)
    for name, (_, check) in CASES.items():
        if isinstance(check, str):
            assert ELSEWHERE[check] in globals(), name
    refused = {flag for flag, _, _ in REFUSALS}
    assert set(REFUSED) <= refused
    assert HAS["bitsandbytes"] or "use_8bit_adam" in refused
    assert HAS["xformers"] or "enable_xformers_memory_efficient_attention" in refused


FIXTURE_ARGS = {"tmp_path", "monkeypatch", "recorded", "tiny"}


@pytest.mark.parametrize("name", sorted(k for k, (_, check) in CASES.items() if callable(check)))
def test_flag_behaviour(name, tiny, tmp_path, monkeypatch):
    import inspect

    extra, check = CASES[name]
    tokenizer = tmp_path / "tokenizer"
    if "{tokenizer}" in " ".join(extra):
        from vitdream.testing.sd import tiny_clip_tokenizer

        tiny_clip_tokenizer(max_length=9).save_pretrained(str(tokenizer))
    extra = [e.format(tmp=tmp_path, instance=tiny.instance, tokenizer=tokenizer) for e in extra]
    script = next((e for e in extra if e.endswith(".py")), "train_dreambooth.py")
    with warnings.catch_warnings(record=True) as recorded:
        warnings.simplefilter("always")
        run = created(tiny, tmp_path, *[e for e in extra if not e.endswith(".py")], script=script)
    fixtures = {"tmp_path": tmp_path, "monkeypatch": monkeypatch, "recorded": recorded, "tiny": tiny}
    wanted = [p for p in inspect.signature(check).parameters][1:]
    check(run, **{k: fixtures[k] for k in wanted})


def test_revision_and_variant_reach_from_pretrained(tiny, tmp_path, monkeypatch):
    seen = spy_from_pretrained(monkeypatch)
    run = created(tiny, tmp_path, "--revision=v1.0")
    run.load_components()
    assert seen["revision"] == "v1.0" and "variant" not in seen
    from diffusers import StableDiffusionPipeline

    fp16 = tmp_path / "fp16-base"
    StableDiffusionPipeline.from_pretrained(tiny.base).save_pretrained(str(fp16), variant="fp16")
    run = vd.dreambooth.from_command(command(tiny, tmp_path / "run2", "--variant=fp16")
                                     + ["--pretrained_model_name_or_path", str(fp16)])
    run.load_components()
    assert seen["variant"] == "fp16"
    assert list((fp16 / "unet").glob("*.fp16.safetensors"))


# -- a README command, end to end -------------------------------------------------------------------------------
README_PRIOR = r"""
accelerate launch train_dreambooth.py \
  --pretrained_model_name_or_path=$MODEL_NAME  \
  --instance_data_dir=$INSTANCE_DIR \
  --class_data_dir=$CLASS_DIR \
  --output_dir=$OUTPUT_DIR \
  --with_prior_preservation --prior_loss_weight=1.0 \
  --instance_prompt="a photo of sks dog" \
  --class_prompt="a photo of dog" \
  --resolution=512 \
  --train_batch_size=1 \
  --gradient_accumulation_steps=1 \
  --learning_rate=5e-6 \
  --lr_scheduler="constant" \
  --lr_warmup_steps=0 \
  --num_class_images=200 \
  --max_train_steps=800
"""  # diffusers examples/dreambooth/README.md, "Training with prior-preservation loss"
README_LORA = r"""
accelerate launch train_dreambooth_lora.py \
  --pretrained_model_name_or_path=$MODEL_NAME  \
  --instance_data_dir=$INSTANCE_DIR \
  --output_dir=$OUTPUT_DIR \
  --instance_prompt="a photo of sks dog" \
  --resolution=512 \
  --train_batch_size=1 \
  --gradient_accumulation_steps=1 \
  --checkpointing_steps=100 \
  --learning_rate=1e-4 \
  --report_to="wandb" \
  --lr_scheduler="constant" \
  --lr_warmup_steps=0 \
  --max_train_steps=500 \
  --validation_prompt="A photo of sks dog in a bucket" \
  --seed="0" \
  --push_to_hub
"""  # the same README, LoRA section
SHORTEN = ["--max_train_steps=2", "--resolution=16", "--num_class_images=2", "--sample_batch_size=2",
           "--set", "class_inference_steps=2"]


def readme_argv(text, env):
    """The README's command line as pasted after ``vitdream dreambooth`` (``accelerate launch`` included)."""
    import shlex

    for key, value in env.items():
        text = text.replace(f"${key}", value)
    return shlex.split(text.replace("\\\n", " "))


def test_readme_command_runs_end_to_end(tiny, tmp_path, capsys):
    from diffusers import StableDiffusionPipeline

    from vitdream.cli import main

    out = tmp_path / "out"
    env = {"MODEL_NAME": tiny.base, "INSTANCE_DIR": tiny.instance, "CLASS_DIR": str(tmp_path / "class"), "OUTPUT_DIR": str(out)}
    argv = readme_argv(README_PRIOR, env)
    parsed = parse_command(argv)
    assert parsed.trainer == "dreambooth" and parsed.options["num_class_images"] == 200
    fp16 = parse_command(["accelerate", "launch", "--mixed_precision", "fp16", *argv[2:]])  # README's 8 GB example
    assert fp16.options["mixed_precision"] == "fp16"
    with pytest.raises(OptionsError, match="accelerate launch --num_processes: not taken"):
        parse_command(["accelerate", "launch", "--num_processes=2", *argv[2:]])
    with pytest.raises(SystemExit) as exit:
        main(["dreambooth", *argv, *SHORTEN])
    assert exit.value.code == 0
    note = capsys.readouterr().err  # defaults left to vitdream are named, not silent
    assert "train_text_encoder=True (False)" in note and "--diffusers-defaults" in note
    assert "learning_rate" not in note.split("note:")[-1]  # given on the command line
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["with_prior_preservation"] and config["max_train_steps"] == 2 and config["lr_warmup_steps"] == 0
    assert len(list((tmp_path / "class").glob("class-*.png"))) == 2
    assert [p.name for p in (out / "checkpoints").glob("*.ckpt")] == ["checkpoint-2.ckpt"]
    pipe = StableDiffusionPipeline.from_pretrained(str(out / "model"))  # output_dir: the model is in OUTPUT_DIR/model
    assert pipe("a photo of sks dog", num_inference_steps=2, height=16, width=16).images[0].size == (16, 16)

    lora_out = tmp_path / "lora"
    lora = readme_argv(README_LORA, {**env, "OUTPUT_DIR": str(lora_out)})
    with pytest.raises(OptionsError, match="push_to_hub") as error:
        vd.dreambooth.from_command(lora)
    assert HAS["wandb"] or "report_to" in str(error.value)  # every refused flag is named at once
    assert not lora_out.exists()
    runnable = [a for a in lora if a not in ("--push_to_hub", "--report_to=wandb")]
    with pytest.warns(UserWarning, match=r"vitdream's default .*validation_epochs=None \(50\)") as noted:
        run = vd.dreambooth.from_command([*runnable, *SHORTEN])
    assert "output_dir" not in str(noted[0].message) and "seed" not in str(noted[0].message)  # those were given
    assert type(run).__name__ == "LoRADreamBoothTrainer" and run.config.seed == 0
    run.progress = False
    run.fit()
    assert run.trainer.global_step == 2
    assert (run.export(lora_out / "weights") / "pytorch_lora_weights.safetensors").is_file()


# -- resume from a checkpoint folder written the way diffusers' script writes it -----------------------------------
def save_as_diffusers_checkpoint(module, checkpoint_path, folder):
    """Write ``folder`` with accelerate's ``save_state`` and the hooks of diffusers' train_dreambooth[_lora].py,
    holding the state of a vitdream checkpoint (weights, AdamW state, LR schedule)."""
    from accelerate import Accelerator
    from diffusers import StableDiffusionPipeline

    state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    module._trainer = SimpleNamespace(world_size=1)
    module.load_state_dict(state["state_dict"], strict=False)
    setup = module.configure_optimizers()
    optimizer, scheduler = setup["optimizer"], setup["lr_scheduler"]["scheduler"]
    optimizer.load_state_dict(state["optimizer_states"][0])
    scheduler.load_state_dict(state["lr_schedulers"][0])
    accelerator = Accelerator(cpu=True)
    unet, text_encoder = module.unet, module.text_encoder

    def save_model_hook(models, weights, output_dir):  # as train_dreambooth.py
        for model in models:
            sub_dir = "unet" if isinstance(model, type(unet)) else "text_encoder"
            model.save_pretrained(str(Path(output_dir) / sub_dir))
            weights.pop()

    def save_lora_hook(models, weights, output_dir):  # as train_dreambooth_lora.py
        for _ in models:
            weights.pop()
        StableDiffusionPipeline.save_lora_weights(output_dir, **module.lora_state_dicts())

    lora = hasattr(module, "lora_state_dicts")
    accelerator.register_save_state_pre_hook(save_lora_hook if lora else save_model_hook)
    models = [unet, text_encoder] if module.config.train_text_encoder else [unet]
    prepared = accelerator.prepare(*models, optimizer, scheduler)
    accelerator.save_state(str(folder))
    del prepared


def test_resume_from_a_diffusers_checkpoint_folder(tiny, tmp_path):
    """A run resumed from the diffusers-format folder of its own step-2 state ends where the uninterrupted run ends."""
    options = dict(base=tiny.base, instance_images=tiny.instance, instance_prompt="a photo of sks dog", max_train_steps=4,
                   checkpointing_steps=2, learning_rate=0.05, adam_epsilon=1.0, lr_scheduler="linear", lr_warmup_steps=1,
                   report_to=["csv"], seed=5)
    reference = vd.dreambooth(**options, output_dir=str(tmp_path / "straight"))
    reference.progress = False
    reference.fit()
    step2 = reference.checkpoint_dir / "checkpoint-2.ckpt"
    assert step2.is_file()

    out = tmp_path / "resumed"
    folder = out / "checkpoint-2"
    save_as_diffusers_checkpoint(built(vd.dreambooth(**options, output_dir=str(tmp_path / "scratch"))), step2, folder)
    assert (folder / "unet").is_dir() and (folder / "text_encoder").is_dir() and (folder / "optimizer.bin").is_file()

    run = vd.dreambooth(**options, output_dir=str(out), resume_from_checkpoint="checkpoint-2")  # as diffusers: in output_dir
    run.progress = False
    run.fit()
    assert run.trainer.global_step == 4 and [e["step"] for e in run.history()] == [3, 4]
    got, want = run.module.state_dict(), reference.module.state_dict()
    worst = max((got[k] - want[k]).abs().max().item() for k in want if k.startswith(("unet.", "text_encoder.")))
    assert worst <= 1e-6, worst
    moved = max((want[k] - v).abs().max().item() for k, v in torch.load(step2, weights_only=True)["state_dict"].items())
    assert moved > 1e-3  # steps 3-4 really trained

    frozen = vd.dreambooth(**options, output_dir=str(out), train_text_encoder=False, resume_from_checkpoint=str(folder))
    with pytest.raises(VitdreamError, match="trained the text encoder; resume with train_text_encoder=True"):
        frozen.fit()
    lora = vd.dreambooth(**options, trainer="dreambooth-lora", output_dir=str(out), resume_from_checkpoint=str(folder))
    with pytest.raises(VitdreamError, match="full fine-tune checkpoint; resume it with the dreambooth trainer"):
        lora.fit()


def test_resume_from_a_diffusers_lora_checkpoint_folder(tiny, tmp_path):
    """The same for train_dreambooth_lora.py's folders (pytorch_lora_weights.safetensors, text-encoder layers too)."""
    options = dict(base=tiny.base, instance_images=tiny.instance, instance_prompt="a photo of sks dog", max_train_steps=4,
                   checkpointing_steps=2, learning_rate=0.05, adam_epsilon=1.0, report_to=["csv"], seed=5, rank=2,
                   train_text_encoder=True, trainer="dreambooth-lora")
    reference = vd.dreambooth(**options, output_dir=str(tmp_path / "straight"))
    reference.progress = False
    reference.fit()
    out = tmp_path / "resumed"
    folder = out / "checkpoint-2"
    save_as_diffusers_checkpoint(built(vd.dreambooth(**options, output_dir=str(tmp_path / "scratch"))),
                                 reference.checkpoint_dir / "checkpoint-2.ckpt", folder)
    assert (folder / "pytorch_lora_weights.safetensors").is_file() and not (folder / "unet").exists()

    run = vd.dreambooth(**options, output_dir=str(out), resume_from_checkpoint="latest")  # finds diffusers folders too
    run.progress = False
    run.fit()
    assert run.trainer.global_step == 4 and [e["step"] for e in run.history()] == [3, 4]
    keys = run.module.trainable_state_keys()
    assert any(k.startswith("text_encoder.") for k in keys)
    got, want = run.module.state_dict(), reference.module.state_dict()
    worst = max((got[k] - want[k]).abs().max().item() for k in keys)
    assert worst <= 1e-6, worst


def base_with_prediction_type(tiny, tmp_path, prediction_type):
    import shutil

    base = tmp_path / f"base-{prediction_type}"
    shutil.copytree(tiny.base, base)
    config_file = base / "scheduler" / "scheduler_config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), "prediction_type": prediction_type}))
    return base


def test_v_prediction_min_snr_loss_is_the_scripts(tiny, tmp_path):
    """Without prior preservation, the loss of a pasted --snr_gamma command on a v-prediction base is the one
    train_dreambooth.py computes: velocity target, mse per sample x min(snr, gamma) / (snr + 1), mean."""
    import torch.nn.functional as F
    from diffusers.training_utils import compute_snr

    base = base_with_prediction_type(tiny, tmp_path, "v_prediction")
    run = vd.dreambooth.from_command(command(tiny, tmp_path / "run", "--snr_gamma=5.0", "--offset_noise",
                                             "--no-train_text_encoder") + ["--pretrained_model_name_or_path", str(base)])
    module = built(run)
    batch = tiny_batch(n=2, prior=False)
    with torch.no_grad():
        losses = module.compute_losses(batch)
        noisy, timesteps, target = module.training_inputs(batch)  # the same draws; from here the script's steps
        encoder_hidden_states = module.text_encoder(module.prompt_ids[:1].repeat(2, 1))[0]
        model_pred = module.unet(noisy, timesteps, encoder_hidden_states).sample
        snr = compute_snr(module.noise_scheduler, timesteps)
        mse_loss_weights = torch.stack([snr, 5.0 * torch.ones_like(timesteps)], dim=1).min(dim=1)[0] / (snr + 1)
        loss = F.mse_loss(model_pred.float(), target.float(), reduction="none")
        loss = (loss.mean(dim=list(range(1, len(loss.shape)))) * mse_loss_weights).mean()
    assert module.noise_scheduler.config.prediction_type == "v_prediction"
    assert losses["loss"].item() == pytest.approx(loss.item(), rel=1e-5)
    assert "prior_loss" not in losses


def test_unknown_prediction_type_raises_before_anything_is_written(tiny, tmp_path):
    base = base_with_prediction_type(tiny, tmp_path, "sample")
    run = vd.dreambooth(base=str(base), instance_images=tiny.instance, output_dir=str(tmp_path / "out"))
    with pytest.raises(VitdreamError, match="prediction_type 'sample'.*epsilon or v_prediction"):
        run.fit()
    assert not (tmp_path / "out").exists()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
