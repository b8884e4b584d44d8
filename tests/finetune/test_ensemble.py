"""Combining classifier runs (finetune/ensemble.py, ``finassist finetune ensemble``): the shares are the
most accurate split on validation data (ties to the most even), the ensemble is a run directory the
assistant loads like any other, and members that cannot be combined are refused before anything is written."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from assistant.classifiers import FineTunedClassifier
from assistant.errors import InvalidParameterError
from assistant.runs import RUN_FILE, discover_runs, model_bytes, read_run
from finetune.config import EnsembleConfig
from finetune.ensemble import build_ensemble, choose_shares, share_grid


def test_the_share_grid_splits_one_giving_every_member_a_step():
    assert share_grid(2, 0.25) == [(0.25, 0.75), (0.5, 0.5), (0.75, 0.25)]
    assert share_grid(3, 1 / 3) == [(1 / 3, 1 / 3, 1 / 3)]
    grid = share_grid(3, 0.1)
    assert len(grid) == 36 and all(abs(sum(s) - 1) < 1e-9 and min(s) >= 0.1 - 1e-9 for s in grid)


def test_the_most_accurate_split_wins_and_a_tie_goes_to_the_most_even():
    # text 0 (gold 0) is right when a's share is above 3/7, text 1 (gold 1) when it is below 1/9
    a = np.array([[0.9, 0.1], [0.9, 0.1]])
    b = np.array([[0.2, 0.8], [0.45, 0.55]])
    gold = np.array([0, 1])
    shares, tried = choose_shares([a, b], gold, None, 0.05)
    assert shares == (0.5, 0.5) and tried[(0.5, 0.5)] == 0.5
    assert tried[(0.25, 0.75)] == 0.0 and tried[(0.1, 0.9)] == 0.5
    weighted, tried = choose_shares([a, b], gold, np.array([1.0, 3.0]), 0.05)
    assert weighted == (0.1, 0.9) and tried[weighted] == 0.75  # the heavier text decides


@pytest.mark.slow
def test_an_ensemble_is_a_run_scoring_the_share_weighted_average(sentiment_ensemble, sentiment_lora_run,
                                                                 sentiment_head_run, classify_data, read_jsonl):
    info = read_run(sentiment_ensemble)
    assert info.kind == "classifier-ensemble" and info.task == "sentiment"
    assert [m.name for m in info.members] == ["lora", "head"] and abs(sum(m.share for m in info.members) - 1) < 1e-9
    rows = read_jsonl(classify_data["fpb_heldout"])
    texts = [r["sentence"] for r in rows]
    ensemble = FineTunedClassifier(info, device="cpu").predict_scores(texts)
    members = [FineTunedClassifier(path, device="cpu").predict_scores(texts)
               for path in (sentiment_lora_run, sentiment_head_run)]
    expected = sum(m.share * scores for m, scores in zip(info.members, members))
    assert torch.allclose(ensemble, expected, atol=1e-5)
    # the validation figure the run file records is the one its own scores give
    gold = [info.labels.index(r["label"]) for r in rows]
    assert info.metrics["accuracy"] == pytest.approx(float((ensemble.argmax(1).numpy() == gold).mean()))
    assert info.metrics["validation_records"] == len(rows) == 30
    alone = info.metrics["members_alone_accuracy"]  # no weights: plain accuracy, as the shares were chosen
    assert alone["lora"] == pytest.approx(float((members[0].argmax(1).numpy() == gold).mean()))
    card = (sentiment_ensemble / "README.md").read_text()
    assert "## Members" in card and "`lora`" in card and "finassist finetune ensemble" in card
    assert (sentiment_ensemble / "eval" / "shares.png").stat().st_size > 1000
    # a copy of each member's model; the ensemble's size counts them and the run files they load by
    assert model_bytes(sentiment_ensemble / "lora") == model_bytes(sentiment_lora_run)
    assert model_bytes(sentiment_ensemble) == sum(model_bytes(sentiment_ensemble / m.name)
                                                  + (sentiment_ensemble / m.name / RUN_FILE).stat().st_size
                                                  for m in info.members)
    listed = discover_runs(sentiment_ensemble.parent)
    assert [r.path for r in listed] == [sentiment_ensemble]  # its members are part of it, not runs of their own
    assert [m["name"] for m in info.describe()["members"]] == ["lora", "head"]
    # the data it was made from: the validation file, then each member's own data under its name
    assert info.data[0]["source"] == str(classify_data["fpb_heldout"]) and info.data[0]["records"] == 30
    members_data = [(f"member {name}: {d.get('role', 'train')}", d["source"])
                    for name, path in (("lora", sentiment_lora_run), ("head", sentiment_head_run))
                    for d in read_run(path).data]
    assert members_data and [(d["role"], d["source"]) for d in info.data[1:]] == members_data


@pytest.mark.slow
def test_members_that_cannot_be_combined_are_refused(sentiment_lora_run, unfair_run, classify_data, tmp_path):
    def build(members: str, out=None):
        return build_ensemble(EnsembleConfig(members=members, val=str(classify_data["fpb_heldout"]),
                                             out=str(out or tmp_path / "ens"), text_field="sentence",
                                             device="cpu", progress=False))

    with pytest.raises(InvalidParameterError, match="at least 2"):
        build(str(sentiment_lora_run))
    with pytest.raises(InvalidParameterError, match="same name"):
        build(f"{sentiment_lora_run},{sentiment_lora_run}")
    with pytest.raises(InvalidParameterError, match="multi-label"):
        build(f"a={sentiment_lora_run},b={unfair_run}")
    with pytest.raises(InvalidParameterError, match="would overwrite"):
        build(f"a={sentiment_lora_run},b={sentiment_lora_run}", out=sentiment_lora_run)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(InvalidParameterError, match="not an ensemble run"):
        build(f"a={sentiment_lora_run},b={sentiment_lora_run}", out=tmp_path / "taken")
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "ens").exists()


def test_the_config_names_members_by_folder_or_by_name():
    config = EnsembleConfig(members="runs/a/lora, head=runs/b", val="v.jsonl", out="o")
    assert config.member_specs() == [("lora", "runs/a/lora"), ("head", "runs/b")]
    config.validate()
    with pytest.raises(InvalidParameterError, match="share_step"):
        EnsembleConfig(members="a,b,c", val="v", out="o", share_step=0.5).validate()
    with pytest.raises(InvalidParameterError, match="subfolders"):
        EnsembleConfig(members="../x=a,b", val="v", out="o").validate()


@pytest.mark.slow
def test_the_command_line_builds_one(sentiment_lora_run, sentiment_head_run, classify_data, tmp_path):
    from finetune.cli import main

    out = tmp_path / "cli-ensemble"
    assert main(["ensemble", "--members", f"lora={sentiment_lora_run},head={sentiment_head_run}",
                 "--val", str(classify_data["fpb_heldout"]), "--text-field", "sentence", "--out", str(out),
                 "--share-step", "0.25", "--device", "cpu", "--no-progress"]) == 0
    run = json.loads((out / RUN_FILE).read_text())
    assert run["kind"] == "classifier-ensemble" and len(run["metrics"]["share_scores"]) == 3
    assert "--share-step 0.25" in run["command"]
