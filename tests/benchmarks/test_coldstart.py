"""The cold-start benchmark on the tiny models: real ``python app.py`` processes, timed to the first token."""

from __future__ import annotations

import json

from benchmarks.coldstart import run_coldstart_benchmark


def test_cold_start_times_real_app_processes(tiny_smollm2_dir, tiny_bert_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("FINASSIST_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FINASSIST_LIBRARY", "off")
    printed: list[str] = []
    result = run_coldstart_benchmark(repeats=1, generator=str(tiny_smollm2_dir), encoder=str(tiny_bert_dir),
                                     out_dir=tmp_path / "out", timeout_s=240, echo=printed.append)
    run = result["runs"][0]
    # The phases happen in order: the port answers, the first token streams (the request sent as soon as
    # the port answered waits for the generator), then everything is loaded and the web UI built.
    assert 0 < run["listening_s"] < run["first_token_s"] <= run["healthy_s"]
    saved = json.loads((tmp_path / "out" / "coldstart.json").read_text())
    assert saved["median"]["first_token_s"] == run["first_token_s"]
    assert "| first streamed token of a chat answer |" in (tmp_path / "out" / "coldstart.md").read_text()
