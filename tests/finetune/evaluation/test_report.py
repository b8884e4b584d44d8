"""Report writers (finetune/evaluation/report.py): JSON of numpy values and paths, Markdown tables, and
the machine description reports embed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from assistant.machine import machine_info
from finetune.evaluation import markdown_table, write_json


def test_report_helpers(tmp_path):
    path = write_json({"x": np.float32(0.5), "v": np.arange(3), "p": tmp_path}, tmp_path / "a" / "r.json")
    assert json.loads(path.read_text()) == {"x": 0.5, "v": [0, 1, 2], "p": str(tmp_path)}
    assert markdown_table(["k", "v"], [["a|b", 0.5], ["c", None]]) == (
        "| k | v |\n| --- | ---: |\n| a\\|b | 0.5000 |\n| c | – |"
    )
    with pytest.raises(ValueError, match="cells"):
        markdown_table(["k", "v"], [["only one"]])
    info = machine_info()
    assert info["python"].count(".") == 2 and info["cpu_cores"] >= 1 and "torch" in info
