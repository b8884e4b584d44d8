"""The shape every pipeline has: prepare input -> run model -> shape output.

Like transformers pipelines: ``preprocess`` checks and prepares the user's input
(no model calls but tokenisation), ``forward`` runs the engine, ``postprocess``
turns raw model output into the result type. ``__call__`` chains them.
"""

from __future__ import annotations

from typing import Any

from ..engine import Engine


class Pipeline:
    #: Name in the pipeline table (``assistant.tasks.PIPELINES``).
    name: str = ""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def preprocess(self, inputs: Any, **params: Any) -> Any:
        raise NotImplementedError

    def forward(self, prepared: Any) -> Any:
        raise NotImplementedError

    def postprocess(self, outputs: Any) -> Any:
        raise NotImplementedError

    def __call__(self, inputs: Any, **params: Any) -> Any:
        return self.postprocess(self.forward(self.preprocess(inputs, **params)))
