"""Base class of trainers."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from vitdream.base.options import Component


class Trainer(Component):
    """A training run. Implement :meth:`fit`."""

    @abstractmethod
    def fit(self) -> Any:
        """Train until done or stopped; return the run's result."""
