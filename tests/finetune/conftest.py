"""Fixtures shared by the fine-tuning tests: real ECTSum pairs, a generator configuration small
enough to train in seconds on CPU, and the tiny GPT-2 fine-tuned once on them (used by the
training tests and by the summariser evaluation)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from finetune.config import GenerateTrainConfig
from finetune.train_generator import train_generator

#: Small enough that a few optimiser steps on CPU take a second.
TINY_TRAINING = {"max_input_tokens": 48, "max_target_tokens": 48, "batch_size": 2, "gradient_accumulation_steps": 1,
                 "logging_steps": 1, "eval_steps": 0}


@pytest.fixture(scope="session")
def pairs(ectsum_val) -> list[dict]:
    """Eight real ECTSum validation pairs, shortest transcripts first (deterministic)."""
    return sorted(ectsum_val, key=lambda r: (len(r["transcript"].split()), r["id"]))[:8]


@pytest.fixture(scope="session")
def pairs_file(pairs, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ectsum") / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in pairs), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def generator_config() -> Callable[..., GenerateTrainConfig]:
    """``generator_config(pairs_file, out, model, **overrides)``: a few steps of training on the pairs."""

    def make(pairs_file: Path, out: Path, model: Path, **overrides) -> GenerateTrainConfig:
        settings = {"train": str(pairs_file), "out": str(out), "model": str(model), "input_field": "transcript",
                    "target_field": "summary", "val_fraction": 0.25, "learning_rate": 1e-3, "max_steps": 4,
                    "save_steps": 2, **TINY_TRAINING}
        settings.update(overrides)
        return GenerateTrainConfig(**settings)

    return make


@pytest.fixture(scope="session")
def gpt2_run(tiny_gpt2_dir, pairs_file, generator_config, tmp_path_factory) -> Path:
    """The tiny GPT-2 fully fine-tuned for 4 steps on six real pairs (two held out)."""
    out = tmp_path_factory.mktemp("runs") / "gpt2"
    assert train_generator(generator_config(pairs_file, out, tiny_gpt2_dir), command="test") == out
    return out


@pytest.fixture(scope="session")
def weighted_copy() -> Callable[..., str]:
    """``weighted_copy(rows, path, weight)``: ``rows`` written to ``path`` as JSON lines, each with a
    loss weight ``w = weight(row)``; returns the path."""

    def write(rows: list[dict], path: Path, weight: Callable[[dict], object]) -> str:
        path.write_text("".join(json.dumps({**r, "w": weight(r)}) + "\n" for r in rows))
        return str(path)

    return write
