"""The run directory format: written by finetune/runs.py, read by assistant/runs.py (which must
not import training code)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from assistant.errors import ModelLoadError, ModelNotFoundError
from assistant.runs import RUN_FILE, discover_runs, is_run, model_bytes, read_run
from finetune.runs import add_metrics, config_command, licence_of, write_run


def _write(out, **overrides):
    kwargs = {
        "kind": "classifier",
        "task": "unfair-tos",
        "base_model": "minilm-l6",
        "config": {"max_length": 128, "stride": 32},
        "data": [{"source": "../shared/data/legal/claudette_tos/train.jsonl", "records": 13567, "role": "train"},
                 {"source": "mine.csv", "records": 10, "role": "validation"}],
        "metrics": {"macro_f1": 0.71, "micro_f1": 0.8, "per_split": {"n": 3}},
        "command": "finassist finetune classify --task unfair-tos --train x.jsonl --out runs/u --multi-label",
        "labels": ["Arbitration", "Jurisdiction"],
        "multi_label": True,
        "thresholds": {"Arbitration": 0.35, "Jurisdiction": 0.6},
        "seconds": 12.34,
    }
    kwargs.update(overrides)
    return write_run(out, **kwargs)


def test_write_then_read(tmp_path):
    run_file = _write(tmp_path / "u")
    assert run_file == tmp_path / "u" / RUN_FILE and is_run(tmp_path / "u") and is_run(run_file)
    info = read_run(tmp_path / "u")
    assert (info.kind, info.task, info.base_model, info.multi_label) == ("classifier", "unfair-tos", "minilm-l6", True)
    assert info.labels == ["Arbitration", "Jurisdiction"] and info.thresholds["Jurisdiction"] == 0.6
    assert info.config["max_length"] == 128 and info.path == tmp_path / "u"
    assert info.headline == ("macro_f1", 0.71)
    data = json.loads(run_file.read_text())
    assert [d["licence"] for d in data["data"]] == ["CC BY 4.0", "unknown (check the data's source)"]
    assert data["seconds"] == 12.3 and data["created"] and data["machine"]["python"]


def test_model_card(tmp_path):
    _write(tmp_path / "u", license="apache-2.0")
    card = (tmp_path / "u" / "README.md").read_text()
    front = card.split("---\n")[1]
    assert 'base_model: "sentence-transformers/all-MiniLM-L6-v2"' in front  # the preset's hub id
    assert 'license: "apache-2.0"' in front and '"finassist"' in front
    assert '"../shared/data/legal/claudette_tos/train.jsonl"' in front
    assert "minilm-l6" in card and "CC BY 4.0" in card
    assert "finassist finetune classify --task unfair-tos" in card
    assert "| macro_f1 | 0.7100 |" in card and "| per_split.n | 3 |" in card
    assert "Jurisdiction (threshold 0.60)" in card and "hardware:" in card
    assert "Intended use and limitations" in card


def test_min_labels_round_trip_and_card(tmp_path):
    assert read_run(_write(tmp_path / "none").parent).min_labels == 0
    _write(tmp_path / "u", min_labels=1)
    assert read_run(tmp_path / "u").min_labels == 1
    assert "the best label, and every other label over its threshold" in (tmp_path / "u" / "README.md").read_text()
    _write(tmp_path / "two", min_labels=2)
    assert "the best 2 labels, and every other label over its threshold" in (tmp_path / "two" / "README.md").read_text()
    data = json.loads((tmp_path / "u" / RUN_FILE).read_text())
    for bad in (-1, 1.5, "1", True):
        (tmp_path / "u" / RUN_FILE).write_text(json.dumps({**data, "min_labels": bad}))
        with pytest.raises(ModelLoadError, match="min_labels"):
            read_run(tmp_path / "u")


def test_generator_run_needs_no_labels(tmp_path):
    _write(tmp_path / "g", kind="generator", task="summarize", labels=None, thresholds=None, multi_label=False,
           metrics={"rougeL": 0.3})
    info = read_run(tmp_path / "g")
    assert info.kind == "generator" and not info.is_classifier and info.headline == ("rougeL", 0.3)
    with pytest.raises(ValueError, match="kind"):
        _write(tmp_path / "x", kind="regressor")


def test_read_errors(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        read_run(tmp_path / "missing")
    with pytest.raises(ModelNotFoundError, match=RUN_FILE):
        read_run(tmp_path)
    (tmp_path / RUN_FILE).write_text("[1, 2")
    with pytest.raises(ModelLoadError, match="JSON"):
        read_run(tmp_path)
    (tmp_path / RUN_FILE).write_text(json.dumps({"kind": "classifier", "task": "t"}))
    with pytest.raises(ModelLoadError, match="base_model"):
        read_run(tmp_path)
    (tmp_path / RUN_FILE).write_text(json.dumps({"kind": "classifier", "task": "t", "base_model": "m"}))
    with pytest.raises(ModelLoadError, match="label"):
        read_run(tmp_path)


def test_discover_runs(tmp_path, monkeypatch):
    _write(tmp_path / "a")
    _write(tmp_path / "nested" / "b", task="sentiment", multi_label=False, thresholds=None,
           metrics={"accuracy": 0.9, "macro_f1": 0.8})
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / RUN_FILE).write_text("{")
    (tmp_path / "a" / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    found = discover_runs(tmp_path)
    assert [r.path for r in found] == [tmp_path / "a", tmp_path / "nested" / "b"]  # the broken one is skipped
    assert found[1].headline == ("accuracy", 0.9)
    monkeypatch.setenv("FINASSIST_RUNS", str(tmp_path / "nested"))
    assert [r.task for r in discover_runs()] == ["sentiment"]
    assert discover_runs(tmp_path / "nope") == []


def test_config_command_lists_what_differs_from_the_defaults():
    from finetune.config import ClassifyTrainConfig

    config = ClassifyTrainConfig(task="unfair-tos", train="c.jsonl", out="runs/u", multi_label=True,
                                 class_weights=False, learning_rate=1e-4, group_field="document")
    assert config_command("finassist finetune classify", config) == (
        "finassist finetune classify --task unfair-tos --train c.jsonl --out runs/u --group-field document "
        "--multi-label --learning-rate 0.0001 --no-class-weights"
    )


def test_the_assistant_reads_runs_without_training_code():
    code = ("import sys, assistant.runs, assistant.classifiers, assistant.api; "
            "print(sorted(m for m in sys.modules if m == 'finetune' or m.startswith('finetune.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_known_licences():
    assert licence_of("../shared/data/legal/cuad/train.jsonl") == "CC BY 4.0"
    assert licence_of("zeroshot/twitter-financial-news-sentiment") == "MIT"
    assert licence_of("data/ectsum/train.jsonl") == "GPL-3.0"
    assert licence_of("my/own.csv").startswith("unknown")


def test_size_is_the_model_files_as_written_and_as_listed(tmp_path):
    """One size: the model's files (weights, their JSON state, tokenizer files, an encoder copy),
    recorded by the writer, listed by the reader, the same after the run file is rewritten."""
    run = tmp_path / "u"
    (run / "encoder").mkdir(parents=True)
    sizes = {"head.safetensors": 1000, "words.json": 200, "vocab.txt": 30, "encoder/model.safetensors": 4000,
             "encoder/config.json": 50}
    for name, size in sizes.items():
        (run / name).write_bytes(b"x" * size)
    for name in ("checkpoints/checkpoint-2/model.safetensors", "eval/validation.json", "heldout/x.json"):
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_bytes(b"y" * 10_000)  # beside the model, not part of it
    _write(run)
    expected = sum(sizes.values())
    assert json.loads((run / RUN_FILE).read_text())["size_bytes"] == expected
    assert model_bytes(run) == read_run(run).size_bytes == read_run(run).describe()["size_bytes"] == expected
    add_metrics(run, {"held_out": {"x": {"accuracy": 0.5}}})
    assert json.loads((run / RUN_FILE).read_text())["size_bytes"] == expected
    assert f"{expected / 1e6:.2f} MB" in (run / "README.md").read_text()



def test_an_ensemble_names_its_members_and_refuses_what_cannot_be_averaged(tmp_path):
    ensemble = tmp_path / "ens"
    _write(ensemble / "a")
    _write(ensemble / "b")
    _write(ensemble, kind="classifier-ensemble", members=[{"name": "a", "share": 0.25}, {"name": "b", "share": 0.75}])
    info = read_run(ensemble)
    assert [(m.name, m.share, m.info.kind) for m in info.members] == [("a", 0.25, "classifier"),
                                                                      ("b", 0.75, "classifier")]
    assert [r.path for r in discover_runs(tmp_path)] == [ensemble]
    assert "## Members" in (ensemble / "README.md").read_text()

    written = json.loads((ensemble / RUN_FILE).read_text())

    def members(entries, **overrides):
        (ensemble / RUN_FILE).write_text(json.dumps({**written, "members": entries, **overrides}))
        return read_run(ensemble)

    with pytest.raises(ModelLoadError, match="sum to 0.5"):
        members([{"name": "a", "share": 0.25}, {"name": "b", "share": 0.25}])
    with pytest.raises(ModelLoadError, match="at least 2"):
        members([{"name": "a", "share": 1.0}])
    with pytest.raises(ModelLoadError, match="subfolder, got '../a'"):
        members([{"name": "../a", "share": 0.5}, {"name": "b", "share": 0.5}])
    with pytest.raises(ModelNotFoundError, match="ens/c does not exist"):
        members([{"name": "a", "share": 0.5}, {"name": "c", "share": 0.5}])
    with pytest.raises(ModelLoadError, match="members must all serve 'sentiment'"):
        members([{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5}], task="sentiment")
    _write(ensemble / "c", labels=["Arbitration", "Other"], thresholds=None)
    with pytest.raises(ModelLoadError, match="ens/c serves 'unfair-tos' with labels"):
        members([{"name": "a", "share": 0.5}, {"name": "c", "share": 0.5}])
