"""The one way files are written (vitdream.atomic) and the one loading policy (vitdream.loading)."""

from __future__ import annotations

import pytest

import vitdream as vd
from vitdream.atomic import atomic_dir, atomic_open, atomic_path, atomic_write_bytes, atomic_write_text
from vitdream.errors import ModelLoadError
from vitdream.loading import cache_dir, is_hub_id, offline, pick_device, pick_dtype


def test_atomic_writes_replace_whole_files_or_nothing(tmp_path):
    target = tmp_path / "sub" / "settings.json"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_open(target, "w") as fh:
        fh.write("half of the new")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old" and sorted(p.name for p in target.parent.iterdir()) == ["settings.json"]
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and oct(target.stat().st_mode & 0o777) == oct(0o644)
    with atomic_path(tmp_path / "model.onnx", suffix=".onnx") as tmp:
        assert tmp.suffix == ".onnx" and tmp.parent == tmp_path  # libraries that look at the name see .onnx
        tmp.write_bytes(b"graph")
    assert (tmp_path / "model.onnx").read_bytes() == b"graph"


def test_atomic_dir_swaps_a_folder_in_and_keeps_the_old_one_on_failure(tmp_path):
    def write(files):
        def fill(folder):
            for name, text in files.items():
                (folder / name).write_text(text)
        return fill

    out = atomic_dir(tmp_path / "model", write({"a.txt": "1"}))
    assert out == (tmp_path / "model").resolve() and (out / "a.txt").read_text() == "1"
    atomic_dir(tmp_path / "model", write({"b.txt": "2"}))
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]  # replaced, not merged

    def broken(folder):
        (folder / "c.txt").write_text("3")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_dir(tmp_path / "model", broken)
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"] and sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_loading_policy(monkeypatch, tmp_path):
    import torch

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    assert not offline()
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    assert offline()
    monkeypatch.delenv("VITDREAM_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir("onnx") == tmp_path / "xdg" / "vitdream" / "onnx"
    monkeypatch.setenv("VITDREAM_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    assert is_hub_id("google/vit-base-patch16-224") and is_hub_id("gpt2")
    assert not is_hub_id("./local") and not is_hub_id("a/b/c") and not is_hub_id("~/models/x")
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else pick_device(None).type)
    assert pick_dtype(None, "cpu") == torch.float32 and pick_dtype("torch.float16", "cpu") == torch.float16
    with pytest.raises(ModelLoadError, match="dtype 'float13'"):
        pick_dtype("float13", "cpu")


@pytest.mark.parametrize("load", ["load_classifier", "load_generator"])
def test_vision_and_generation_follow_the_same_offline_rule(load, monkeypatch):
    """TRANSFORMERS_OFFLINE alone makes both loaders refuse an uncached hub id at once (generation ignored it)."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="not in the local Hugging Face cache, and TRANSFORMERS_OFFLINE=1 forbids"):
        getattr(vd, load)("nobody/not-cached-anywhere")
