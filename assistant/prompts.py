"""Prompt templates and label sets, read from the ``prompts/`` data files (TOML).

Wording lives in data so it can be reviewed and changed without touching code.
In a source checkout (or editable install) the files are read from the
repository's ``prompts/``; a wheel carries the same files as
``assistant/prompt_files``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .errors import UnknownTaskError


def prompts_root() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "prompts", here / "prompt_files"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("prompt files not found: the installation is incomplete")


@lru_cache(maxsize=None)
def load_prompt(name: str) -> dict:
    """A prompt file, e.g. ``load_prompt("summarize")`` reads ``prompts/summarize.toml``."""
    path = prompts_root() / f"{name}.toml"
    with path.open("rb") as fh:
        return tomllib.load(fh)


@dataclass(frozen=True)
class Label:
    name: str
    #: One or more descriptions; the label's embedding is their normalised mean.
    descriptions: tuple[str, ...]


@dataclass(frozen=True)
class LabelSet:
    """A zero-shot classification task: labels with descriptions, and how to score them."""

    task: str
    title: str
    multi_label: bool
    labels: tuple[Label, ...]
    #: Softmax temperature over cosine similarities (single-label).
    temperature: float = 0.05
    #: Cosine similarity a label needs to be predicted (multi-label).
    threshold: float = 0.3
    #: Multi-label: also within this much of the best label's similarity (None: threshold only).
    #: Zero-shot similarities of unrelated labels sit close together, so an absolute
    #: threshold alone predicts far too many labels.
    margin: float | None = None
    #: Prefix put before every description when it is embedded.
    description_prefix: str = ""
    attribution: str = ""
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def names(self) -> list[str]:
        return [label.name for label in self.labels]


def available_label_sets() -> list[str]:
    return sorted(p.stem for p in (prompts_root() / "labels").glob("*.toml"))


@lru_cache(maxsize=None)
def load_label_set(task: str) -> LabelSet:
    available = available_label_sets()
    if task not in available:  # also keeps names like "../ask" from reaching other files
        raise UnknownTaskError(f"unknown classification task {task!r}; available: {', '.join(available)}")
    with (prompts_root() / "labels" / f"{task}.toml").open("rb") as fh:
        data = tomllib.load(fh)
    if not data.get("labels"):
        raise UnknownTaskError(f"label set {task!r} defines no labels")
    labels = tuple(
        Label(name=item["name"], descriptions=tuple(item["descriptions"])) for item in data.pop("labels")
    )
    known = {"title", "multi_label", "temperature", "threshold", "margin", "description_prefix", "attribution"}
    return LabelSet(
        task=task,
        labels=labels,
        **{k: v for k, v in data.items() if k in known},
        extra={k: v for k, v in data.items() if k not in known},
    )
