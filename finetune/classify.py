"""The classifier training and evaluation names at their former import path, for code outside
``finetune/`` that still imports them from here (tests/conftest.py, tests/test_classifiers.py,
tests/test_shipped.py). New code imports them from where they live:

* ``ClassifyTrainConfig``: ``finetune.config``
* ``load_data`` (``load_classification_data``): ``finetune.classification_data``
* ``train_classifier``: ``finetune.train_classifier`` (head-only training: ``finetune.train_head``)
* ``evaluate_classifier``: ``finetune.evaluation.classifier_runner``
"""

from __future__ import annotations

from .classification_data import load_classification_data as load_data
from .config import ClassifyTrainConfig
from .evaluation.classifier_runner import evaluate_classifier
from .train_classifier import train_classifier

__all__ = ["ClassifyTrainConfig", "evaluate_classifier", "load_data", "train_classifier"]
