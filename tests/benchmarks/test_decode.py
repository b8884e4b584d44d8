"""benchmarks/decode.py: the dtype list, and one short real run on the tiny GPT-2 (float32 only, a few
tokens) that writes the same files as ``finassist bench decode``."""

from __future__ import annotations

import json

import pytest
import torch

from assistant.errors import InvalidParameterError
from benchmarks.decode import dtypes_to_compare, run_decode_benchmark
from benchmarks.timing import PATHS


def test_dtypes_to_compare_puts_float32_first():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert dtypes_to_compare(None, cpu) == ["float32", "bfloat16"]
    assert dtypes_to_compare("", cuda) == ["float32", "bfloat16", "float16"]
    assert dtypes_to_compare("bf16,float32,int8,bfloat16", cpu) == ["float32", "bfloat16", "int8"]
    assert dtypes_to_compare(["float16"], cpu) == ["float32", "float16"]
    with pytest.raises(InvalidParameterError, match="explicit dtypes"):
        dtypes_to_compare("auto", cpu)


def test_a_short_run_writes_the_json_markdown_and_chart(tiny_gpt2_dir, tmp_path):
    printed: list[str] = []
    result = run_decode_benchmark(generator=str(tiny_gpt2_dir), device="cpu", dtypes="float32", new_tokens=4,
                                  repeats=1, out_dir=tmp_path, progress=False, echo=printed.append)
    saved = json.loads((tmp_path / "decode.json").read_text())
    assert saved["benchmark"] == "decode" and saved["settings"]["new_tokens"] == 4
    rows = saved["engine_vs_plain"]
    assert {r["path"] for r in rows} == set(PATHS)
    for row in rows:
        if row["path"] != PATHS[0]:
            assert row["same_text_as_plain"] is True  # greedy: the engine says what plain generate says
    assert [d["dtype"] for d in saved["dtypes"]] == ["float32"] and saved["dtypes"][0]["identical"] is True
    assert saved["verdict"]["fastest_identical"] == "float32"
    assert saved["machine"]["device"] == "cpu" and saved["model"]["parameters"] > 0
    markdown = (tmp_path / "decode.md").read_text()
    assert markdown.startswith("# Decode benchmark\n")
    assert f"| question | {PATHS[0]} |" in markdown and "## dtype" in markdown
    assert "1. Engine vs plain model.generate (float32)" in "\n".join(printed)
    if "chart not written" not in " ".join(saved["notes"]):
        assert (tmp_path / "decode.png").read_bytes().startswith(b"\x89PNG")
    assert result["commit"] == saved["commit"]
    # Part 3 on a CPU: every backend has a row; GPT-2 does not export to ONNX, so those rows say torch
    # decoded; llama.cpp runs GGUF files only.
    backends = {r["backend"]: r for r in saved["backends"]}
    assert set(backends) == {"torch fp32 (dynamic)", "onnx int8", "onnx int4", "llama.cpp (GGUF Q4_1)"}
    assert backends["onnx int8"]["runs_as"].startswith("torch")
    assert backends["torch fp32 (dynamic)"]["agreement"]["question"]["first_difference"] is None
    assert "GGUF" in backends["llama.cpp (GGUF Q4_1)"]["skipped"]
    assert "## Backends" in markdown
