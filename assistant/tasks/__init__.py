"""The pipeline table: the code that runs each of the assistant's tasks (ask, summarize, classify),
by name, in one place. (A classification *task* such as ``sentiment`` is a label set or a fine-tuned
classifier that the classify pipeline serves.)"""

from __future__ import annotations

from .ask import AskPipeline
from .base import Pipeline
from .classify import ClassifyPipeline
from .summarize import SummarizePipeline

PIPELINES: dict[str, type[Pipeline]] = {
    SummarizePipeline.name: SummarizePipeline,
    ClassifyPipeline.name: ClassifyPipeline,
    AskPipeline.name: AskPipeline,
}

__all__ = ["PIPELINES", "Pipeline", "AskPipeline", "ClassifyPipeline", "SummarizePipeline"]
