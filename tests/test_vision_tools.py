"""The classify CLI, attention rollout and the classify widget, on a tiny random ViT."""

from __future__ import annotations

import datetime
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import vitdream as vd
from vitdream.testing.vit import tiny_vit
from vitdream.vision.attention import overlay, rollout, token_grid


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_vit(tmp_path_factory.mktemp("vit") / "tiny", labels=["red", "green", "blue"])


@pytest.fixture(scope="module")
def clf(model_dir):
    return vd.load_classifier(model_dir)


@pytest.fixture
def pictures(tmp_path):
    for i, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        Image.new("RGB", (30 + 10 * i, 40), colour).save(tmp_path / f"{i}.png")
    (tmp_path / "fake.png").write_text("hello")
    return tmp_path


def test_cli_classify_json_reports_every_input_in_order(model_dir, pictures):
    from vitdream.cli import build_cli

    result = CliRunner().invoke(build_cli(), ["classify", str(pictures), "--model", str(model_dir), "--top-k", "2", "--json"])
    assert result.exit_code == 1, result.output  # one bad image
    records = json.loads(result.stdout)
    assert [r["source"].rsplit("/", 1)[-1] for r in records] == ["0.png", "1.png", "2.png", "fake.png"]
    assert "not an image" in records[3]["error"]
    assert all(len(r["predictions"]) == 2 for r in records[:3])
    expected = vd.load_classifier(model_dir).classify(str(pictures / "1.png"), top_k=2)
    assert records[1]["predictions"][0]["label"] == expected[0].label
    assert abs(records[1]["predictions"][0]["score"] - expected[0].score) < 1e-5


def test_cli_classify_text_and_errors(model_dir, pictures):
    from vitdream.cli import build_cli

    runner = CliRunner()
    ok = runner.invoke(build_cli(), ["classify", str(pictures / "0.png"), "--model", str(model_dir), "--top-k", "1"])
    assert ok.exit_code == 0 and ok.stdout.startswith(str(pictures / "0.png") + ": ")
    missing = runner.invoke(build_cli(), ["classify", str(pictures / "0.png"), "--model", str(pictures / "nope")])
    assert missing.exit_code == 1 and "no such model directory" in missing.output


def test_rollout_follows_the_attention():
    tokens = 1 + 4
    focused = np.zeros((1, 2, tokens, tokens))
    focused[..., :, 3] = 1.0  # every token attends to patch token 3 (grid position 2)
    relevance = rollout([focused, focused])
    assert relevance.shape == (1, tokens)
    np.testing.assert_allclose(relevance.sum(), 1.0)
    grid = token_grid(relevance[0], 4)
    assert grid.shape == (2, 2) and grid[1, 0] == 1.0 and grid.max() == 1.0
    with pytest.raises(ValueError, match="head_fusion"):
        rollout([focused], head_fusion="median")


def test_attention_map_uses_eager_only_when_asked(clf):
    image = Image.new("RGB", (48, 32), (200, 40, 10))
    assert clf.model.config._attn_implementation == "sdpa"
    heat = clf.attention_map(image)
    assert heat.shape == (4, 4) and heat.dtype == np.float32 and heat.max() == 1.0 and heat.min() == 0.0
    assert clf.model.config._attn_implementation == "sdpa"
    blended = overlay(clf.model_view(image), heat, size=96)
    assert blended.size == (96, 96) and blended.mode == "RGB"


def test_classify_widget_upload_pick_and_bad_file(clf, pictures):
    widget = vd.widgets.classify(clf, images=pictures, top_k=2)
    assert [label for label, _ in widget.picker.options][1:] == ["0.png", "1.png", "2.png", "fake.png"]
    widget.picker.value = str(pictures / "2.png")  # picking shows it
    expected = clf.classify(pictures / "2.png", top_k=2)
    assert expected[0].label in widget.bars.value and bytes(widget.image.value).startswith(b"\x89PNG")
    assert widget.bars.value.count("background:") == 2
    widget.top_k.value = 3  # changing top-k refreshes the bars
    assert widget.bars.value.count("background:") == 3
    data = (pictures / "0.png").read_bytes()
    upload = {"name": "up.png", "type": "image/png", "size": len(data), "content": memoryview(data),
              "last_modified": datetime.datetime.now(datetime.timezone.utc)}
    widget.upload.value = (upload,)
    assert clf.classify(pictures / "0.png", top_k=1)[0].label in widget.bars.value
    widget.picker.value = str(pictures / "fake.png")
    assert "fake.png" in widget.status.value and "not an image" in widget.status.value and widget.bars.value == ""
