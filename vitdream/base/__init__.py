"""The kernel every plugin implements against: one base class per plugin kind, holding the contract.

Subclass one, give it an ``id``, implement its one small method, register it (see ``docs/plugins.md``):

- :class:`Classifier` (``labels``, ``_scores``) and :class:`Embedder` (``_embed``): image backends;
- :class:`Generator` (``_generate``) and :class:`Sampler` (``make_scheduler``): text-to-image;
- :class:`Trainer` (``_fit``, ``export``): training runs with one protocol;
- :class:`VectorIndex` (``add``, ``search``, ...): vector search;
- :class:`Evaluator` (``_score``, optional ``_embed``): scores images against references and/or prompts.

Options are typed pydantic models (:class:`Options`, unknown fields forbidden).
"""

from vitdream.base.diffusion import Generator, GeneratorOptions, Sampler
from vitdream.base.evaluator import Evaluator, Scores
from vitdream.base.index import VectorIndex
from vitdream.base.options import Component, Options
from vitdream.base.results import Classifications, Embeddings, Prediction
from vitdream.base.training import RunEnd, Trainer
from vitdream.base.vision import Classifier, Embedder, ImageBackendOptions

__all__ = [
    "Classifications",
    "Classifier",
    "Component",
    "Embedder",
    "Embeddings",
    "Evaluator",
    "Generator",
    "GeneratorOptions",
    "ImageBackendOptions",
    "Options",
    "Prediction",
    "RunEnd",
    "Scores",
    "Sampler",
    "Trainer",
    "VectorIndex",
]
