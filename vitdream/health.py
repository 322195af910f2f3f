"""``vitdream doctor`` / ``%vitdream doctor`` / ``vd.doctor()``: will this environment run the course?

Each check returns :class:`Check` rows (``ok``, ``info``, ``warn`` or ``fail``); a ``fail`` means
something a notebook needs will not work, and makes the command exit with status 1. The checks:
Python, torch and the devices vitdream will use, library versions, kernel and front-end widget
versions, the embedded models (present, and loadable unless ``load=False``), extra model references
(a hub id must be cached when ``HF_HUB_OFFLINE=1``), the Hugging Face cache, plugins, disk and memory.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

STATUSES = ("ok", "info", "warn", "fail")
MIN_PYTHON = (3, 10)
MIN_FREE_DISK_GB, LOW_FREE_DISK_GB = 1.0, 5.0
MIN_FREE_RAM_GB, LOW_FREE_RAM_GB = 1.0, 2.0
# kernel-side ipywidgets major -> (jupyterlab_widgets major, @jupyter-widgets/jupyterlab-manager major)
WIDGET_FRONTENDS = {8: (3, 5), 7: (1, 3)}
MANAGER = "@jupyter-widgets/jupyterlab-manager"


@dataclass
class Check:
    """One line of the report."""

    name: str
    status: str
    detail: str

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"check {self.name!r}: status {self.status!r} is not one of {STATUSES}")


@dataclass
class DoctorReport:
    """Every check, a one-line ``verdict`` and the ``exit_code`` (1 when something will fail)."""

    checks: list[Check]

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if c.status == "warn"]

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    @property
    def verdict(self) -> str:
        if self.failures:
            names = ", ".join(c.name for c in self.failures)
            return f"NOT READY: {len(self.failures)} check(s) will fail ({names})"
        if self.warnings:
            return f"READY with {len(self.warnings)} warning(s) ({', '.join(c.name for c in self.warnings)})"
        return f"READY: all {len(self.checks)} checks passed"

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "ok": self.ok, "checks": [asdict(c) for c in self.checks]}

    def __str__(self) -> str:
        width = max((len(c.name) for c in self.checks), default=0)
        lines = [f"{c.status.upper():4}  {c.name:<{width}}  {c.detail}" for c in self.checks]
        return "\n".join(lines + ["", self.verdict])

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


# ------------------------------------------------------------------------------------ helpers
def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _major(version: str | None) -> int | None:
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        return None


def _guarded(name: str, check: Callable[[], Iterable[Check]]) -> list[Check]:
    """A check that crashes is itself a failure, never a crash of the doctor."""
    try:
        return list(check())
    except Exception as exc:  # noqa: BLE001 -- reported, not raised
        return [Check(name, "fail", f"the check itself failed: {type(exc).__name__}: {exc}")]


def _gb(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.1f} GB"


# ------------------------------------------------------------------------------------- checks
def check_python() -> list[Check]:
    v = sys.version_info
    status = "ok" if (v.major, v.minor) >= MIN_PYTHON else "fail"
    need = "" if status == "ok" else f" (vitdream needs {'.'.join(map(str, MIN_PYTHON))}+)"
    return [Check("python", status, f"{sys.version.split()[0]} at {sys.executable}{need}")]


def check_torch() -> list[Check]:
    import torch

    from vitdream.loading import pick_device

    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    gpus = f"CUDA {torch.version.cuda}: {torch.cuda.get_device_name(0)}" if cuda else "no CUDA"
    return [
        Check("torch", "ok", f"{torch.__version__}; {gpus}; MPS {'available' if mps else 'not available'}; "
                             f"{torch.get_num_threads()} CPU threads"),
        Check("device", "ok" if cuda or mps else "info",
              f"ViTs run on {pick_device().type}, diffusion on {pick_device().type}"  # one policy: vitdream.loading
              + ("" if cuda or mps else " (CPU only: the embedded models are sized for it; hub-size SD is slow)")),
    ]


def check_libraries() -> list[Check]:
    needed = ("transformers", "diffusers", "ipywidgets", "safetensors", "pytorch-lightning", "faiss-cpu")
    optional = ("jupyterlab", "notebook", "ipykernel", "jupyterlab_widgets", "widgetsnbextension")
    found = {d: _version(d) for d in needed + optional}
    missing = [d for d in needed if found[d] is None]
    rows = [Check("libraries", "fail" if missing else "ok",
                  ", ".join(f"{d} {found[d] or 'MISSING'}" for d in needed))]
    front = ", ".join(f"{d} {found[d] or '-'}" for d in optional)
    has_frontend = found["jupyterlab"] or found["notebook"]
    rows.append(Check("jupyter", "ok" if has_frontend else "info",
                      front + ("" if has_frontend else " (no front end here: fine if Jupyter runs from another environment)")))
    return rows


def frontend_manager(paths: Sequence[str] | None = None) -> tuple[str | None, Path | None]:
    """Version and folder of the widget manager JupyterLab / Notebook 7 serve (the first on the path wins)."""
    if paths is None:
        from jupyter_core.paths import jupyter_path

        paths = jupyter_path("labextensions")
    for root in paths:
        package = Path(root) / MANAGER / "package.json"
        if package.is_file():
            return json.loads(package.read_text()).get("version"), package.parent
    return None, None


def check_widgets(paths: Sequence[str] | None = None) -> list[Check]:
    """Kernel ipywidgets against the front-end widget manager (ipywidgets #3577: out of step = no widgets)."""
    kernel = _version("ipywidgets")
    if kernel is None:
        return [Check("widgets", "fail", "ipywidgets is not installed in this kernel's environment")]
    lab_widgets = _version("jupyterlab_widgets")
    manager, folder = frontend_manager(paths)
    want = WIDGET_FRONTENDS.get(_major(kernel))
    if want is None:
        return [Check("widgets", "warn", f"ipywidgets {kernel}: a version vitdream was not tested with (8.x is)")]
    if manager is None:
        return [Check("widgets", "warn", f"ipywidgets {kernel} in the kernel; no {MANAGER} front end found in this "
                                         f"environment (fine if Jupyter runs from another environment with "
                                         f"jupyterlab_widgets {want[0]}.x)")]
    problems = []
    if _major(manager) != want[1]:
        problems.append(f"front-end widget manager {manager} ({folder}) speaks another protocol than "
                        f"ipywidgets {kernel} (needs {MANAGER} {want[1]}.x, i.e. jupyterlab_widgets {want[0]}.x)")
    if lab_widgets is not None and _major(lab_widgets) != want[0]:
        problems.append(f"jupyterlab_widgets {lab_widgets} does not match ipywidgets {kernel} (needs {want[0]}.x)")
    if problems:
        return [Check("widgets", "fail", "; ".join(problems) + " -> widgets will not display; "
                                         "`pip install -U ipywidgets jupyterlab_widgets` and restart Jupyter")]
    return [Check("widgets", "ok", f"kernel ipywidgets {kernel} matches front end {MANAGER} {manager}"
                                   + (f" (jupyterlab_widgets {lab_widgets})" if lab_widgets else ""))]


def check_embedded_models(load: bool = True) -> list[Check]:
    from PIL import Image

    from vitdream.assets import mini_sd_path, mini_vit_path

    rows = []
    for name, locate, use in (
        ("mini ViT", mini_vit_path, lambda: _classify_once(Image.new("RGB", (32, 32), (200, 30, 30)))),
        ("mini SD", mini_sd_path, _generate_once),
    ):
        try:
            folder = locate()
            if not load:
                rows.append(Check(name, "ok", f"present at {folder} (not loaded: --no-load)"))
                continue
            start = time.perf_counter()
            detail = use()
            rows.append(Check(name, "ok", f"loads and runs ({detail}, {time.perf_counter() - start:.1f} s)"))
        except Exception as exc:  # noqa: BLE001 -- the reason is the report
            rows.append(Check(name, "fail", f"{type(exc).__name__}: {exc}"))
    return rows


def _classify_once(image: Any) -> str:
    from vitdream.vision import load_classifier

    top = load_classifier().classify(image, top_k=1)[0]
    return f"a red test image -> {top.label} {top.score:.2f}"


def _generate_once() -> str:
    from vitdream.generation import load_generator

    image = load_generator().generate("a red circle", steps=1, seed=0)[0]
    return f"1 step -> {image.width}x{image.height} image"


def _offline() -> bool:
    from vitdream.loading import offline

    return offline()


def check_hf_cache() -> list[Check]:
    from huggingface_hub import constants

    cache = Path(constants.HF_HUB_CACHE)
    existing = next((p for p in [cache, *cache.parents] if p.exists()), None)
    writable = existing is not None and os.access(existing, os.W_OK)
    mode = "offline (HF_HUB_OFFLINE=1: hub ids load from this cache only)" if _offline() else "online (hub ids download on first use)"
    status = "ok" if writable or _offline() else "warn"
    note = "" if writable else "; not writable: downloads will fail"
    return [Check("hf cache", status, f"{cache}{'' if cache.exists() else ' (not created yet)'}; {mode}{note}")]


def check_model_ref(ref: str) -> list[Check]:
    """A model the course names: a local directory, or a hub id (cached, or downloadable)."""
    from huggingface_hub import try_to_load_from_cache

    name = f"model {ref}"
    path = Path(ref).expanduser()
    if path.exists():
        has_config = (path / "config.json").is_file() or (path / "model_index.json").is_file()
        return [Check(name, "ok" if has_config else "fail",
                      f"local directory {path}" + ("" if has_config else ": no config.json or model_index.json in it"))]
    if ref.startswith((".", "/", "~")) or ref.count("/") > 1:
        return [Check(name, "fail", f"{ref}: no such directory")]
    cached = [f for f in ("config.json", "model_index.json") if isinstance(try_to_load_from_cache(ref, f), str)]
    if cached:
        return [Check(name, "ok", f"in the Hugging Face cache ({cached[0]} found)")]
    if _offline():
        return [Check(name, "fail", "not in the local Hugging Face cache and HF_HUB_OFFLINE=1: loading it will fail "
                                    "(download it once online, or pass a local directory)")]
    return [Check(name, "warn", "not cached yet: it downloads on first use (needs the network in class)")]


def check_plugins() -> list[Check]:
    from vitdream.plugins import get_host

    rows = []
    for info in get_host().report():
        count = sum(len(ids) for ids in info.registered.values())
        if info.error:
            rows.append(Check(f"plugin {info.name}", "fail", f"({info.source}) {info.error}"))
        else:
            rows.append(Check(f"plugin {info.name}", "ok", f"{info.source} {info.version or ''}, {count} component(s)".replace(" ,", ",")))
    return rows


def check_resources(folders: Sequence[Path] | None = None) -> list[Check]:
    from huggingface_hub import constants

    rows = []
    for label, folder in (("disk (here)", Path.cwd()), ("disk (hf cache)", Path(constants.HF_HUB_CACHE))) if folders is None else (
            (f"disk ({f})", Path(f)) for f in folders):
        existing = next(p for p in [folder, *folder.parents] if p.exists())
        free = shutil.disk_usage(existing).free
        rows.append(Check(label, _level(free / 1e9, MIN_FREE_DISK_GB, LOW_FREE_DISK_GB), f"{_gb(free)} free at {existing}"))
    available, total = _memory()
    if available is None:
        rows.append(Check("memory", "info", "could not read the free memory on this system"))
    else:
        rows.append(Check("memory", _level(available / 1e9, MIN_FREE_RAM_GB, LOW_FREE_RAM_GB),
                          f"{_gb(available)} available of {_gb(total)}"))
    return rows


def _level(value: float, minimum: float, low: float) -> str:
    return "fail" if value < minimum else "warn" if value < low else "ok"


def _memory() -> tuple[float | None, float | None]:
    try:
        import psutil

        vm = psutil.virtual_memory()
        return float(vm.available), float(vm.total)
    except ImportError:
        pass
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        kib = lambda key: float(fields[key].split()[0]) * 1024  # noqa: E731
        return kib("MemAvailable"), kib("MemTotal")
    except (OSError, KeyError, ValueError):
        return None, None


def doctor(models: Sequence[str] = (), load: bool = True) -> DoctorReport:
    """Run every check; ``models``: extra model references (hub ids or folders) the course will load;
    ``load=False`` skips loading the embedded models (faster)."""
    checks: list[Check] = []
    checks += _guarded("python", check_python)
    checks += _guarded("torch", check_torch)
    checks += _guarded("libraries", check_libraries)
    checks += _guarded("widgets", check_widgets)
    checks += _guarded("embedded models", lambda: check_embedded_models(load))
    checks += _guarded("hf cache", check_hf_cache)
    for ref in models:
        checks += _guarded(f"model {ref}", lambda ref=ref: check_model_ref(ref))
    checks += _guarded("plugins", check_plugins)
    checks += _guarded("resources", check_resources)
    return DoctorReport(checks)
