"""Test-wide settings: no network, no accidental third-party plugins."""

from __future__ import annotations

import os

import pytest

# Never load plugins that happen to be installed on the developer's machine.
os.environ["VITDREAM_LOAD_PLUGINS"] = ""
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def fresh_plugins(monkeypatch):
    """A clean plugin host for the test; restored (reloaded lazily) afterwards."""
    from vitdream import plugins

    plugins.reset()
    yield plugins
    plugins.reset()


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's torch work on one thread (2 shared cores: oversubscribed threads are ~20x slower).

    Module scope, so it also covers module-scoped fixtures; use with ``pytestmark``.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
