"""A notebook run and saved with vitdream widgets shows each widget's last state without a kernel.

The notebook is run by nbclient (as nbmake and CI do), saved, and converted by nbconvert (what
nbviewer uses): the HTML must hold every widget's snapshot (a PNG) and key numbers as text, in the
state the widget reached in *later* cells (records are updated in place, never re-displayed).
"""

from __future__ import annotations

import base64
import copy
import io
import re

import nbformat
import pytest
from PIL import Image

from vitdream.widgets.record import HIDDEN_VIEW, WIDGET_VIEW, compose, plain_text

pytestmark = pytest.mark.slow

SETUP = """
import tempfile
from pathlib import Path
import torch
import vitdream as vd
from vitdream.testing.dreambooth import make_tiny_dreambooth
torch.set_num_threads(1)
work = Path(tempfile.mkdtemp(prefix="vd-record-"))
pictures = vd.datasets.shapes(12, seed=0, size=32).save(work / "images")
clf = vd.load_classifier()
"""
CELLS = [
    SETUP,
    "classify_ui = vd.widgets.classify(clf, top_k=2)\nclassify_ui",
    "predictions = classify_ui.show(pictures[0])\n[p.label for p in predictions]",
    "index = vd.build_index(work / 'images', embedder=vd.load_embedder(), kind='faiss-flat', progress=False)\n"
    "search_ui = vd.widgets.search(index, k=4)\nsearch_ui",
    "search_ui.query(pictures[3]); search_ui.wait()",
    "generate_ui = vd.widgets.generate(vd.load_generator(), steps=4, seed=1)\ngenerate_ui",
    "generate_ui.prompt.value = 'a red circle'\ngenerate_ui.wait(120)",
    "run = vd.dreambooth(**make_tiny_dreambooth(work / 'db'), instance_prompt='a photo of sks dog',\n"
    "                    output_dir=str(work / 'run'), max_steps=3, report_to=['csv'])\n"
    "dashboard = vd.widgets.train(run)\ndashboard",
    "import time\nrun.start(); run.wait(300)\n"
    "for _ in range(300):  # until the dashboard has drawn the end (its own thread)\n"
    "    if 'finished' in dashboard.status.value: break\n"
    "    time.sleep(0.1)",
]


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=600, kernel_name="python3").execute()
    path = tmp_path_factory.mktemp("record") / "saved.ipynb"
    nbformat.write(nb, path)
    return nbformat.read(path, as_version=4)  # what was saved, read back


def _records(cell) -> tuple[dict, dict, dict]:
    ours = [o["data"] for o in cell.outputs if o.output_type == "display_data" and (  # not tqdm's progress bars
        "last state is recorded below" in o["data"]["text/plain"] or o["data"].get(WIDGET_VIEW) == HIDDEN_VIEW)]
    live, text, image = ours
    return live, text, image


def _png(data: dict) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(data["image/png"])))


@pytest.mark.parametrize("cell, expected", [
    (1, r"top predictions:\n\w+ \w+ 0\.\d{3}\n\w+ \w+ 0\.\d{3}$"),
    (3, r"4 nearest of 12 images .*00003\.png\n1\.000 00003\.png(\n0\.\d{3} \d{5}\.png){3}$"),  # itself first
    (5, r"prompt 'a red circle'\nseed 1 · guidance 7\.5 · 4 steps · ddim"),
    (7, r"finished.* step 3/3"),
])
def test_each_widget_records_its_last_state_in_the_saved_notebook(executed, cell, expected):
    cell = executed.cells[cell]
    assert not [o for o in cell.outputs if o.output_type == "error"]
    live, text, image = _records(cell)
    assert live[WIDGET_VIEW]["model_id"], "the live widget comes first"
    assert "last state is recorded below" in live["text/plain"]
    assert text[WIDGET_VIEW] == image[WIDGET_VIEW] == HIDDEN_VIEW  # hidden in JupyterLab / Notebook 7
    assert re.search(expected, text["text/plain"]), text["text/plain"]
    assert _png(image).width > 30 and "image/png" in image


def test_snapshots_show_what_the_widgets_show(executed):
    classify, search, generate, train = (_png(_records(executed.cells[i])[2]) for i in (1, 3, 5, 7))
    assert classify.size == (224, 224)  # the attention overlay, shown at 224
    assert search.height == 128 and search.width > 4 * 128  # query + 4 thumbnails in a row
    assert generate.height == 256
    assert train.width > 2 * train.height  # the loss curve


def test_nbconvert_html_shows_pictures_and_numbers(executed):
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(executed)
    images = re.findall(r'<img[^>]*src="data:image/png;base64,([^"]+)"', body)
    recorded = {_records(executed.cells[i])[2]["image/png"].replace("\n", "") for i in (1, 3, 5, 7)}
    assert recorded <= {i.replace("\n", "") for i in images}, "every snapshot is an <img> in the HTML"
    for i in (1, 3, 5, 7):
        first_line = _records(executed.cells[i])[1]["text/plain"].splitlines()[0]
        assert plain_text(first_line) in plain_text(body), first_line
    # nbclient saved the widget state, so the live widget is embedded too; JupyterLab does not by default
    assert "application/vnd.jupyter.widget-state+json" in body
    as_lab_saves = copy.deepcopy(executed)
    as_lab_saves.metadata.pop("widgets")
    body, _ = HTMLExporter().from_notebook_node(as_lab_saves)
    assert body.count("last state is recorded below") == 4
    assert recorded <= {i.replace("\n", "") for i in re.findall(r'<img[^>]*src="data:image/png;base64,([^"]+)"', body)}


def test_compose_lays_out_rows_and_skips_placeholders():
    def png(w, h, colour):
        buffer = io.BytesIO()
        Image.new("RGB", (w, h), colour).save(buffer, format="PNG")
        return buffer.getvalue()

    assert compose([]) is None and compose([png(1, 1, "grey")]) is None
    row = Image.open(io.BytesIO(compose([png(32, 32, "red"), png(64, 32, "blue"), png(1, 1, "grey")], height=100)))
    assert row.size == (100 + 6 + 200, 100)
    assert row.getpixel((50, 50)) == (255, 0, 0) and row.getpixel((200, 50)) == (0, 0, 255)
    wrapped = Image.open(io.BytesIO(compose([png(10, 10, "red")] * 5, height=100, max_width=250)))
    assert wrapped.size == (206, 3 * 100 + 2 * 6)
