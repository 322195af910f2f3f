"""The plugin platform: discovery, registration, failure isolation, CLI, magic, docs coverage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

import vitdream
from vitdream import hookimpl
from vitdream.base import Classifier, Evaluator, Options, Prediction, Sampler, Trainer, VectorIndex
from vitdream.errors import DuplicateIdError, OptionsError, UnknownIdError

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full_env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


# -- fake components, written the way a plugin author would ---------------------------------
class BrightnessOptions(Options):
    threshold: float = 0.5


class BrightnessClassifier(Classifier):
    """Says whether an image is bright or dark (mean luminance)."""

    id = "brightness"
    Options = BrightnessOptions

    @classmethod
    def accepts(cls, model):
        return model == "brightness"

    def classify(self, images, top_k=5):
        out = []
        for image in images:
            mean = float(np.asarray(vitdream.load_image(image), dtype=np.float32).mean() / 255.0)
            bright = mean >= self.options.threshold
            out.append([Prediction("bright" if bright else "dark", mean if bright else 1 - mean)][:top_k])
        return out


class EchoTrainer(Trainer):
    """Counts to max_steps."""

    id = "echo"

    class Options(Options):
        max_steps: int = 3

    def fit(self):
        return list(range(self.options.max_steps))


class ConstantSampler(Sampler):
    """Not a real sampler: returns its input config."""

    id = "constant"
    deterministic = False

    def make_scheduler(self, config):
        return dict(config)


class ListIndex(VectorIndex):
    """Linear scan over a Python list."""

    id = "list-index"

    def __init__(self, **options):
        super().__init__(**options)
        self.rows: list[tuple[int, np.ndarray]] = []

    def add(self, vectors, ids):
        self.rows += list(zip(ids, np.asarray(vectors, dtype=np.float32)))

    def search(self, queries, k):
        q = np.asarray(queries, dtype=np.float32)
        sims = np.array([[float(v @ qq) for _, v in self.rows] for qq in q])
        order = np.argsort(-sims, axis=1)[:, :k]
        ids = np.array([r[0] for r in self.rows])[order]
        return np.take_along_axis(sims, order, axis=1), ids


class RednessEvaluator(Evaluator):
    """Scores how red each image is (mean red minus mean green and blue, in [0, 1])."""

    id = "redness"
    metrics = ("redness",)

    def _score(self, images, prompts, references):
        arrays = [np.asarray(im, dtype=np.float64) / 255 for im in images]
        return {"redness": [max(0.0, a[..., 0].mean() - a[..., 1:].mean()) for a in arrays]}


class AuthorPlugin:
    """A plugin object implementing every registration hook."""

    @hookimpl
    def register_backends(self, register):
        register(BrightnessClassifier)

    @hookimpl
    def register_trainers(self, register):
        register(EchoTrainer)

    @hookimpl
    def register_samplers(self, register):
        register(ConstantSampler)

    @hookimpl
    def register_indexes(self, register):
        register(ListIndex)

    @hookimpl
    def register_evaluators(self, register):
        register(RednessEvaluator)

    @hookimpl
    def register_commands(self, cli):
        @cli.command(name="brightness")
        @click.argument("path")
        def brightness_command(path):
            """Print bright/dark for an image."""
            clf = BrightnessClassifier()
            click.echo(clf.classify([path])[0][0].label)


@pytest.fixture
def host(fresh_plugins):
    return fresh_plugins.get_host()


@pytest.fixture
def author_plugin(host):
    host.register(AuthorPlugin(), name="author-plugin")
    yield host
    host.unregister("author-plugin")


# -- each hook is exercised by a test named test_hook_<name> (enforced below) ------------------
def test_hook_register_backends(author_plugin, tmp_path):
    from PIL import Image

    from vitdream.components import create, resolve_backend

    entry = resolve_backend("classify", "brightness")
    assert entry.id == "brightness" and entry.plugin == "author-plugin"
    assert entry.meta["tasks"] == ["classify"]
    assert entry.description == "Says whether an image is bright or dark (mean luminance)."
    Image.new("RGB", (8, 8), (250, 250, 250)).save(tmp_path / "white.png")
    clf = create("backends", "brightness", threshold=0.9)
    assert clf.classify([tmp_path / "white.png", np.zeros((4, 4, 3), np.uint8)]) == [
        [Prediction("bright", pytest.approx(250 / 255))],
        [Prediction("dark", 1.0)],
    ]


def test_hook_register_trainers(author_plugin):
    from vitdream.components import create

    assert create("trainers", "echo", max_steps=4).fit() == [0, 1, 2, 3]


def test_hook_register_samplers(author_plugin):
    from vitdream.components import create, get_entry

    assert get_entry("samplers", "constant").meta["deterministic"] is False
    assert create("samplers", "constant").make_scheduler({"a": 1}) == {"a": 1}


def test_hook_register_indexes(author_plugin):
    from vitdream.components import create

    index = create("indexes", "list-index")
    index.add(np.eye(3), [10, 11, 12])
    scores, ids = index.search(np.array([[0.0, 1.0, 0.0]]), k=2)
    assert ids[0, 0] == 11 and scores[0, 0] == 1.0


def test_hook_register_evaluators(author_plugin):
    from vitdream.components import get_entry

    assert get_entry("evaluators", "redness").plugin == "author-plugin"
    scores = vitdream.load_evaluator("redness").score([np.full((4, 4, 3), (255, 0, 0), np.uint8), b"not an image",
                                                       np.zeros((4, 4, 3), np.uint8)])
    assert scores["redness"].tolist() == [1.0, 0.0] and scores.indices.tolist() == [0, 2]
    assert [f.index for f in scores.failures] == [1] and scores.summary == {"redness": 0.5}


def test_hook_register_commands(author_plugin, tmp_path):
    from PIL import Image

    from vitdream import cli as cli_module

    cli_module._commands_added = False
    Image.new("RGB", (8, 8), (0, 0, 0)).save(tmp_path / "black.png")
    result = CliRunner().invoke(cli_module.build_cli(), ["brightness", str(tmp_path / "black.png")])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "dark"
    cli_module._commands_added = False


# -- discovery and reporting ------------------------------------------------------------------
def test_builtins_cover_every_kind(host):
    registered = {kind: [] for kind in ("backends", "trainers", "samplers", "indexes", "evaluators")}
    for info in host.report():
        assert info.source == "built-in" and info.error is None, info
        for kind, ids in info.registered.items():
            registered[kind] += ids
    assert {"transformers-vit", "diffusers-sd"} <= set(registered["backends"])
    assert {"ddim", "euler", "euler-ancestral", "dpm-solver++"} <= set(registered["samplers"])
    assert {"faiss-flat", "faiss-hnsw", "faiss-ivf"} <= set(registered["indexes"])
    assert {"vit-embedding", "clip", "shapes-world"} <= set(registered["evaluators"])
    assert "dreambooth" in registered["trainers"]


def test_plugins_json_shape_via_cli():
    result = CliRunner().invoke(vitdream.cli.cli, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert isinstance(data, list) and data
    for item in data:
        assert {"name", "version", "source", "hooks", "registered", "error"} <= set(item)
        assert set(item["registered"]) == {"backends", "trainers", "samplers", "indexes", "evaluators"}


def test_vd_plugins_matches_cli(host):
    assert [p["name"] for p in vitdream.plugins()] == [i.name for i in host.report()]


def test_load_plugins_is_idempotent(host):
    before = len(host.registry.ids("indexes"))
    assert vitdream.load_plugins() is host
    assert vitdream.load_plugins() is host
    assert len(host.registry.ids("indexes")) == before


def test_import_vitdream_is_light():
    proc = run_python("""
        import sys, vitdream
        heavy = [m for m in ("torch", "transformers", "diffusers", "faiss", "pydantic", "PIL", "numpy")
                 if m in sys.modules]
        print(",".join(heavy))
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


# -- failure isolation ------------------------------------------------------------------------
def make_entry_point_plugin(site: Path, dist: str, module: str, body: str) -> None:
    """Install a plugin the way pip would (a .dist-info with entry_points.txt) into ``site``."""
    (site / f"{module}.py").write_text(textwrap.dedent(body))
    info = site / f"{dist}-0.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text(f"[vitdream]\n{module} = {module}\n")


def test_broken_entry_point_plugin_is_reported_and_skipped(tmp_path):
    make_entry_point_plugin(tmp_path, "broken-plugin", "broken_plugin", "raise RuntimeError('boom at import')\n")
    make_entry_point_plugin(tmp_path, "good-plugin", "good_plugin", """
        from vitdream import hookimpl

        @hookimpl
        def register_indexes(register):
            register("vitdream_numpy_index.index:NumpyExactIndex", id="good-index")
    """)
    env = {"PYTHONPATH": str(tmp_path), "VITDREAM_LOAD_PLUGINS": "broken_plugin,good_plugin"}
    proc = subprocess.run([sys.executable, "-m", "vitdream.cli", "plugins", "--json"],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    by_name = {p["name"]: p for p in json.loads(proc.stdout)}
    assert by_name["broken_plugin"]["error"] == "RuntimeError: boom at import"
    assert by_name["broken_plugin"]["source"] == "entry point"
    assert by_name["good_plugin"]["error"] is None
    assert by_name["good_plugin"]["version"] == "0.3"
    assert by_name["good_plugin"]["registered"]["indexes"] == ["good-index"]
    assert by_name["vitdream.default_plugins.faiss_index"]["error"] is None

    table = subprocess.run([sys.executable, "-m", "vitdream.cli", "plugins"],
                           env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    assert table.returncode == 0
    assert "broken_plugin" in table.stdout and "error: RuntimeError: boom at import" in table.stdout


def test_allow_list_limits_entry_point_plugins(tmp_path):
    make_entry_point_plugin(tmp_path, "good-plugin", "good_plugin", "x = 1\n")
    code = "import vitdream as vd; print(sorted(p['name'] for p in vd.plugins() if p['source'] != 'built-in'))"
    only_builtins = run_python(code, {"PYTHONPATH": str(tmp_path), "VITDREAM_LOAD_PLUGINS": ""})
    assert only_builtins.stdout.strip() == "[]", only_builtins.stderr
    allowed = run_python(code, {"PYTHONPATH": str(tmp_path), "VITDREAM_LOAD_PLUGINS": "good_plugin"})
    assert allowed.stdout.strip() == "['good_plugin']", allowed.stderr


def test_hook_that_raises_is_recorded(host):
    class Raising:
        @hookimpl
        def register_indexes(self, register):
            register(ListIndex, id="partial")
            raise ValueError("half way")

    info = host.register(Raising(), name="raising")
    assert info.error == "register_indexes: ValueError: half way"
    assert "traceback" not in info.error.lower()
    assert "ValueError: half way" in host.tracebacks["raising"]
    assert "faiss-flat" in host.registry.ids("indexes")


def test_misspelled_hook_is_caught_by_check_pending(host):
    class Misspelled:
        @hookimpl
        def register_indexs(self, register):
            register(ListIndex)

    info = host.register(Misspelled(), name="typo")
    assert "register_indexs" in info.error and "unknown hook" in info.error
    assert host.pm.get_plugin("typo") is None
    assert "list-index" not in host.registry.ids("indexes")


def test_duplicate_id_names_both_plugins(host):
    class Clash:
        @hookimpl
        def register_indexes(self, register):
            register(ListIndex, id="faiss-flat")

    info = host.register(Clash(), name="clash-plugin")
    assert "'vitdream.default_plugins.faiss_index'" in info.error and "'clash-plugin'" in info.error
    assert host.registry.get("indexes", "faiss-flat").plugin == "vitdream.default_plugins.faiss_index"
    with pytest.raises(DuplicateIdError, match="registered by plugin 'a' and again by plugin 'b'"):
        from vitdream.registry import Entry

        host.registry.add(Entry("indexes", "x", ListIndex, "a"))
        host.registry.add(Entry("indexes", "x", ListIndex, "b"))


def test_unknown_id_lists_known_ids(host):
    from vitdream.components import create

    with pytest.raises(UnknownIdError) as err:
        create("indexes", "faiss-hsnw")
    message = str(err.value)
    assert message.startswith("unknown index 'faiss-hsnw'; known: ")
    assert "faiss-flat" in message and "faiss-hnsw" in message


def test_options_are_validated_with_clear_errors(author_plugin):
    from vitdream.components import create

    with pytest.raises(OptionsError, match=r"brightness: unknown option 'treshold' \(known options: threshold\)"):
        create("backends", "brightness", treshold=0.2)
    with pytest.raises(OptionsError, match=r"echo: option 'max_steps'.*\(got 'many'\)"):
        create("trainers", "echo", max_steps="many")


def test_plugins_dir_file_plugins(tmp_path):
    (tmp_path / "my_sampler.py").write_text(textwrap.dedent("""
        from vitdream import hookimpl

        @hookimpl
        def register_samplers(register):
            register("diffusers:HeunDiscreteScheduler", id="raw-heun")
    """))
    proc = run_python("import vitdream as vd, json; print(json.dumps(vd.plugins()))",
                      {"VITDREAM_PLUGINS_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    by_name = {p["name"]: p for p in json.loads(proc.stdout)}
    assert by_name["my_sampler"]["source"] == "file"
    assert by_name["my_sampler"]["registered"]["samplers"] == ["raw-heun"]


def test_ipython_extension_and_magic(capsys):
    from IPython.testing.globalipapp import start_ipython

    ip = start_ipython()
    ip.run_line_magic("load_ext", "vitdream")
    ip.run_line_magic("vitdream", "plugins --json")
    data = json.loads(capsys.readouterr().out)
    assert "vitdream.default_plugins.vision" in {p["name"] for p in data}
    ip.run_line_magic("reload_ext", "vitdream")
    ip.run_line_magic("vitdream", "plugins")
    assert "transformers-vit" in capsys.readouterr().out
    ip.run_line_magic("vitdream", "no-such-command")
    assert "No such command" in capsys.readouterr().err


# -- documentation coverage (datasette-style) -------------------------------------------------
def hook_names() -> list[str]:
    from vitdream import hookspecs

    return sorted(n for n in dir(hookspecs) if hasattr(getattr(hookspecs, n), "vitdream_spec"))


def test_hookspecs_are_found():
    assert hook_names() == ["register_backends", "register_commands", "register_evaluators", "register_indexes",
                            "register_samplers", "register_trainers"]


@pytest.mark.parametrize("hook", hook_names())
def test_every_hook_is_documented_with_its_signature(hook):
    import inspect

    from vitdream import hookspecs

    docs = (ROOT / "docs" / "plugins.md").read_text()
    assert f"## {hook}(" in docs, f"docs/plugins.md has no section for {hook}"
    params = ", ".join(inspect.signature(getattr(hookspecs, hook)).parameters)
    assert f"## {hook}({params})" in docs


@pytest.mark.parametrize("hook", hook_names())
def test_every_hook_has_a_test(hook):
    tests = "".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    assert f"def test_hook_{hook}(" in tests
