"""Pure evaluators for the assistant's tasks (no model loading): classification metrics and
threshold tuning, summarisation ROUGE with numeric precision, and report writers.

The runners that load a model and score it through the ``Assistant`` (``finassist eval``) are
``finetune.evaluation.classifier_runner`` and ``finetune.evaluation.summarizer_runner``; they are
not imported here: the evaluators need no model."""

from __future__ import annotations

from .classification import (
    ClassificationEvaluator,
    ClassificationReport,
    apply_thresholds,
    tune_thresholds,
    weighted_metrics,
)
from assistant.figures import extract_numbers, numeric_precision
from assistant.sentences import split_sentences
from .report import markdown_table, write_json, write_markdown
from .summarization import (
    SummarizationEvaluator,
    SummarizationReport,
    compare_markdown,
    lead_n,
    save_reports,
)

__all__ = [
    "ClassificationEvaluator",
    "ClassificationReport",
    "SummarizationEvaluator",
    "SummarizationReport",
    "apply_thresholds",
    "compare_markdown",
    "extract_numbers",
    "lead_n",
    "markdown_table",
    "numeric_precision",
    "save_reports",
    "split_sentences",
    "tune_thresholds",
    "weighted_metrics",
    "write_json",
    "write_markdown",
]
