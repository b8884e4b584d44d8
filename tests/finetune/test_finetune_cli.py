"""``finassist finetune ...`` / ``finassist eval ...`` / ``python -m finetune``: the commands map
to the training and evaluation functions, with options derived from their configs."""

from __future__ import annotations

import json
import sys

import pytest

from finetune.cli import _options
from finetune.config import ClassifyTrainConfig


def test_options_come_from_the_config():
    names = {row[0]: row for row in _options(ClassifyTrainConfig)}
    assert {"task", "train", "out", "head_only", "multi_label", "group_field"} <= set(names)
    assert names["task"][4] and names["train"][4]  # required: no default
    assert not names["model"][4] and names["model"][2] == "minilm-l6"


def test_head_only_run_then_eval(run_cli, classify_data, tiny_bert_dir, tmp_path, read_jsonl):
    out = tmp_path / "fpb-head"
    done = run_cli("finetune", "classify", "--task", "sentiment", "--train", classify_data["fpb_train"],
                   "--text-field", "sentence", "--model", tiny_bert_dir, "--head-only", "--val-fraction", "0.25",
                   "--out", out, "--no-progress")
    assert done.returncode == 0, done.stderr
    assert f"run saved in {out}" in done.stdout
    assert (out / "finassist-run.json").is_file() and (out / "README.md").is_file()

    report_dir = tmp_path / "report"
    ev = run_cli("eval", "classify", "--model", out, "--data", classify_data["fpb_heldout"], "--text-field",
                 "sentence", "--task", "sentiment", "--out", report_dir, "--no-progress")
    assert ev.returncode == 0, ev.stderr
    report = json.loads(next(report_dir.glob("*.json")).read_text())
    assert report["n"] == len(read_jsonl(classify_data["fpb_heldout"]))
    correct = sum(row[i] for i, row in enumerate(report["confusion"]))
    assert report["accuracy"] == pytest.approx(correct / report["n"])
    assert f"| accuracy | {report['accuracy']:.4f} |" in ev.stdout  # the printed report is the saved one
    assert "accuracy" in ev.stdout.lower()

    # The run serves its task in the other commands.
    cls = run_cli("classify", "--classifier", f"sentiment={out}", "--task", "sentiment", "--encoder",
                  tiny_bert_dir, "--json", "Operating profit rose to EUR 13.1 mn.")
    assert cls.returncode == 0, cls.stderr
    result = json.loads(cls.stdout)
    result = result[0] if isinstance(result, list) else result
    assert result["labels"][0] in {"positive", "negative", "neutral"}


def test_bad_data_is_one_line_naming_file_and_line(run_cli, tmp_path, tiny_bert_dir):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"text": "Profit rose.", "label": "positive"}\n{"text": "Sales fell."}\n', encoding="utf-8")
    done = run_cli("finetune", "classify", "--task", "sentiment", "--train", data, "--model", tiny_bert_dir,
                   "--head-only", "--out", tmp_path / "run")
    assert done.returncode == 1
    assert f"{data}:2" in done.stderr and "label" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "run" / "finassist-run.json").exists()


def test_missing_required_option_is_usage_error(run_cli):
    done = run_cli("finetune", "classify", "--task", "sentiment")
    assert done.returncode == 2 and "--train" in done.stderr


def test_python_m_finetune_is_the_same_command(run_cli):
    done = run_cli("classify", "--help", program=[sys.executable, "-m", "finetune"])
    assert done.returncode == 0 and "--head-only" in done.stdout
    done = run_cli("eval", "summarize", "--help", program=[sys.executable, "-m", "finetune"])
    assert done.returncode == 0 and "--baselines" in done.stdout


def test_help_shows_a_percent_sign_as_written(run_cli):
    done = run_cli("finetune", "generate", "--help")
    assert done.returncode == 0 and "~20% slower" in " ".join(done.stdout.split())  # however argparse wraps it
    assert "option_strings" not in done.stdout
