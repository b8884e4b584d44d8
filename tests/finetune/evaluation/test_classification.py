"""The classification evaluator and threshold tuning (finetune/evaluation/classification.py): metrics
computed by hand, bad inputs, and the report files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from finetune.evaluation import ClassificationEvaluator, apply_thresholds, tune_thresholds, weighted_metrics


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SENTIMENT = ["negative", "neutral", "positive"]

# ------------------------------------------------------------- single-label
#
# true:  neg neg neu neu pos pos
# pred:  neg neu neu neu pos neg
#
# confusion (rows true, cols pred):  neg [1 1 0]   neu [0 2 0]   pos [1 0 1]
# accuracy = 4/6
# negative: TP 1, FP 1, FN 1 -> P 1/2, R 1/2, F1 1/2
# neutral:  TP 2, FP 1, FN 0 -> P 2/3, R 1,   F1 4/5
# positive: TP 1, FP 0, FN 1 -> P 1,   R 1/2, F1 2/3
# macro-F1 = (1/2 + 4/5 + 2/3) / 3 = 59/90; micro-F1 = accuracy = 4/6
# ignoring "neutral": micro over neg+pos: TP 2, FP 1, FN 2 -> P 2/3, R 1/2, F1 4/7; macro (1/2 + 2/3)/2 = 7/12
Y_TRUE = ["negative", "negative", "neutral", "neutral", "positive", "positive"]
Y_PRED = ["negative", "neutral", "neutral", "neutral", "positive", "negative"]


def test_single_label_hand_computed():
    r = ClassificationEvaluator(SENTIMENT, task="sentiment")(Y_TRUE, Y_PRED, model="m")
    assert r.n == 6 and not r.multi_label and r.labels == SENTIMENT
    assert r.accuracy == pytest.approx(4 / 6)
    assert r.micro_f1 == pytest.approx(4 / 6)
    assert r.macro_f1 == pytest.approx(59 / 90)
    assert r.confusion == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert r.per_label["neutral"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert r.per_label["positive"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    assert r.extra["model"] == "m" and r.extra["unknown_predictions"] == 0


def test_ignore_labels_leave_the_averages_but_not_the_table():
    r = ClassificationEvaluator(SENTIMENT, ignore_labels=["neutral"])(Y_TRUE, Y_PRED)
    assert r.micro_f1 == pytest.approx(4 / 7)
    assert r.macro_f1 == pytest.approx(7 / 12)
    assert r.accuracy == pytest.approx(4 / 6)
    assert set(r.per_label) == set(SENTIMENT)
    assert "neutral (ignored)" in r.to_markdown()


def test_unknown_prediction_is_an_error_not_a_crash():
    # Item 0 was right ("negative"); predicting "bullish" (not a label) makes it wrong: 3/6.
    pred = ["bullish", *Y_PRED[1:]]
    r = ClassificationEvaluator(SENTIMENT)(Y_TRUE, pred)
    assert r.accuracy == pytest.approx(3 / 6)
    assert r.per_label["negative"]["recall"] == pytest.approx(0.0)  # both negatives missed now
    assert r.extra["unknown_predictions"] == 1
    assert sum(map(sum, r.confusion)) == 5  # the unknown prediction has no column


# -------------------------------------------------------------- multi-label
#
# true:  {a}  {a,b}  {}   {c}
# pred:  {a}  {b}    {}   {c,a}
# a: TP 1, FP 1 (item 3), FN 1 (item 1) -> F1 1/2;  b: TP 1 -> F1 1;  c: TP 1 -> F1 1
# micro: TP 3, FP 1, FN 1 -> F1 3/4;  macro (1/2 + 1 + 1)/3 = 5/6;  exact match: items 0 and 2 -> 2/4
ML_TRUE = [["a"], ["a", "b"], [], ["c"]]
ML_PRED = [["a"], ["b"], [], {"c", "a"}]


def test_multi_label_hand_computed():
    r = ClassificationEvaluator(["a", "b", "c"], multi_label=True, task="clauses")(ML_TRUE, ML_PRED)
    assert r.multi_label and r.confusion is None
    assert r.accuracy == pytest.approx(0.5)
    assert r.micro_f1 == pytest.approx(0.75)
    assert r.macro_f1 == pytest.approx(5 / 6)
    assert r.per_label["a"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})


def test_multi_label_unknown_and_ignored_labels():
    # Item 2 predicts an unknown label: exact match drops to 1/4, per-label scores are unchanged.
    pred = [["a"], ["b"], ["made-up"], ["c", "a"]]
    r = ClassificationEvaluator(["a", "b", "c"], multi_label=True)(ML_TRUE, pred)
    assert r.accuracy == pytest.approx(0.25)
    assert r.micro_f1 == pytest.approx(0.75)
    assert r.extra["unknown_predictions"] == 1
    # Ignoring "a": micro over b and c: TP 2, FP 0, FN 0 -> 1.0
    r = ClassificationEvaluator(["a", "b", "c"], multi_label=True, ignore_labels=["a"])(ML_TRUE, ML_PRED)
    assert r.micro_f1 == pytest.approx(1.0) and r.macro_f1 == pytest.approx(1.0)


@pytest.mark.parametrize(
    "kwargs, y_true, y_pred, match",
    [
        ({}, ["negative"], ["negative", "neutral"], "1 items but y_pred has 2"),
        ({}, [], [], "empty"),
        ({}, ["bearish"], ["negative"], "outside"),
        ({}, [["negative"]], ["negative"], "label string"),
        ({"multi_label": True}, ["negative"], [["negative"]], "list or set"),
        ({"multi_label": True}, [["nope"]], [["negative"]], "outside"),
    ],
)
def test_classification_bad_inputs(kwargs, y_true, y_pred, match):
    with pytest.raises(ValueError, match=match):
        ClassificationEvaluator(SENTIMENT, **kwargs)(y_true, y_pred)


def test_classification_bad_label_sets():
    with pytest.raises(ValueError, match="duplicates"):
        ClassificationEvaluator(["a", "a"])
    with pytest.raises(ValueError, match="not in labels"):
        ClassificationEvaluator(["a", "b"], ignore_labels=["z"])
    with pytest.raises(ValueError, match="no label"):
        ClassificationEvaluator(["a"], ignore_labels=["a"])


# ---------------------------------------------------------------- thresholds
#
# a: positives score 0.62, 0.70, 0.90; negatives 0.10, 0.58 -> only t in (0.58, 0.62] is perfect: grid point 0.60
# b: positives 0.8, negatives 0.2 -> any t in (0.2, 0.8] is perfect
# c: no positive example -> the default
TH_LABELS = ["a", "b", "c"]
TH_TRUE = [["a", "b"], ["a"], ["a", "b"], [], ["b"]]
TH_SCORES = np.array([
    [0.62, 0.8, 0.3],
    [0.70, 0.2, 0.1],
    [0.90, 0.8, 0.9],
    [0.10, 0.2, 0.0],
    [0.58, 0.8, 0.2],
])


def test_tune_thresholds_recovers_the_separating_threshold():
    th = tune_thresholds(TH_TRUE, TH_SCORES, TH_LABELS, default=0.5)
    assert th["a"] == pytest.approx(0.60)
    assert 0.2 < th["b"] <= 0.8
    assert th["c"] == 0.5
    assert apply_thresholds(TH_SCORES, TH_LABELS, th) == [["a", "b"], ["a"], ["a", "b", "c"], [], ["b"]]
    # One global threshold of 0.5 would let item 4's 0.58 through as "a".
    assert apply_thresholds(TH_SCORES, TH_LABELS, 0.5)[4] == ["a", "b"]


def test_min_labels_always_gives_the_best_scoring_labels():
    th = {"a": 0.95, "b": 0.5, "c": 0.5}
    assert apply_thresholds(TH_SCORES, TH_LABELS, th) == [["b"], [], ["b", "c"], [], ["b"]]
    # Each text's best label is always given, even below its threshold (row 2: "a", 0.90 < 0.95; ties go to
    # the first label); the thresholds add the others (row 2: "b" and "c"). Row 3 gets "b" (0.2 beats 0.1, 0.0).
    assert apply_thresholds(TH_SCORES, TH_LABELS, th, min_labels=1) == [["b"], ["a"], ["a", "b", "c"], ["b"], ["b"]]
    # The best two at least, and any other over its threshold.
    assert apply_thresholds(TH_SCORES, TH_LABELS, th, min_labels=2) == [
        ["a", "b"], ["a", "b"], ["a", "b", "c"], ["a", "b"], ["a", "b"]]
    assert apply_thresholds(TH_SCORES, TH_LABELS, th, min_labels=5)[0] == TH_LABELS


def test_tune_thresholds_with_a_floor_shares_one_threshold_for_the_labels_beside_the_best():
    """Every text's best label is right; its true second labels score 0.7, the wrong ones 0.4 and 0.3: a
    shared threshold in (0.4, 0.7] gives the whole decision a perfect micro-F1 (grid 0.45 to 0.70, middle
    0.60), though label "c" alone, never a second label, would tune its own threshold elsewhere."""
    labels = ["a", "b", "c"]
    gold = [["a", "b"], ["b"], ["a", "c"], ["c"], ["a"]]
    scores = np.array([[0.9, 0.7, 0.4], [0.3, 0.8, 0.4], [0.7, 0.1, 0.95], [0.2, 0.4, 0.6], [0.55, 0.1, 0.3]])
    th = tune_thresholds(gold, scores, labels, min_labels=1)
    assert th == {"a": pytest.approx(0.60), "b": pytest.approx(0.60), "c": pytest.approx(0.60)}
    assert apply_thresholds(scores, labels, th, min_labels=1) == gold
    # label by label, "c" (positives 0.95, 0.6) would need a cut at or below 0.6, "a" one at or below 0.55
    assert tune_thresholds(gold, scores, labels)["a"] <= 0.55


def test_threshold_bad_inputs():
    with pytest.raises(ValueError, match="shape"):
        tune_thresholds(TH_TRUE, TH_SCORES[:, :2], TH_LABELS)
    with pytest.raises(ValueError, match="rows"):
        tune_thresholds(TH_TRUE[:3], TH_SCORES, TH_LABELS)
    with pytest.raises(ValueError, match="no value"):
        apply_thresholds(TH_SCORES, TH_LABELS, {"a": 0.5})


# -------------------------------------------------------------------- reports


def test_classification_report_save(tmp_path):
    single = ClassificationEvaluator(SENTIMENT, task="sentiment")(Y_TRUE, Y_PRED, seconds=1.5)
    paths = single.save(tmp_path / "out", "sentiment")
    assert sorted(p.name for p in paths.values()) == ["sentiment-confusion.png", "sentiment.json", "sentiment.md"]
    assert paths["png"].read_bytes()[:8] == PNG_MAGIC
    assert json.loads(paths["json"].read_text()) == single.to_dict()
    md = paths["md"].read_text()
    assert "| macro-F1 | 0.6556 |" in md and "| neutral | 0 | 2 | 0 |" in md

    multi = ClassificationEvaluator(["a", "b", "c"], multi_label=True)(ML_TRUE, ML_PRED,
                                                                      thresholds={"a": 0.4, "b": 0.5, "c": 0.6})
    paths = multi.save(tmp_path / "out", "clauses")
    assert paths["png"].name == "clauses-f1.png" and paths["png"].read_bytes()[:8] == PNG_MAGIC
    assert "| threshold |" in paths["md"].read_text()
    assert not list((tmp_path / "out").glob(".*.tmp"))  # atomic writes leave no temp files


def test_weighted_validation_metrics():
    single = weighted_metrics(["a", "b", "a"], ["a", "a", "b"], ["a", "b"], False, [2.0, 1.0, 0.0])
    assert single["weighted_accuracy"] == pytest.approx(2 / 3)
    # a: tp 2, fp 1, fn 0 -> F1 0.8; b: tp 0 -> 0
    assert single["weighted_macro_f1"] == pytest.approx(0.4)
    multi = weighted_metrics([["x"], ["x", "y"], []], [["x"], ["x"], ["y"]], ["x", "y"], True, [1.0, 0.0, 1.0])
    assert multi["weighted_accuracy"] == pytest.approx(0.5)  # the weight-0 miss does not count
