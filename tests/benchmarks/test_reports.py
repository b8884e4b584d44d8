"""benchmarks/reports.py: the tables of the serving, load and classification benchmarks from their
result dicts (the decode report is checked on a real run in test_decode.py)."""

from __future__ import annotations

from benchmarks.reports import classify_markdown, load_markdown, serve_markdown, text_table

MACHINE = {"platform": "Linux-x86_64", "cpu": "Test CPU", "cpu_cores_available": 2, "device": "cpu",
           "torch": "2.9", "transformers": "5.0"}


def test_text_table_aligns_text_left_and_figures_right():
    table = text_table(["prompt", "path", "tok/s"], [["q", "plain", "9.5"], ["long prompt", "engine", "12.25"]], False)
    lines = table.splitlines()
    assert lines[0] == "prompt       path    tok/s"
    assert lines[1] == "-----------  ------  -----"
    assert lines[2] == "q            plain     9.5"
    assert lines[3] == "long prompt  engine  12.25"
    markdown = text_table(["a", "b"], [["1", "2"]], True)
    assert markdown.splitlines() == ["| a | b |", "|---|---|", "| 1 | 2 |"]


def test_serve_markdown():
    result = {
        "command": "finassist bench serve", "when": "2026-01-01T00:00:00+00:00", "machine": MACHINE, "model": "tiny",
        "settings": {"dtype": "float32", "max_tokens": 8, "max_batch_size": 4},
        "levels": [{"concurrency": 4, "requests": 8, "tokens_per_s": 100.0, "requests_per_s": 2.5,
                    "ttft_p50_s": 0.1, "ttft_p95_s": None, "itl_p50_ms": 12.0, "itl_p95_ms": 20.0, "vs_naive": 2.0,
                    "errors": 0}],
        "naive": {"requests": 2, "tokens_per_s": 50.0, "requests_per_s": 1.25},
    }
    text = serve_markdown(result)
    assert text.startswith("# Serving benchmark\n")
    assert "| 4 | 8 | 100.0 | 2.500 | 0.10 | - | 12 | 20 | 2.00x | 0 |" in text
    assert "2 requests, 50.0 tok/s, 1.250 req/s" in text
    assert "max batch 4" in text


def test_load_markdown():
    result = {
        "command": "finassist bench load", "when": "2026-01-01T00:00:00+00:00", "machine": MACHINE, "model": "tiny",
        "settings": {"clients": 40, "seconds": 3.0, "max_tokens": 4, "timeout": 2.0, "max_batch_size": 4,
                     "max_queue": 8},
        "status_counts": {"200": 30, "429": 5}, "requests_per_s": 11.67, "ok_per_s": 10.0,
        "latency_s": {"ok": {"p50": 0.1, "p95": 0.2, "p99": 0.3, "max": 0.4},
                      "refused": {"p50": None, "p95": None, "p99": None, "max": None}},
        "memory_mb": {"before": 100.0, "peak": 150.0, "after": 120.0}, "healthy_after": True, "no_5xx": True,
    }
    text = load_markdown(result)
    assert text.startswith("# Load: 40 clients for 3 s\n")
    assert "| 200 | 30 |" in text and "| 429 | 5 |" in text
    assert "| ok | 0.100 | 0.200 | 0.300 | 0.400 |" in text
    assert "| refused | - | - | - | - |" in text
    assert "100 MB before, 150 MB peak, 120 MB after" in text


def test_classify_markdown():
    result = {
        "date": "2026-01-01", "command": "finassist bench classify", "machine": MACHINE, "texts": 16,
        "sources": ["a.jsonl", "b.jsonl"], "baseline": "plain forward",
        "rows": [{"tasks": ["sentiment", "unfair-tos"], "assistant_texts_per_s": 10.0, "plain_texts_per_s": 5.0,
                  "speedup": 2.0}],
    }
    text = classify_markdown(result)
    assert "| sentiment + unfair-tos | 10.0 | 5.0 | 2.0× |" in text
    assert "- texts: 16 real texts (a.jsonl, b.jsonl)" in text
