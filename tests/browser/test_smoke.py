"""The browser-test machinery itself, on plain ipywidgets: render, Python callbacks, uploads, threads."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from PIL import Image

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]


def _png(tmp_path, size=(40, 30), color=(200, 30, 30)):
    path = tmp_path / "red.png"
    Image.new("RGB", size, color).save(path)
    return path


@pytest.mark.ui("lab", "nb7")
def test_plain_widgets_render_and_update(lab, tmp_path):
    lab.open_notebook("smoke_widgets.ipynb")
    lab.run_all_cells()
    page = lab.page
    box = page.locator(".vd-smoke")
    expect(box).to_be_visible()
    expect(box.get_by_text("square: 9")).to_be_visible()

    # keyboard on the slider: the Python observer answers. Notebook 7 binds the arrow keys to cell
    # navigation in the capture phase (before the slider sees them); Page Up/Down, Home/End still work.
    handle = box.locator(".widget-slider .noUi-handle").first
    handle.focus()
    key, square = ("ArrowRight", 16) if lab.frontend == "lab" else ("PageUp", 64)
    handle.press(key)
    expect(box.get_by_text(f"square: {square}")).to_be_visible()

    # upload through the file chooser, as a person would
    with page.expect_file_chooser() as fc:
        box.locator("button.widget-upload").click()
    fc.value.set_files(str(_png(tmp_path)))
    expect(box.get_by_text("red.png: 40x30")).to_be_visible()
    img = box.locator("img.widget-image")
    expect(img).to_have_attribute("src", re.compile(r"^(blob:|data:)"))

    # updates from a background thread reach the page while it runs, and its end
    box.get_by_role("button", name="Count in a thread").click()
    seen = set()
    for _ in range(100):
        seen.add(box.locator(".widget-label").filter(has_text="ticks:").inner_text())
        if "ticks: 5 (done)" in seen:
            break
        page.wait_for_timeout(100)
    assert "ticks: 5 (done)" in seen
    assert len(seen) >= 3, f"expected intermediate updates, saw {seen}"
    lab.show(box)
    lab.assert_no_problems()


def test_error_detection_catches_broken_widgets(lab):
    """The checks every browser test relies on must fail on a widget that cannot render or that raises."""
    lab.check_on_teardown = False  # this test expects problems
    lab.open_notebook("broken_widgets.ipynb")
    lab.run_all_cells()
    expect(lab.page.locator(".jp-OutputArea .jupyter-widgets-error-widget")).to_be_visible()
    lab.page.get_by_role("button", name="Explode").click()
    for _ in range(100):
        if lab.kernel_errors:
            break
        lab.page.wait_for_timeout(100)
    problems = "\n".join(lab.problems())
    assert "Error displaying widget: 1 widget error view(s)" in problems
    assert "No version of module vitdream-no-such-module" in problems  # the console error
    assert "ValueError: boom from a widget callback" in problems
    with pytest.raises(AssertionError, match="widget errors in the browser"):
        lab.assert_no_problems()
    # the legibility checks fail on text and a plot too faint to read
    faint = lab.page.locator(".vd-faint")
    assert [p for p in lab.contrast_problems(faint) if p.startswith('"faint text"')], lab.contrast_problems(faint)
    assert lab.image_text_contrast(faint.locator("img")) < 2
