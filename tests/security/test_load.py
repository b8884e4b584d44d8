"""``finassist bench load`` on the tiny models: short and bounded, but the same code as the full run."""

from __future__ import annotations

import json

import pytest

from benchmarks.load import run_load_benchmark

pytestmark = pytest.mark.timeout(300)


def test_load_benchmark_reports_and_stays_healthy(tiny_gpt2_dir, tiny_bert_dir, tmp_path):
    result = run_load_benchmark(generator=str(tiny_gpt2_dir), encoder=str(tiny_bert_dir), device="cpu",
                                clients=40, seconds=3, max_tokens=4, timeout=2, max_batch_size=4, max_queue=8,
                                rounds=2, out_dir=tmp_path)
    assert result["healthy_after"] and result["no_5xx"]
    counts = result["status_counts"]
    assert counts.get("200", 0) > 0, counts
    assert set(counts) <= {"200", "429", "503"}, counts  # refused with Retry-After, never left to time out
    assert result["memory_mb"]["peak"] >= result["memory_mb"]["before"] > 0
    # Two rounds against one server: each counted, and its memory taken after it.
    assert len(result["rounds"]) == 2 and all(r["memory_after_mb"] > 0 for r in result["rounds"])
    assert sum(sum(r["status_counts"].values()) for r in result["rounds"]) == sum(counts.values())
    saved = json.loads((tmp_path / "load.json").read_text())
    report = (tmp_path / "load.md").read_text()
    assert saved["settings"]["clients"] == 40 and "| 200 |" in report and "2 rounds" in report
    assert "| 2 | " in report
