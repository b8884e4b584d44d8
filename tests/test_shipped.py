"""The classifiers shipped with the package (assistant/shipped.py, assistant/shipped_runs/): each
loads and scores real held-out texts above a floor a broken or swapped artifact would miss; they
are the defaults; a user's run or ``zero_shot`` replaces them; a damaged file is an error that
names it, never a silent fall-back to zero-shot."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import assistant.shipped as shipped_module
from assistant import Assistant
from assistant.classifiers import FineTunedClassifier
from assistant.errors import ModelLoadError
from assistant.models import DEFAULT_ENCODER, ENCODER, resolve_model, weights_fingerprint
from assistant.prompts import load_label_set
from assistant.runs import RUN_FILE, read_run
from assistant.shipped import SHIPPED_DIR, SHIPPED_FILES, shipped_runs
from finetune.recipes import prepare_sentiment, prepare_unfair_tos

pytestmark = pytest.mark.slow

PIPELINES = ("contract-clause", "sentiment", "unfair-tos")
#: All shipped classifier files together stay this small (they live in git).
SIZE_LIMIT = 20_000_000


def _sample(rows: list[dict], n: int, seed: int = 0) -> list[dict]:
    import random

    return random.Random(seed).sample(rows, min(n, len(rows)))


@pytest.fixture(scope="module")
def runs() -> dict[str, Path]:
    found = shipped_runs()
    assert sorted(found) == list(PIPELINES), f"shipped classifiers: {sorted(found)}"
    return found


@pytest.fixture(scope="module")
def held_out(tmp_path_factory, shared_data) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("held-out")
    return {**prepare_sentiment(shared_data, folder), **prepare_unfair_tos(shared_data, folder)}


def test_shipped_runs_are_compact_and_name_the_installed_base(runs):
    base = resolve_model(DEFAULT_ENCODER, ENCODER)
    total = 0
    for task, run in runs.items():
        info = read_run(run)
        assert info.task == task and info.base_model == DEFAULT_ENCODER
        assert info.base_fingerprint == weights_fingerprint(base), f"{task} was trained on other base weights"
        names = {p.name for p in run.iterdir()}
        assert names <= set(SHIPPED_FILES) and {RUN_FILE, "README.md"} <= names
        assert not any(n.endswith((".bin", ".pt", ".pkl", ".pickle")) for n in names), "safetensors only"
        card = (run / "README.md").read_text()
        for words in ("## Base model", "## Data", "## Command", "## Metrics", "licence", "hardware", "date"):
            assert words in card, f"{task} card lacks {words!r}"
        total += sum((run / n).stat().st_size for n in names)
    assert total < SIZE_LIMIT, f"shipped classifiers take {total / 1e6:.1f} MB"


def test_shipped_labels_match_the_task_label_sets(runs):
    """Every label a shipped classifier gives is one of its task's label set (CUAD's training
    contracts lack two of its 41 categories, so that run knows 39)."""
    for task, run in runs.items():
        labels, names = read_run(run).labels, load_label_set(task).names
        assert set(labels) <= set(names) and len(labels) >= len(names) - 2, task


def _accuracy(clf: FineTunedClassifier, rows: list[dict]) -> float:
    probs = clf.predict_scores([r["text"] for r in rows])
    return sum(clf.labels[int(i)] == r["label"] for i, r in zip(probs.argmax(1), rows, strict=True)) / len(rows)


def test_sentiment_on_held_out_news_sentences_and_tweets(runs, held_out, read_jsonl):
    clf = FineTunedClassifier(runs["sentiment"], device="cpu")
    # 400 of the 844 held-out all-agree sentences: the shipped model 0.959 on all 844 in bfloat16, 0.955 in int8
    # (2026-12-07), zero-shot about 0.72
    assert _accuracy(clf, _sample(read_jsonl(held_out["fpb-allagree-heldout"]), 400)) >= 0.92
    # 400 held-out tweets: the shipped model 0.876 on all 1431 (bfloat16 and int8), zero-shot about 0.48
    assert _accuracy(clf, _sample(read_jsonl(held_out["tweets-heldout"]), 400)) >= 0.85


def test_the_sentiment_models_text_head_is_read_as_trained(runs, held_out, read_jsonl):
    """The TF-IDF head mixed into the adapter's scores (40% of each, finetune/text_mix.py) classifies
    held-out tweets well on its own (0.835 of these 400, 2026-12-07): a head read with another
    vocabulary, or another task's weights, would not."""
    import dataclasses

    info = read_run(runs["sentiment"])
    assert info.text_mix == 0.4
    alone = FineTunedClassifier(dataclasses.replace(info, text_mix=1.0), device="cpu")
    assert _accuracy(alone, _sample(read_jsonl(held_out["tweets-heldout"]), 400)) >= 0.78


def _micro_f1(clf: FineTunedClassifier, rows: list[dict], field: str) -> float:
    from assistant.classifiers import chosen_labels

    probs = clf.predict_scores([r["text"] for r in rows]).numpy()
    hits = chosen_labels(probs, [clf.thresholds[n] for n in clf.labels], clf.min_labels)
    tp = fp = fn = 0
    for row, mask in zip(rows, hits, strict=True):
        predicted = {clf.labels[j] for j in range(len(clf.labels)) if mask[j]}
        gold = set(row[field])
        tp, fp, fn = tp + len(predicted & gold), fp + len(predicted - gold), fn + len(gold - predicted)
    return 2 * tp / max(1, 2 * tp + fp + fn)


def test_contract_clauses_on_cuad_val(runs, data_file, read_jsonl):
    clf = FineTunedClassifier(runs["contract-clause"], device="cpu")
    rows = _sample(read_jsonl(data_file("legal", "cuad", "val.jsonl")), 250)
    assert _micro_f1(clf, rows, "labels") >= 0.75  # zero-shot about 0.5


def test_unfair_terms_on_claudette(runs, held_out, read_jsonl):
    """The shipped model is refitted on all 40 documents, so these sentences were in its training
    data: the floor catches a broken or swapped artifact, the held-out figure is in its card."""
    clf = FineTunedClassifier(runs["unfair-tos"], device="cpu")
    rows = read_jsonl(held_out["heldout-docs"])
    unfair = [r for r in rows if r["unfair_categories"]]
    rows = unfair + _sample([r for r in rows if not r["unfair_categories"]], 400)
    assert _micro_f1(clf, rows, "unfair_categories") >= 0.75
    fair = clf.predict_scores(["Welcome to our website. Please read these terms."]).numpy()
    assert (fair < [clf.thresholds[n] for n in clf.labels]).all(), "a fair sentence gets no category"


def test_shipped_classifiers_are_the_defaults(runs):
    a = Assistant(device="cpu")
    assert {t: a.engine.classifier(t).path for t in PIPELINES} == runs
    assert set(PIPELINES) <= set(a.classification_tasks())
    result = a.classify("Net sales doubled to EUR 40 mn.", task="sentiment")
    assert result.label == "positive" and result.scores[0].score > 0.8
    assert a.classify("$TSLA cut to underweight at Barclays", task="sentiment").label == "negative"
    clause = a.classify("This Agreement shall be governed by the laws of the State of New York.",
                        task="contract-clause")
    assert "Governing Law" in clause.labels
    tos = a.classify("We may terminate your account at any time, for any reason, without notice.", task="unfair-tos")
    assert "Unilateral termination" in tos.labels
    zero = a.classify("Net sales doubled to EUR 40 mn.", task="sentiment", zero_shot=True)
    assert zero.task == "sentiment" and [s.score for s in zero.scores] != [s.score for s in result.scores]
    rows = {r["task"]: r for r in a.models() if r["role"] == "classifier" and r.get("configured")}
    assert set(rows) == set(PIPELINES) and all(rows[t]["location"] == str(runs[t]) for t in PIPELINES)
    assert rows["sentiment"]["text_mix"] == 0.4 and rows["unfair-tos"]["text_mix"] == 0  # `finassist models` says so


def test_another_encoder_or_a_users_run_replaces_the_shipped_ones(tiny_bert_dir, tiny_gpt2_dir, sentiment_run):
    other = Assistant(generator=tiny_gpt2_dir, encoder=tiny_bert_dir, device="cpu")
    assert not other.engine.classifiers, "another encoder classifies zero-shot with it"
    mine = Assistant(device="cpu", classifiers={"sentiment": sentiment_run})
    assert mine.engine.classifier("sentiment").path == sentiment_run
    assert mine.engine.classifier("unfair-tos").path.parent == SHIPPED_DIR
    assert not Assistant(device="cpu", shipped_classifiers=False).engine.classifiers


def _damaged_copy(tmp_path: Path, monkeypatch, task: str) -> Path:
    copy = tmp_path / "shipped_runs"
    shutil.copytree(SHIPPED_DIR, copy)
    monkeypatch.setattr(shipped_module, "SHIPPED_DIR", copy)
    return copy / task


def test_a_corrupt_shipped_run_file_is_named_when_its_task_is_used(tmp_path, monkeypatch):
    damaged = _damaged_copy(tmp_path, monkeypatch, "sentiment")
    (damaged / RUN_FILE).write_text("{truncated")
    a = Assistant(device="cpu")  # the other tasks keep working
    with pytest.raises(ModelLoadError, match=str(damaged / RUN_FILE)):
        a.classify("Profit rose.", task="sentiment")
    assert a.classify("We may change these terms at any time.", task="unfair-tos").task == "unfair-tos"
    assert a.classify("Profit rose.", task="sentiment", zero_shot=True).task == "sentiment"


@pytest.mark.parametrize("task, name", [("sentiment", "adapter_model.safetensors"),
                                        ("sentiment", "text_head.safetensors"),
                                        ("contract-clause", "head.safetensors"), ("unfair-tos", "chars.json"),
                                        ("unfair-tos", "adapter_model.safetensors")])
def test_a_missing_or_truncated_weights_file_is_named(tmp_path, monkeypatch, task, name):
    damaged = _damaged_copy(tmp_path, monkeypatch, task)
    data = (damaged / name).read_bytes()
    (damaged / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match=name):
        Assistant(device="cpu").classify("Some text.", task=task)
    (damaged / name).unlink()
    with pytest.raises(ModelLoadError, match=name if name != "chars.json" else "chars"):
        Assistant(device="cpu").classify("Some text.", task=task)


def test_swapped_labels_are_refused(tmp_path, monkeypatch):
    damaged = _damaged_copy(tmp_path, monkeypatch, "unfair-tos")
    data = json.loads((damaged / RUN_FILE).read_text())
    data["labels"] = data["labels"][:-1]  # the head has one row more than the run file names
    (damaged / RUN_FILE).write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match="head.safetensors"):
        Assistant(device="cpu").classify("Some text.", task="unfair-tos")


def test_classify_tasks_gives_every_task(runs):
    a = Assistant(device="cpu")
    texts = ["Net sales doubled to EUR 40 mn.", "We may terminate your account at any time without notice."]
    both = a.classify_tasks(texts)
    assert set(PIPELINES) <= set(both) and all(len(both[t]) == 2 for t in PIPELINES)
    assert [r.labels for r in both["sentiment"]] == [r.labels for r in a.classify(texts, task="sentiment")]
    probs = a.engine.classifier("unfair-tos").predict_scores(texts)
    assert torch.allclose(probs, a.engine.classifier("unfair-tos").predict_scores(texts))


def test_zero_shot_evaluation_measures_the_label_descriptions(runs, held_out):
    """``finassist eval classify --model minilm-l6`` scores the label descriptions, not the shipped
    classifier that the same encoder would otherwise serve."""
    from finetune.evaluation.classifier_runner import evaluate_classifier

    data = str(held_out["fpb-allagree-heldout"])
    zero = evaluate_classifier("minilm-l6", data, task="sentiment", limit=120, progress=False)
    tuned = evaluate_classifier(str(runs["sentiment"]), data, limit=120, progress=False)
    assert zero.extra["kind"] == "zero-shot" and tuned.accuracy > zero.accuracy + 0.1
