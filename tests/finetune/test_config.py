"""The training configurations (finetune/config.py): settings that cannot work are refused when
the configuration is built, before any data is read."""

from __future__ import annotations

import pytest

from assistant.errors import InvalidParameterError
from finetune.config import ClassifyTrainConfig


@pytest.mark.parametrize("bad", [{"stride": 200}, {"val_fraction": 1.5}, {"batch_size": 0}, {"task": "../x"},
                                 {"eval_steps": 3, "save_steps": 4}, {"features": "words", "head_only": True},
                                 {"features": "embedding+words"}, {"cv_folds": 1, "head_only": True},
                                 {"cv_folds": 3}, {"cv_folds": 3, "head_only": True, "val": "v.jsonl"},
                                 {"min_labels": 1}, {"min_labels": -1, "multi_label": True},
                                 {"features": "embedding+words+chars"}, {"features": "embedding+chars", "head_only": True},
                                 {"encoder_epochs": 1}, {"encoder_epochs": 1, "head_only": True},
                                 {"encoder_epochs": -1, "head_only": True, "copy_encoder": False},
                                 {"learning_rate": 0}, {"learning_rate": -1e-4, "lora": True}])
def test_bad_settings(bad, tmp_path):
    kwargs = {"task": "sentiment", "train": "t.jsonl", "out": str(tmp_path), **bad}
    with pytest.raises(InvalidParameterError):
        ClassifyTrainConfig(**kwargs)


def test_an_adapted_encoder_is_a_compact_head_only_setting(tmp_path):
    config = ClassifyTrainConfig(task="unfair-tos", train="t.jsonl", out=str(tmp_path), head_only=True,
                                 copy_encoder=False, encoder_epochs=2)
    assert config.encoder_epochs == 2
    with pytest.raises(InvalidParameterError, match="--no-copy-encoder"):
        ClassifyTrainConfig(task="unfair-tos", train="t.jsonl", out=str(tmp_path), head_only=True, encoder_epochs=2)


def test_the_learning_rate_defaults_by_what_is_trained(tmp_path):
    """LoRA adapters start at zero and need ten times the full fine-tune's step; a rate given is kept."""
    def rate(**kwargs):
        return ClassifyTrainConfig(task="unfair-tos", train="t.jsonl", out=str(tmp_path), **kwargs).effective_learning_rate

    assert rate() == 5e-5
    assert rate(lora=True) == 5e-4
    assert rate(head_only=True, copy_encoder=False, encoder_epochs=2) == 5e-4
    assert rate(lora=True, learning_rate=1e-4) == 1e-4 and rate(learning_rate=3e-5) == 3e-5
