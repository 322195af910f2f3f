"""Entry points that can show a widget while they run: the notebook layer, above the backends.

Backends never import widgets; a function that both trains and displays lives here.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from vitdream.vision.finetuning import FinetuneResult


def finetune(
    data: str | os.PathLike, model: str | os.PathLike | None = None, *, live: bool | None = None, **options: Any
) -> "FinetuneResult":
    """Fine-tune a ViT on ``data/<class>/*`` and block until done (see
    :func:`vitdream.vision.finetuning.finetune`). ``live`` (default: in a notebook) also displays the
    run's dashboard (``vd.widgets.train``) while it trains."""
    from vitdream.vision.finetuning import finetune_run

    run = finetune_run(data, model, **options)
    if live or (live is None and in_notebook()):
        from IPython.display import display

        from vitdream.widgets.train import train

        display(train(run))
    run.fit()
    assert run.result is not None
    return run.result


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"
