"""``vitdream doctor``: on this machine, and on broken set-ups made here (plugin, hub id, widgets, models)."""

from __future__ import annotations

import importlib.metadata
import json

import pytest
from click.testing import CliRunner

from vitdream import health
from vitdream.cli import build_cli


def _doctor(*args: str):
    result = CliRunner().invoke(build_cli(), ["doctor", "--json", *args])
    return result.exit_code, json.loads(result.output[result.output.index("{"):])


def _by_name(report: dict) -> dict[str, dict]:
    return {c["name"]: c for c in report["checks"]}


@pytest.fixture(scope="module")
def machine_report():
    return _doctor()


def test_doctor_on_this_machine(machine_report):
    code, report = machine_report
    checks = _by_name(report)
    for name in ("python", "torch", "device", "libraries", "jupyter", "widgets", "mini ViT", "mini SD", "hf cache",
                 "disk (here)", "disk (hf cache)", "memory", "plugin vitdream.default_plugins.vision"):
        assert name in checks, f"{name} missing from {sorted(checks)}"
    # the versions reported are the installed ones
    for dist in ("transformers", "diffusers", "ipywidgets"):
        assert f"{dist} {importlib.metadata.version(dist)}" in checks["libraries"]["detail"]
    assert f"jupyterlab_widgets {importlib.metadata.version('jupyterlab_widgets')}" in checks["jupyter"]["detail"]
    # this environment is the one `make test` installs: widgets match and both embedded models run
    assert checks["widgets"]["status"] == "ok", checks["widgets"]
    assert checks["mini ViT"]["status"] == checks["mini SD"]["status"] == "ok"
    assert "loads and runs" in checks["mini SD"]["detail"]
    assert "offline" in checks["hf cache"]["detail"]  # tests set HF_HUB_OFFLINE=1
    failures = [c for c in report["checks"] if c["status"] == "fail"]
    assert code == (1 if failures else 0) and report["ok"] == (not failures)
    assert report["verdict"].startswith("NOT READY" if failures else "READY")


def test_a_failing_plugin_fails_the_doctor(tmp_path, monkeypatch, fresh_plugins):
    (tmp_path / "broken_course_plugin.py").write_text("raise ImportError('needs the missing package frobnicate')\n")
    monkeypatch.setenv("VITDREAM_PLUGINS_DIR", str(tmp_path))
    code, report = _doctor("--no-load")
    check = _by_name(report)["plugin broken_course_plugin"]
    assert check["status"] == "fail" and "ImportError: needs the missing package frobnicate" in check["detail"]
    assert code == 1 and "plugin broken_course_plugin" in report["verdict"] and report["verdict"].startswith("NOT READY")


def test_an_uncached_hub_id_offline_fails_and_a_cached_one_passes(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshot = tmp_path / "models--course--cached-vit" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "models--course--cached-vit" / "refs").mkdir()
    (tmp_path / "models--course--cached-vit" / "refs" / "main").write_text("a" * 40)

    code, report = _doctor("--no-load", "--model", "nobody/not-downloaded", "--model", "course/cached-vit")
    checks = _by_name(report)
    missing, cached = checks["model nobody/not-downloaded"], checks["model course/cached-vit"]
    assert missing["status"] == "fail" and "HF_HUB_OFFLINE=1" in missing["detail"]
    assert cached["status"] == "ok" and "config.json" in cached["detail"]
    assert code == 1 and "model nobody/not-downloaded" in report["verdict"]
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # online, the same id only warns: it will download
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")  # (either variable puts vitdream offline: vitdream.loading)
    assert health.check_model_ref("nobody/not-downloaded")[0].status == "warn"


def test_front_end_widget_manager_out_of_step_fails(tmp_path):
    manager = tmp_path / "labextensions" / health.MANAGER
    manager.mkdir(parents=True)
    (manager / "package.json").write_text(json.dumps({"name": health.MANAGER, "version": "3.1.0"}))  # ipywidgets 7's
    (check,) = health.check_widgets(paths=[str(tmp_path / "labextensions")])
    assert check.status == "fail" and "3.1.0" in check.detail and "will not display" in check.detail
    (manager / "package.json").write_text(json.dumps({"name": health.MANAGER, "version": "5.0.2"}))
    assert health.check_widgets(paths=[str(tmp_path / "labextensions")])[0].status == "ok"
    (check,) = health.check_widgets(paths=[str(tmp_path / "nothing-here")])
    assert check.status == "warn" and "no @jupyter-widgets/jupyterlab-manager" in check.detail


def test_missing_embedded_model_and_full_disk_fail(tmp_path, monkeypatch):
    import vitdream.assets

    monkeypatch.setattr(vitdream.assets, "MINI_VIT_DIR", tmp_path / "gone")
    vit, sd = health.check_embedded_models(load=False)
    assert vit.status == "fail" and "mini ViT is missing" in vit.detail and sd.status == "ok"
    monkeypatch.setattr(health, "MIN_FREE_DISK_GB", 1e9)  # no disk has a billion GB free
    (disk, memory) = health.check_resources(folders=[tmp_path])
    assert disk.status == "fail" and str(tmp_path) in disk.detail and memory.status in ("ok", "warn", "fail")


def test_a_crashing_check_is_a_failure_not_a_crash():
    def boom():
        raise RuntimeError("no /proc here")

    (check,) = health._guarded("memory", boom)
    assert check.status == "fail" and "RuntimeError: no /proc here" in check.detail


def test_vd_doctor_and_the_magic(capsys):
    import vitdream as vd
    from vitdream.magic import vitdream_magic

    report = vd.doctor(load=False)
    assert isinstance(report, health.DoctorReport) and str(report).endswith(report.verdict)
    assert report.exit_code == (1 if report.failures else 0)
    vitdream_magic("doctor --no-load")
    out = capsys.readouterr().out
    assert "widgets" in out and out.strip().splitlines()[-1] == report.verdict


def test_a_cuda_machine_reports_its_gpu_and_device(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Fake GPU 80GB")
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    torch_row, device = health.check_torch()
    assert "CUDA 12.4: Fake GPU 80GB" in torch_row.detail
    assert device.status == "ok" and device.detail == "ViTs run on cuda, diffusion on cuda"
