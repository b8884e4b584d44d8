"""benchmarks/charts.py: PNG charts from result dicts (the decode chart is drawn in test_decode.py's
real run)."""

from __future__ import annotations

import pytest

from benchmarks.charts import classify_chart, serve_chart

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _matplotlib():
    pytest.importorskip("matplotlib")


def test_serve_chart(tmp_path):
    result = {"model": "tiny", "machine": {"device": "cpu"}, "naive": {"tokens_per_s": 50.0},
              "levels": [{"concurrency": 1, "tokens_per_s": 40.0, "vs_naive": 0.8},
                         {"concurrency": 4, "tokens_per_s": 120.0, "vs_naive": 2.4}]}
    assert serve_chart(result, tmp_path / "serve.png") is None
    assert (tmp_path / "serve.png").read_bytes().startswith(PNG_SIGNATURE)


def test_classify_chart(tmp_path):
    result = {"rows": [{"tasks": ["sentiment"], "assistant_texts_per_s": 30.0, "plain_texts_per_s": 10.0},
                       {"tasks": ["sentiment", "unfair-tos"], "assistant_texts_per_s": 20.0,
                        "plain_texts_per_s": 5.0}]}
    assert classify_chart(result, tmp_path / "classify.png") is None
    assert (tmp_path / "classify.png").read_bytes().startswith(PNG_SIGNATURE)
