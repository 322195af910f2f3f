"""Browser-test fixtures: a real Jupyter server and headless Chromium driven by Playwright, in
JupyterLab 4 and Notebook 7, light and dark.

What JupyterLab's galata UI tests do, in Python:

* ``jupyterlab`` (session): ``python -m jupyterlab`` from this venv on a free loopback port, a random
  token, a temporary root directory (the notebooks of ``tests/browser/notebooks`` are copied there),
  isolated settings/workspaces (no news pop-ups, no restored tabs) and ``expose_app_in_browser`` so
  tests can call JupyterLab commands.  At the end the server and every process it started (kernels
  run in their own sessions, so they are tracked and killed explicitly) are stopped.
* ``browser`` (session): Debian's ``/usr/bin/chromium`` launched by Playwright (never Playwright's own
  browser download).  ``VITDREAM_HEADED=1`` shows the window (needs a display);
  ``VITDREAM_SLOWMO=<ms>`` slows every action down so a person can follow.
* ``lab`` (function): a page with a ``LabPage`` helper: open a notebook, run all cells, wait
  for the kernel to be idle, find widgets; it is parametrized over front ends and themes (``UIS``:
  ``lab``, ``lab-dark``, ``nb7``, ``nb7-dark``) by the ``ui`` marker of a test (default ``lab``), or
  over all of them with ``VITDREAM_BROWSER_ALL=1``. One server serves both front ends (Notebook 7 is
  a server extension next to JupyterLab); each front end has its own browser context; it records console errors, "Error displaying widget" and
  every kernel ``error`` message (including those raised in widget callbacks and background threads,
  which never show in a cell) and fails the test on any of them.  A PNG screenshot of the final state
  is saved under ``test-artifacts/browser/<test name>.png`` whether the test passes or fails.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"
ARTIFACTS = REPO / "test-artifacts" / "browser"
CHROMIUM = os.environ.get("VITDREAM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

# Console noise of JupyterLab itself on an offline machine, never raised by a widget.
BENIGN_CONSOLE = [
    re.compile(p)
    for p in (
        r"Failed to load resource: the server responded with a status of 404",  # optional lab assets
        r"favicon",
        r"net::ERR_INTERNET_DISCONNECTED|net::ERR_NAME_NOT_RESOLVED|net::ERR_CONNECTION_REFUSED",
        # Notebook 7 asks its own static folder for a theme font that lives elsewhere ("not in root static
        # directory", 403): text falls back to the next font of the stack
        r"/static/notebook/[0-9a-f]+\.woff2?$",
    )
]
# Notebook 7.6's own start-up error, on every page (/tree too) of a plain `jupyter notebook` here: its
# shortcuts plugin reads `plugins[id].schema` of a settings plugin it has not loaded. Not a widget's.
BENIGN_NOTEBOOK7_PAGEERRORS = ("Cannot read properties of undefined (reading 'schema')",)
WIDGET_ERROR_TEXT = ("Error displaying widget", "Failed to create view for", "Failed to render")
# test id -> (front end, theme); "lab" is JupyterLab 4, "notebook" is Notebook 7
UIS = {
    "lab": ("lab", "light"),
    "lab-dark": ("lab", "dark"),
    "nb7": ("notebook", "light"),
    "nb7-dark": ("notebook", "dark"),
}
THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}


def pytest_configure(config):
    config.addinivalue_line("markers", "ui(*ids): front ends and themes a browser test runs in (keys of UIS; default lab)")


def pytest_generate_tests(metafunc):
    if "lab" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("ui")
    ids = list(marker.args) if marker else ["lab"]
    if os.environ.get("VITDREAM_BROWSER_ALL", "") not in ("", "0"):
        ids = list(UIS)
    unknown = [i for i in ids if i not in UIS]
    if unknown:
        raise ValueError(f"{metafunc.definition.nodeid}: unknown ui {unknown}; known: {sorted(UIS)}")
    metafunc.parametrize("ui", ids, indirect=True)


# ---------------------------------------------------------------------------------------- server
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(pid: int) -> list:
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


class LabServer:
    """A running ``jupyter lab``: ``url(path)`` gives an authenticated address."""

    def __init__(self, root: Path, tmp: Path):
        self.root = root
        self.port = _free_port()
        self.token = secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / "jupyterlab.log"
        settings = tmp / "user-settings"
        notif = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
        notif.parent.mkdir(parents=True)
        notif.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        env = dict(os.environ)
        env.update(
            JUPYTER_CONFIG_DIR=str(tmp / "config"),  # nothing from the user's ~/.jupyter
            JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
            JUPYTERLAB_SETTINGS_DIR=str(settings),
            JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"),
            PYTHONUNBUFFERED="1",
            MPLBACKEND="module://matplotlib_inline.backend_inline",
        )
        env.pop("JPY_SESSION_NAME", None)
        # Kernels inherit this. On a shared, loaded 2-core machine torch's OpenMP threads spin against
        # each other: 8 tiny-SD steps took 40-60 s with 2 threads and ~1 s with 1 (see the report).
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env.setdefault(var, os.environ.get("VITDREAM_TEST_THREADS", "1"))
        cmd = [
            sys.executable, "-m", "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={root}",
            "--LabApp.expose_app_in_browser=True",
            "--JupyterNotebookApp.expose_app_in_browser=True",  # Notebook 7, served by the same server
            f"--LabServerApp.user_settings_dir={settings}",
            f"--LabServerApp.workspaces_dir={tmp / 'workspaces'}",
            "--ServerApp.terminals_enabled=False",
            "--LanguageServerManager.autodetect=False",
            "--LabApp.extension_manager=readonly",  # no PyPI look-ups from the extension manager
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")  # containers and CI machines often run as root
        self._log = open(self.log_path, "wb")
        # Own process group: teardown can signal the server and its helpers together.
        self.proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self._wait_ready()

    def url(self, path: str = "lab") -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base}/{path.lstrip('/')}{sep}token={self.token}"

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def _wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url("api/status"), timeout=5) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"jupyter lab did not answer within {timeout:.0f}s:\n{self.log_tail()}")

    def api(self, path: str, method: str = "GET"):
        req = urllib.request.Request(self.url(path), method=method)
        with urllib.request.urlopen(req, timeout=30) as r:
            body = r.read()
        return json.loads(body) if body else None

    def stop(self) -> None:
        """Stop the server and everything it started (kernels live in their own sessions)."""
        import psutil

        procs = _descendants(self.proc.pid)
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # graceful: the server shuts its kernels down
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        procs = [p for p in procs if p.is_running()]
        for p in procs:
            try:
                p.terminate()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(procs, timeout=5)
        for p in alive:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=5)
        self._log.close()


@pytest.fixture(scope="session")
def jupyterlab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("jupyterlab")
    root = tmp / "root"
    shutil.copytree(NOTEBOOKS, root)
    server = LabServer(root, tmp)
    yield server
    server.stop()


# ---------------------------------------------------------------------------------------- browser
@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: run `bash scripts/ensure_chromium.sh` (apt-get install chromium)")
    headed = os.environ.get("VITDREAM_HEADED", "") not in ("", "0")
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=not headed,
            args=CHROMIUM_ARGS,
            slow_mo=float(os.environ.get("VITDREAM_SLOWMO", "0") or 0),
        )
        yield b
        b.close()


class LabPage:
    """A JupyterLab or Notebook 7 tab, with what galata's ``page.notebook`` offers that these tests need."""

    def __init__(self, page, server: LabServer, frontend: str = "lab"):
        self.server = server
        self.frontend = frontend
        self.theme = "light"
        self.console_errors: list[str] = []
        self.kernel_errors: list[str] = []
        self.kernel_stderr: list[str] = []
        self.check_on_teardown = True
        self.attach(page)

    def attach(self, page) -> None:
        self.page = page
        page.on("console", self._on_console)
        page.on("pageerror", self._on_pageerror)
        page.on("websocket", self._on_websocket)

    # -- error capture
    def _on_console(self, msg) -> None:
        if msg.type != "error":
            return
        text = msg.text
        loc = msg.location.get("url", "") if msg.location else ""
        if any(p.search(text) or p.search(loc) for p in BENIGN_CONSOLE):
            return
        self.console_errors.append(f"{text} ({loc})" if loc else text)

    def _on_pageerror(self, exc) -> None:
        if self.frontend == "notebook" and str(exc) in BENIGN_NOTEBOOK7_PAGEERRORS:
            return
        self.console_errors.append(f"pageerror: {exc}")

    def _on_websocket(self, ws) -> None:
        if "/api/kernels/" not in ws.url:
            return
        ws.on("framereceived", self._on_frame)

    def _on_frame(self, payload) -> None:
        # Kernel messages (JSON, or the v1 binary protocol whose header is JSON too).
        if isinstance(payload, (bytes, bytearray)):
            payload = bytes(payload).decode("utf-8", errors="replace")
        if '"msg_type":"error"' in payload.replace(" ", ""):
            m = re.search(r'"ename"\s*:\s*"([^"]*)".*?"evalue"\s*:\s*"((?:[^"\\]|\\.)*)"', payload, re.S)
            self.kernel_errors.append(f"{m.group(1)}: {m.group(2)}" if m else payload[:500])
        elif '"name":"stderr"' in payload.replace(" ", "") and "Traceback" in payload:
            self.kernel_stderr.append(payload[:2000])

    def problems(self) -> list[str]:
        out = [f"console error: {e}" for e in self.console_errors]
        out += [f"kernel error: {e}" for e in self.kernel_errors]
        out += [f"traceback on stderr: {e}" for e in self.kernel_stderr]
        try:  # outputs only (a cell's source may well mention these words)
            body, error_views = self.page.evaluate(
                """() => [Array.from(document.querySelectorAll('.jp-OutputArea')).map(e => e.textContent).join(' '),
                          document.querySelectorAll('.jupyter-widgets-error-widget').length]"""
            )
        except Exception:  # noqa: BLE001 -- page gone; the other checks still count
            body, error_views = "", 0
        out += [f"page shows {t!r}" for t in WIDGET_ERROR_TEXT if t in body]
        if error_views:  # ipywidgets 8's broken-view placeholder ("Click to show javascript error.")
            out.append(f"Error displaying widget: {error_views} widget error view(s) on the page")
        return out

    def assert_no_problems(self) -> None:
        problems = self.problems()
        assert not problems, "widget errors in the browser:\n" + "\n".join(problems)

    # -- notebook actions
    def start(self) -> None:
        """Load JupyterLab in a fresh workspace (``?reset``) and wait until the application has started.
        Notebook 7 has one page per notebook: it starts in :meth:`open_notebook`."""
        if self.frontend == "notebook":
            return
        self.page.goto(self.server.url("lab?reset"))
        self.page.wait_for_function("() => window.jupyterapp && window.jupyterapp.started", timeout=120_000)
        self.page.evaluate("() => window.jupyterapp.started")
        self.close_all()  # the Launcher

    def reset(self) -> None:
        """Forget what the previous test recorded."""
        self.console_errors.clear()
        self.kernel_errors.clear()
        self.kernel_stderr.clear()
        self.check_on_teardown = True

    def open_notebook(self, name: str) -> None:
        """Open ``name`` (relative to the server root) in the test's theme and wait until its kernel is idle."""
        if self.frontend == "notebook":
            self.page.goto(self.server.url(f"notebooks/{name}"))
            self.page.wait_for_function("() => window.jupyterapp && window.jupyterapp.started", timeout=120_000)
        else:
            self.page.evaluate("(path) => window.jupyterapp.commands.execute('docmanager:open', {path})", name)
        self.page.wait_for_function(
            """(path) => { const w = window.jupyterapp.shell.currentWidget;
                           return w && w.context && w.context.path === path && w.content && w.content.widgets; }""",
            arg=name,
            timeout=60_000,
        )
        self.page.evaluate(  # only this notebook in the main area (JupyterLab re-adds a Launcher)
            """() => { const app = window.jupyterapp; const cur = app.shell.currentWidget;
                       for (const w of Array.from(app.shell.widgets('main'))) if (w !== cur && !w.context) w.close(); }"""
        )
        self.set_theme(self.theme)
        self.wait_for_kernel_idle(timeout=120)

    def set_theme(self, theme: str) -> None:
        """Switch to JupyterLab's light or dark theme (a setting: it persists until switched back)."""
        name = THEMES[theme]
        if self.page.evaluate("() => document.body.dataset.jpThemeName") != name:
            self.page.evaluate("(theme) => window.jupyterapp.commands.execute('apputils:change-theme', {theme})", name)
            self.page.wait_for_function("(n) => document.body.dataset.jpThemeName === n", arg=name, timeout=30_000)

    def close_all(self) -> None:
        """Close every open document without the "save changes?" dialog (tests never save)."""
        if self.frontend == "notebook":  # one notebook per page: leave it
            if self.page.url.startswith(self.server.base):
                self.page.evaluate("""() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                                              if (w && w.context && w.context.model) w.context.model.dirty = false; }""")
            self.page.goto("about:blank")
            return
        self.page.evaluate(
            """() => { for (const w of Array.from(window.jupyterapp.shell.widgets('main'))) {
                         if (w.context && w.context.model) w.context.model.dirty = false;
                         w.close(); } }"""
        )

    def _kernel_state(self) -> str | None:
        return self.page.evaluate(
            """() => {
              const w = window.jupyterapp.shell.currentWidget;
              const s = w && w.sessionContext;
              return s && s.session && s.session.kernel ? s.session.kernel.status : null;
            }"""
        )

    def wait_for_kernel_idle(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            state = self._kernel_state()
            if state == "idle":
                return
            self.page.wait_for_timeout(250)
        raise AssertionError(f"kernel not idle after {timeout:.0f}s (status {state!r})")

    def run_all_cells(self, timeout: float = 180) -> None:
        """``notebook:run-all-cells``, then wait until every code cell has run and the kernel is idle."""
        self.page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        deadline = time.monotonic() + timeout
        pending = None
        while time.monotonic() < deadline:
            pending = self.page.evaluate(
                """() => {
                  const nb = window.jupyterapp.shell.currentWidget.content;
                  let pending = 0;
                  for (const cell of nb.widgets) {
                    if (cell.model.type !== 'code') continue;
                    const p = cell.promptNode ? cell.promptNode.textContent : '';
                    if (cell.model.executionCount === null || p.includes('*')) pending++;
                  }
                  return pending;
                }"""
            )
            if pending == 0 and self._kernel_state() == "idle":
                return
            self.page.wait_for_timeout(300)
        raise AssertionError(f"{pending} cells still pending after {timeout:.0f}s")

    def cell_output(self, index: int):
        """The output area of code cell ``index`` (0-based over all cells)."""
        return self.page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-OutputArea")

    def show(self, locator) -> None:
        """Make room for ``locator`` in the screenshot: close the side panels, scroll it into view."""
        self.page.evaluate("""() => { const s = window.jupyterapp.shell;
                                      if (s.collapseLeft) s.collapseLeft(); if (s.collapseRight) s.collapseRight(); }""")
        locator.scroll_into_view_if_needed()

    # -- keyboard, contrast, responsiveness
    def tab_through(self, root, max_presses: int = 80) -> tuple[int, list[str]]:
        """Focus the first focusable element of ``root``, then press Tab until focus leaves it.

        Returns how many enabled buttons ``root`` has and the labels of those Tab never reached."""
        total = root.evaluate(
            """(root) => { const buttons = Array.from(root.querySelectorAll('button')).filter(b => !b.disabled && b.offsetParent);
                           buttons.forEach((b, i) => b.dataset.vdKb = String(i));
                           const first = root.querySelector('button, input, select, textarea, [tabindex]:not([tabindex="-1"])');
                           first.focus(); return buttons.length; }"""
        )
        reached: set[str] = set()
        for _ in range(max_presses):
            where = self.page.evaluate(
                """(root) => { const a = document.activeElement;
                               return [root.contains(a), a && a.dataset ? (a.dataset.vdKb || null) : null]; }""",
                root.element_handle(),
            )
            if not where[0] and reached:
                break
            if where[1] is not None:
                reached.add(where[1])
            self.page.keyboard.press("Tab")
        missing = root.evaluate(
            "(root, reached) => Array.from(root.querySelectorAll('button[data-vd-kb]'))"
            ".filter(b => !reached.includes(b.dataset.vdKb)).map(b => b.textContent.trim() || b.title || b.className)",
            sorted(reached),
        )
        return total, missing

    def contrast_problems(self, root, minimum: float = 4.5) -> list[str]:
        """Text in ``root`` whose colour against its background is under ``minimum`` (WCAG AA: 4.5)."""
        return root.evaluate(
            """(root, minimum) => {
              const rgba = (s) => (s.match(/[\\d.]+/g) || [0, 0, 0, 0]).map(Number).concat([1]).slice(0, 4);
              const lum = ([r, g, b]) => [r, g, b].map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
                                                   .reduce((acc, v, i) => acc + v * [0.2126, 0.7152, 0.0722][i], 0);
              const background = (el) => { for (; el; el = el.parentElement) { const c = rgba(getComputedStyle(el).backgroundColor);
                                           if (c[3] > 0.5) return c; } return [255, 255, 255, 1]; };
              const out = [];
              for (const el of root.querySelectorAll('*')) {
                const text = Array.from(el.childNodes).filter(n => n.nodeType === 3).map(n => n.textContent.trim()).join('');
                if (!text || !el.offsetParent || el.closest('button:disabled')) continue;
                const fg = lum(rgba(getComputedStyle(el).color)), bg = lum(background(el));
                const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
                if (ratio < minimum) out.push(`${JSON.stringify(text.slice(0, 40))}: ${ratio.toFixed(2)} (${getComputedStyle(el).color} on ${background(el)})`);
              }
              return out;
            }""",
            minimum,
        )

    def image_text_contrast(self, img) -> float:
        """Contrast between the background of a picture with drawn text (a plot) and its darkest or
        brightest ink, measured on a screenshot of the element as the page shows it."""
        import io

        from PIL import Image

        shot = Image.open(io.BytesIO(img.screenshot())).convert("L")
        shot = shot.crop((3, 3, shot.width - 3, shot.height - 3))  # edges may show the page around it
        from collections import Counter

        pixels = sorted(shot.tobytes())  # one byte per pixel (mode L)
        background = Counter(pixels).most_common(1)[0][0]
        ink = pixels[len(pixels) // 200] if background > 127 else pixels[-len(pixels) // 200]
        to_lum = lambda v: ((v / 255) / 12.92) if v / 255 <= 0.03928 else (((v / 255) + 0.055) / 1.055) ** 2.4  # noqa: E731
        hi, lo = max(to_lum(background), to_lum(ink)), min(to_lum(background), to_lum(ink))
        return (hi + 0.05) / (lo + 0.05)

    def execute_seconds(self, code: str = "pass") -> float:
        """Round trip of a new execute request on this notebook's kernel, as the front end times it."""
        return self.page.evaluate(
            """async (code) => { const k = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
                                 const t = performance.now(); await k.requestExecute({code}).done;
                                 return (performance.now() - t) / 1000; }""",
            code,
        )

    def saved_outputs(self, cell: int) -> list[dict]:
        """The outputs of code cell ``cell`` as the front end would save them (its notebook model)."""
        return self.page.evaluate(
            "(i) => window.jupyterapp.shell.currentWidget.context.model.toJSON().cells[i].outputs || []", cell
        )

    def mark(self, locator, name: str = "vdMark") -> None:
        """Tag a DOM element, to check later that it is still the same element (updated, not re-created)."""
        locator.evaluate("(el, name) => { el.dataset[name] = 'kept'; }", name)

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=False)
        return path


@pytest.fixture(scope="session")
def _pages(browser, jupyterlab):
    """One tab per front end for the session (booting JupyterLab costs ~10 s on a loaded 2-core machine)."""
    helpers: dict[str, LabPage] = {}

    def page_for(frontend: str) -> LabPage:
        if frontend not in helpers:
            context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=False)
            context.set_default_timeout(60_000)
            helpers[frontend] = LabPage(context.new_page(), jupyterlab, frontend)
            helpers[frontend].start()
        return helpers[frontend]

    yield page_for
    for helper in helpers.values():
        helper.page.context.close()


@pytest.fixture
def ui(request) -> str:
    """The front end and theme of this test (a key of ``UIS``), set by ``pytest_generate_tests``."""
    return request.param


@pytest.fixture
def lab(_pages, jupyterlab, ui, request):
    """The test's tab (JupyterLab or Notebook 7, light or dark), clean; screenshot, error check and kernel
    shutdown afterwards."""
    frontend, theme = UIS[ui]
    helper = _pages(frontend)
    helper.theme = theme
    if helper.page.is_closed():
        helper.attach(helper.page.context.new_page())
    if frontend == "lab" and not helper.page.evaluate("() => !!(window.jupyterapp && window.jupyterapp.started)"):
        helper.start()
    helper.reset()
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    try:
        yield helper
        if helper.check_on_teardown:
            helper.assert_no_problems()
    finally:
        try:
            helper.screenshot(name)
        finally:
            try:
                helper.close_all()
            except Exception:  # noqa: BLE001 -- a broken page is reloaded by the next test
                helper.page.goto("about:blank")
            # Shut the test's kernels down so the next test starts on a quiet machine.
            try:
                for s in jupyterlab.api("api/sessions"):
                    jupyterlab.api(f"api/sessions/{s['id']}", method="DELETE")
            except Exception:  # noqa: BLE001 -- teardown of the server kills them anyway
                pass
