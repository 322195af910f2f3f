"""What the training scripts of the embedded models share: the repository root, logging, and settings
recorded without absolute paths of the machine that trained."""

from __future__ import annotations

import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def relative(value: object) -> str:
    """A setting as recorded in training.json and logs: paths relative to the repository, never absolute."""
    text = str(value)
    try:
        return Path(text).resolve().relative_to(ROOT).as_posix() if os.sep in text else text
    except ValueError:
        return Path(text).name


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)
