"""The audit log (assistant/audit.py) after real requests: HTTP chat (plain and streamed), summarize,
the Python API and the CLI; its store (WAL, append-only, retention) and its export."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import threading
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from conftest import chat_body
from live_server import LiveServer

from assistant import Assistant, __version__
from assistant.audit import AuditRecord, AuditStore, SQLiteAuditStore, export, key_id, parse_since
from assistant.errors import InvalidParameterError
from assistant.server import create_app

pytestmark = pytest.mark.timeout(300)

EMAIL = "jane.doe@example.com"


def _record(**extra) -> AuditRecord:
    return AuditRecord(**{"kind": "ask", "user": "u", "question": "q", "answer": "a", "model": "m",
                          "version": "v", **extra})


def test_answers_through_http_are_recorded(engine, tmp_path):
    path = tmp_path / "audit.sqlite3"
    assistant = Assistant(engine=engine, audit=path)
    server = LiveServer(create_app(assistant, api_key="k3y"))
    auth = {"Authorization": "Bearer k3y"}
    try:
        r = httpx.post(f"{server.url}/v1/chat/completions", headers=auth, timeout=120,
                       json=chat_body(f"Email {EMAIL}: is a P/E of 30 high?", user="alice"))
        assert r.status_code == 200
        answer = r.json()["choices"][0]["message"]["content"]
        with httpx.stream("POST", f"{server.url}/v1/chat/completions", headers=auth, timeout=120,
                          json=chat_body("What is EBITDA?", stream=True)) as s:
            assert "[DONE]" in s.read().decode()
        r = httpx.post(f"{server.url}/v1/summarize", headers=auth, timeout=120,
                       json={"text": "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn.", "max_words": 10})
        assert r.status_code == 200
        summary = r.json()["text"]
        assert httpx.post(f"{server.url}/v1/classify", headers=auth, json={"text": "Profit rose."}).status_code == 200
        assert httpx.post(f"{server.url}/v1/chat/completions", json=chat_body()).status_code == 401
    finally:
        server.stop()
    records = list(SQLiteAuditStore(path).records())
    assert [r.kind for r in records] == ["chat", "chat", "summarize"]  # classify gives no advice; 401 no answer
    chat, streamed, summarized = records
    assert chat.user == f"{key_id('k3y')} user=alice" and "k3y" not in chat.user
    assert chat.question == "Email [EMAIL_1]: is a P/E of 30 high?" and chat.redacted
    assert chat.answer == answer.replace(EMAIL, "[EMAIL_1]")
    assert streamed.question == "What is EBITDA?" and streamed.answer
    assert summarized.answer == summary and summarized.question.startswith("Operating profit")
    for r in records:
        assert r.model == engine.loaded("generator").resolved.name and r.version == f"finassist {__version__}"
        assert r.citations == [] and datetime.fromisoformat(r.time).tzinfo is not None


def test_python_api_answers_are_recorded(engine, tmp_path):
    assistant = Assistant(engine=engine, audit=tmp_path / "a.sqlite3", user="analyst-7")
    answer = assistant.ask("Should I buy shares of a company whose revenue fell 20%?", max_new_tokens=3)
    streamed = "".join(assistant.ask_stream("What is a bond?", max_new_tokens=3))
    records = list(assistant.audit_store.records())
    assert [(r.kind, r.user) for r in records] == [("ask", "analyst-7"), ("ask", "analyst-7")]
    assert records[0].answer == answer.text and records[1].answer == streamed
    assert Assistant(engine=engine, audit=None).audit_store is None


def test_stream_left_early_is_recorded_as_far_as_it_went(engine, tmp_path):
    assistant = Assistant(engine=engine, audit=tmp_path / "a.sqlite3")
    stream = assistant.ask_stream("What is a bond?", max_new_tokens=50)
    first = next(stream)
    stream.close()
    (record,) = assistant.audit_store.records()
    assert record.answer == first


def test_cli_answers_are_recorded_and_exported(run_cli, make_env, tiny_gpt2_dir, tmp_path):
    path = tmp_path / "cli.sqlite3"
    env = make_env(FINASSIST_AUDIT=str(path))
    result = run_cli("ask", f"My email is {EMAIL}. What is EBITDA?", "--generator", tiny_gpt2_dir, "--device", "cpu",
                     "--max-new-tokens", "3", "--no-stream", env=env)
    assert result.returncode == 0, result.stderr
    result = run_cli("audit", "export", "--since", "1h", env=env)
    assert result.returncode == 0, result.stderr
    (row,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert row["kind"] == "ask" and row["user"].startswith("cli:") and row["question"].startswith("My email is [EMAIL_1]")
    assert EMAIL not in result.stdout
    out = tmp_path / "audit.csv"
    result = run_cli("audit", "export", "--format", "csv", "--out", out, "--audit-log", path, env=env)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert len(rows) == 1 and rows[0]["question"] == row["question"]
    future = (datetime.now(timezone.utc) + timedelta(days=1)).date().isoformat()
    assert run_cli("audit", "export", "--since", future, env=env).stdout == ""
    bad = run_cli("audit", "export", "--since", "yesterday-ish", env=env)
    assert bad.returncode == 1 and "--since" in bad.stderr
    off = run_cli("ask", "What is EBITDA?", "--generator", tiny_gpt2_dir, "--device", "cpu", "--max-new-tokens", "2",
                  "--no-stream", "--no-audit", env=env)
    assert off.returncode == 0
    assert len(list(SQLiteAuditStore(path).records())) == 1


# ------------------------------------------------------------------ the store


def test_store_is_wal_append_only_and_a_protocol(tmp_path):
    store = SQLiteAuditStore(tmp_path / "s.sqlite3")
    assert isinstance(store, AuditStore)
    store.record(_record())
    db = sqlite3.connect(tmp_path / "s.sqlite3")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE audit SET answer = 'changed'")
    db.close()
    with pytest.raises(InvalidParameterError):
        store.record(_record(kind="classify"))
    assert [r.answer for r in store.records()] == ["a"]


def test_retention_removes_old_records(tmp_path):
    store = SQLiteAuditStore(tmp_path / "r.sqlite3", retention_days=30)
    old = (datetime.now(timezone.utc) - timedelta(days=40)).isoformat()
    store.record(_record(time=old, answer="old"))
    store.record(_record(answer="new"))
    assert store.prune() == 1
    assert [r.answer for r in store.records()] == ["new"]
    with pytest.raises(InvalidParameterError):
        SQLiteAuditStore(tmp_path / "x.sqlite3", retention_days=0)


def test_concurrent_records_are_all_kept(tmp_path):
    store = SQLiteAuditStore(tmp_path / "c.sqlite3")
    threads = [threading.Thread(target=lambda i=i: [store.record(_record(answer=f"{i}-{j}")) for j in range(25)])
               for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = list(store.records())
    assert len(records) == 200 and len({r.id for r in records}) == 200


def test_export_formats_and_since(tmp_path):
    store = SQLiteAuditStore(tmp_path / "e.sqlite3")
    store.record(_record(time=(datetime.now(timezone.utc) - timedelta(days=3)).isoformat(), answer="old"))
    store.record(_record(answer='new, with "quotes"\nand a line', citations=["doc.pdf p.3"]))
    lines = "".join(export(store.records(parse_since("1d")), "jsonl")).splitlines()
    assert [json.loads(x)["answer"] for x in lines] == ['new, with "quotes"\nand a line']
    rows = list(csv.DictReader(io.StringIO("".join(export(store.records(), "csv")))))
    assert [r["answer"] for r in rows] == ["old", 'new, with "quotes"\nand a line']
    assert json.loads(rows[1]["citations"]) == ["doc.pdf p.3"]
    assert "".join(export([], "csv")).startswith("id,time,kind")
