"""The decode benchmark's backend comparison: greedy agreement, and one short run on the tiny Llama,
whose ONNX rows must really decode with ONNX Runtime GenAI."""

from __future__ import annotations

import pytest

from assistant.onnx_backend import onnx_available
from benchmarks.backends import BACKENDS, LLAMA_CPP, agreement, backend_ratios, compare_backends
from benchmarks.workload import BenchPrompt


def test_agreement_reports_the_first_difference_and_the_share():
    assert agreement([1, 2, 3, 4], [1, 2, 3, 4]) == {"first_difference": None, "agreeing_share": 1.0, "compared": 4}
    a = agreement([1, 2, 9, 4], [1, 2, 3, 4])
    assert a["first_difference"] == 2 and a["agreeing_share"] == 0.75
    short = agreement([1, 2], [1, 2, 3, 4])  # stopped early: the missing positions do not agree
    assert short["first_difference"] is None and short["agreeing_share"] == 0.5


def test_ratios_come_from_the_rows_of_one_run():
    rows = [{"backend": BACKENDS[0][0], "tokens_per_s": 20.0}, {"backend": "onnx int8", "tokens_per_s": 100.0},
            {"backend": "onnx int4", "tokens_per_s": None}, {"backend": LLAMA_CPP, "tokens_per_s": 80.0}]
    ratios = backend_ratios(rows)
    assert ratios["onnx int8"] == {"vs_torch_fp32": 5.0, "vs_llama_cpp": 1.25}
    assert ratios["onnx int4"] == {"vs_torch_fp32": None, "vs_llama_cpp": None}


class _Bar:
    def __init__(self):
        self.steps = 0

    def set_postfix_str(self, _s):
        pass

    def update(self, n):
        self.steps += n


@pytest.mark.skipif(onnx_available() is not None, reason="ONNX backend not installed")
def test_onnx_rows_decode_with_onnx_on_the_tiny_llama(tiny_smollm2_dir, monkeypatch, tmp_path):
    import torch

    monkeypatch.setenv("FINASSIST_CACHE", str(tmp_path))
    prompt = BenchPrompt("question", "a question", [{"role": "user", "content": "What is EBITDA?"}])
    reference = {"question": torch.tensor([1, 2, 3, 4])}
    bar = _Bar()
    rows = compare_backends(str(tiny_smollm2_dir), [prompt], reference, lambda m: "", 4, 1, bar)
    by = {r["backend"]: r for r in rows}
    assert by["onnx int8"]["runs_as"].startswith("onnx (int8") and by["onnx int4"]["runs_as"].startswith("onnx (int4")
    assert by["torch fp32 (dynamic)"]["runs_as"].startswith("torch")
    for label, _ in BACKENDS:
        assert by[label]["tokens_per_s"] > 0 and by[label]["agreement"]["question"]["compared"] <= 4
    assert by[LLAMA_CPP]["skipped"]  # not the default preset: no GGUF file
