"""Base classes for every plugin kind. Subclass one, give it an ``id``, register it."""

from vitdream.base.diffusion import Generator, Sampler
from vitdream.base.index import VectorIndex
from vitdream.base.options import Component, Options
from vitdream.base.training import Trainer
from vitdream.base.vision import Classifier, Embedder, Prediction

__all__ = [
    "Classifier",
    "Component",
    "Embedder",
    "Generator",
    "Options",
    "Prediction",
    "Sampler",
    "Trainer",
    "VectorIndex",
]
