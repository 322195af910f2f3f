"""The example plugin, tested as its author would: through vitdream's plugin machinery."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest


@pytest.fixture
def host(monkeypatch):
    from vitdream import plugins

    monkeypatch.setenv("VITDREAM_LOAD_PLUGINS", "numpy_index")
    plugins.reset()
    yield plugins.get_host()
    plugins.reset()


def test_plugin_is_discovered_through_its_entry_point(host):
    info = {i.name: i for i in host.report()}["numpy_index"]
    assert info.source == "entry point"
    assert info.error is None
    assert info.version == "0.1.0"
    assert info.registered["indexes"] == ["numpy-exact"]
    assert info.hooks == ["register_indexes"]


def test_exact_search_matches_brute_force(host):
    from vitdream.components import create

    rng = np.random.default_rng(0)
    base = rng.normal(size=(500, 32)).astype(np.float32)
    queries = rng.normal(size=(7, 32)).astype(np.float32)
    index = create("indexes", "numpy-exact", dim=32)
    index.add(base, np.arange(1000, 1500))
    scores, ids = index.search(queries, k=5)

    nb = base / np.linalg.norm(base, axis=1, keepdims=True)
    nq = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    expected = np.argsort(-(nq @ nb.T), axis=1)[:, :5] + 1000
    assert (ids == expected).all()
    assert np.allclose(scores[:, 0], (nq * nb[ids[:, 0] - 1000]).sum(1), atol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-6).all()


def test_remove_save_load_round_trip(host, tmp_path):
    from vitdream.components import create, get_entry

    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 8)).astype(np.float32)
    index = create("indexes", "numpy-exact", dim=8)
    index.add(x, np.arange(20))
    assert index.remove([3, 4, 99]) == 2
    scores, ids = index.search(x[3:4], k=20)
    assert 3 not in ids and (ids[0, -2:] == -1).all()

    index.save(tmp_path / "idx")
    again = get_entry("indexes", "numpy-exact").load().load(tmp_path / "idx")
    s2, i2 = again.search(x[:5], k=4)
    s1, i1 = index.search(x[:5], k=4)
    assert (i1 == i2).all() and np.allclose(s1, s2)


def test_wrong_dimension_is_a_clear_error(host):
    from vitdream.components import create

    index = create("indexes", "numpy-exact", dim=8)
    with pytest.raises(ValueError, match="dimension 5, the index has 8"):
        index.add(np.zeros((2, 5)), [0, 1])


def test_unknown_option_is_named(host):
    from vitdream.components import create
    from vitdream.errors import OptionsError

    with pytest.raises(OptionsError, match="unknown option 'metric'"):
        create("indexes", "numpy-exact", dim=8, metric="l2")


def test_cli_lists_the_plugin():
    env = {"VITDREAM_LOAD_PLUGINS": "numpy_index", "PATH": ""}
    out = subprocess.run([sys.executable, "-m", "vitdream.cli", "plugins", "--json"], env=env,
                         capture_output=True, text=True, check=True).stdout
    by_name = {p["name"]: p for p in json.loads(out)}
    assert by_name["numpy_index"]["registered"]["indexes"] == ["numpy-exact"]
