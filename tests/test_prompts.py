"""Prompt files and label sets (assistant/prompts.py + prompts/*.toml)."""

from __future__ import annotations

import csv
import re
import string
from pathlib import Path

import pytest

from assistant.errors import UnknownTaskError
from assistant.prompts import LabelSet, available_label_sets, load_label_set, load_prompt, prompts_root
from assistant.tasks.ask import ROLES
from assistant.tasks.summarize import STYLES


def _placeholders(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field}


def test_prompts_are_read_from_the_repository_folder():
    root = prompts_root()
    assert root == Path(__file__).resolve().parents[1] / "prompts"  # source checkout / editable install
    assert (root / "summarize.toml").is_file()
    assert (root / "labels").is_dir()


def test_both_label_sets_are_available():
    assert {"sentiment", "contract-clause"} <= set(available_label_sets())


@pytest.mark.parametrize("task", available_label_sets())
def test_every_label_set_loads_and_is_well_formed(task):
    ls = load_label_set(task)
    assert isinstance(ls, LabelSet)
    assert ls.task == task and ls.title
    assert isinstance(ls.multi_label, bool)
    assert len(ls.labels) >= 2
    assert len(set(ls.names)) == len(ls.names), "label names must be unique"
    for label in ls.labels:
        assert label.name.strip() == label.name and label.name
        assert label.descriptions and all(isinstance(d, str) and d.strip() for d in label.descriptions)
    assert ls.temperature > 0
    assert -1.0 < ls.threshold < 1.0
    assert ls.margin is None or 0.0 < ls.margin < 2.0
    assert ls.extra == {}, f"unrecognised keys in labels/{task}.toml: {sorted(ls.extra)}"


def test_sentiment_labels_are_the_phrasebank_labels(phrasebank):
    ls = load_label_set("sentiment")
    assert not ls.multi_label
    assert set(ls.names) == {r["label"] for r in phrasebank} == {"positive", "negative", "neutral"}


def test_contract_clause_has_the_41_cuad_categories(data_file, read_jsonl):
    path = data_file("legal", "cuad", "category_descriptions.csv")
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = [row for row in csv.reader(fh) if row]
    header, body = rows[0], rows[1:]
    assert header[0].startswith("Category")
    cuad = [re.sub(r"^Category:\s*", "", row[0]).strip() for row in body]
    ls = load_label_set("contract-clause")
    assert ls.multi_label
    assert len(ls.names) == 41 == len(cuad)
    assert set(ls.names) == set(cuad)
    # every label used in the CUAD validation split is one the task can predict
    val = read_jsonl(data_file("legal", "cuad", "val.jsonl"))
    assert {label for r in val for label in r["labels"]} <= set(ls.names)


@pytest.mark.parametrize("task", ["nope", "Sentiment", "sentiment.toml", ""])
def test_unknown_label_set_is_an_unknown_task(task):
    with pytest.raises(UnknownTaskError) as info:
        load_label_set(task)
    assert "sentiment" in str(info.value)  # the message lists what is available


@pytest.mark.parametrize("task", ["../ask", "../summarize"])
def test_task_names_cannot_reach_other_prompt_files(task):
    """A task name is a label-set name, not a path: other TOML files must not be read as label sets."""
    with pytest.raises(UnknownTaskError):
        load_label_set(task)


def test_summarize_prompts_cover_every_style():
    cfg = load_prompt("summarize")
    assert cfg["system"].strip()
    assert set(cfg["styles"]) == set(STYLES)
    for style in STYLES:
        s = cfg["styles"][style]
        assert _placeholders(s["instruction"]) == {"text", "max_words"}
        assert isinstance(s["default_max_words"], int) and 3 <= s["default_max_words"] <= 1000
    assert _placeholders(cfg["map"]["instruction"]) == {"part", "parts", "text"}
    assert cfg["map"]["max_new_tokens"] > 0
    assert cfg["chunking"]["chunk_tokens"] > 0
    assert 0.5 <= cfg["generation"]["repetition_penalty"] <= 2.0


def test_plain_chat_template_covers_every_role():
    plain = load_prompt("chat")["plain_template"]
    assert set(plain["roles"]) == set(ROLES)
    assert _placeholders(plain["turn"]) == {"role", "content"}
    assert _placeholders(plain["generation_prompt"]) == {"role"}
    assert plain["stop"] and all(plain["stop"])


def test_ask_prompt_has_system_notice_and_valid_patterns():
    cfg = load_prompt("ask")
    assert cfg["system"].strip() and cfg["notice"].strip()
    assert cfg["advice_patterns"]
    for pattern in cfg["advice_patterns"]:
        re.compile(pattern)
