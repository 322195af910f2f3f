"""Loading pipelines (directories, pickle opt-in, offline hub ids, LoRA on a base) and the CLI."""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from vitdream.errors import ModelLoadError
from vitdream.generation import load_generator
from vitdream.generation.loading import load_pipeline
from vitdream.generation.pngmeta import read_settings
from vitdream.testing.sd import make_tiny_sd, tiny_sd_pipeline

SIZES = dict(unet_channels=(16, 32), vae_channels=(16, 32), sample_size=8)


@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the shared test machine is oversubscribed
    yield make_tiny_sd(tmp_path_factory.mktemp("sd") / "tiny-sd", seed=3, **SIZES)
    torch.set_num_threads(threads)


def pixels(image):
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_a_pipeline_directory_loads_safely_and_generates_like_the_in_memory_model(sd_dir):
    gen = load_generator(sd_dir)
    assert gen.model_name == str(sd_dir.resolve())
    assert gen.pipe.safety_checker is None and gen.pipe.unet.dtype == torch.float32
    from_disk = gen.generate("a photo of sks dog", steps=2, seed=0)[0]
    in_memory = load_generator(tiny_sd_pipeline(seed=3, **SIZES)).generate("a photo of sks dog", steps=2, seed=0)[0]
    assert np.array_equal(pixels(from_disk), pixels(in_memory))
    assert gen.pipe.tokenizer.tokenize("a photo of sks dog") == ["a</w>", "photo</w>", "of</w>", "sks</w>", "dog</w>"]


def test_pickle_weights_need_explicit_opt_in(sd_dir, tmp_path):
    pickled = shutil.copytree(sd_dir, tmp_path / "pickled")
    unet = load_pipeline(sd_dir).unet
    for f in (pickled / "unet").glob("*.safetensors"):
        f.unlink()
    unet.save_pretrained(pickled / "unet", safe_serialization=False)
    with pytest.raises(ModelLoadError, match=r"unet: weights are only in pickle format .* allow_pickle=True"):
        load_pipeline(pickled)
    assert load_pipeline(pickled, allow_pickle=True).unet.config.block_out_channels == [16, 32]


def test_bad_references_are_clear_errors(sd_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(ModelLoadError, match="not in the local Hugging Face cache, and HF_HUB_OFFLINE=1"):
        load_pipeline("nobody-vitdream/not-a-cached-model")
    assert time.perf_counter() - start < 10  # no network wait
    with pytest.raises(ModelLoadError, match="no such directory"):
        load_pipeline(tmp_path / "missing")
    with pytest.raises(ModelLoadError, match="model_index.json is missing"):
        load_pipeline(tmp_path)
    (tmp_path / "weights.safetensors").write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="a file, not a diffusers pipeline directory"):
        load_pipeline(tmp_path / "weights.safetensors")
    with pytest.raises(ModelLoadError, match="dtype 'float13'"):
        load_pipeline(sd_dir, dtype="float13")


def test_lora_weights_on_top_of_a_base(sd_dir, tmp_path):
    from vitdream.testing.sd import make_tiny_lora

    lora_dir = tmp_path / "lora"
    make_tiny_lora(sd_dir, lora_dir)
    base = load_generator(sd_dir).generate("a dog", steps=2, seed=0)[0]
    gen = load_generator(sd_dir, lora=str(lora_dir))
    tuned = gen.generate("a dog", steps=2, seed=0)[0]
    assert not np.array_equal(pixels(base), pixels(tuned))
    lora_file = str((lora_dir / "pytorch_lora_weights.safetensors").resolve())
    assert read_settings(tuned)["loras"] == [[lora_file, 1.0]]
    assert np.array_equal(pixels(gen.reproduce(tuned)), pixels(tuned))
    with pytest.raises(ModelLoadError, match="load a base model and pass lora="):
        load_generator(lora_dir)


def test_cli_generate_writes_a_png_with_settings_and_rejects_bad_arguments(sd_dir, tmp_path):
    from vitdream.cli import build_cli

    runner = CliRunner()
    out = tmp_path / "dog.png"
    result = runner.invoke(build_cli(), ["generate", "a photo of sks dog", "--model", str(sd_dir), "--steps", "2",
                                         "--seed", "4", "--guidance-scale", "3", "--sampler", "euler", "--out", str(out)])
    assert result.exit_code == 0, result.output
    settings = read_settings(out)
    assert (settings["seed"], settings["steps"], settings["guidance_scale"], settings["sampler"]) == (4, 2, 3.0, "euler")
    with Image.open(out) as png:
        assert png.size == (16, 16)
        made = pixels(png)
    again = runner.invoke(build_cli(), ["reproduce", str(out), "--out", str(tmp_path / "again.png")])
    assert again.exit_code == 0, again.output
    with Image.open(tmp_path / "again.png") as png:
        assert np.array_equal(pixels(png), made)
    for args, message in ((["--steps", "0"], "'steps'"), (["--sampler", "nope"], "unknown sampler 'nope'"),
                          (["--guidance-scale", "-2"], "'guidance_scale'"), (["--height", "20"], "'height'")):
        bad = runner.invoke(build_cli(), ["generate", "a dog", "--model", str(tmp_path / "never-loaded"),
                                          *args, "--out", str(tmp_path / "x.png")])
        assert bad.exit_code != 0 and message in bad.output, bad.output
    listing = runner.invoke(build_cli(), ["samplers", "--json"])
    rows = {r["id"]: r for r in json.loads(listing.output)}
    assert rows["euler-ancestral"]["stochastic"] and rows["ddim"]["deterministic"]
