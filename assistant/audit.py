"""The audit log: a record of every answer that gives information or advice (ask, chat, summarize).

Each record holds the time, who asked (a user name or an API key's id, never the key), the question
and the answer (redacted of personal data unless configured otherwise, see ``assistant.pii``), the
citations the answer rests on, and the model and software version that wrote it.

``AuditStore`` is the interface the rest of the assistant uses; ``SQLiteAuditStore`` keeps the
records in one SQLite file (write-ahead log, one transaction per record, rows never updated: a
trigger refuses it; only the retention setting removes rows, the oldest first). A server database
can replace it by implementing the same three methods.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Protocol, runtime_checkable

from .errors import InvalidParameterError

#: Environment variable naming the audit file ("off" turns the audit log off).
AUDIT_ENV = "FINASSIST_AUDIT"
#: Kinds of answers recorded.
KINDS = ("ask", "chat", "summarize")
#: Columns of an export, in order.
FIELDS = ("id", "time", "kind", "user", "question", "answer", "citations", "model", "version", "redacted")


@dataclass
class AuditRecord:
    kind: str
    user: str
    question: str
    answer: str
    model: str
    version: str
    citations: list[str] = field(default_factory=list)
    #: Whether question and answer were redacted of personal data before they were stored.
    redacted: bool = True
    #: ISO 8601 UTC, set when recorded.
    time: str = ""
    id: int | None = None

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in FIELDS}


@runtime_checkable
class AuditStore(Protocol):
    """Where audit records go. Implementations must make ``record`` durable before it returns."""

    def record(self, record: AuditRecord) -> AuditRecord: ...

    def records(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[AuditRecord]: ...

    def close(self) -> None: ...


def key_id(api_key: str) -> str:
    """How an API key is named in the audit log: a short hash (the key itself is never stored)."""
    return "key:" + hashlib.sha256(api_key.encode()).hexdigest()[:12]


def default_audit_path() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("finassist", appauthor=False)) / "audit.sqlite3"


def open_default_store(path: str | Path | None = None, retention_days: float | None = None) -> AuditStore | None:
    """The store ``path`` names, else ``$FINASSIST_AUDIT``, else the default file; None when the
    setting is "off"."""
    where = str(path) if path is not None else os.environ.get(AUDIT_ENV, "")
    if where.strip().lower() in ("off", "none", "0", "false"):
        return None
    return SQLiteAuditStore(where.strip() or default_audit_path(), retention_days=retention_days)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


def parse_since(value: str) -> datetime:
    """``2026-01-31``, ``2026-01-31T12:00``, or a duration back from now: ``7d``, ``12h``, ``30m``."""
    text = value.strip()
    units = {"d": "days", "h": "hours", "m": "minutes", "w": "weeks"}
    if text[-1:].lower() in units and text[:-1].replace(".", "", 1).isdigit():
        return _now() - timedelta(**{units[text[-1].lower()]: float(text[:-1])})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidParameterError(f"--since: not a date, a time or a duration like 7d: {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    kind TEXT NOT NULL,
    user TEXT NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    citations TEXT NOT NULL,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    redacted INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_time ON audit (time);
CREATE TRIGGER IF NOT EXISTS audit_append_only BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
"""


class SQLiteAuditStore:
    """Audit records in one SQLite file. ``retention_days``: records older than that are removed (at
    open and then at most hourly); None keeps them all."""

    def __init__(self, path: str | Path, retention_days: float | None = None) -> None:
        if retention_days is not None and retention_days <= 0:
            raise InvalidParameterError(f"the audit retention must be positive (days), got {retention_days}")
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.retention_days = retention_days
        self._lock = threading.Lock()
        # One connection shared by the server's threads, each use under the lock.
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at each checkpoint, safe on power loss
        self._db.executescript(_SCHEMA)
        try:
            os.chmod(self.path, 0o600)  # questions are personal even when redacted
        except OSError:
            pass
        self._pruned = 0.0
        self.prune()

    def record(self, record: AuditRecord) -> AuditRecord:
        if record.kind not in KINDS:
            raise InvalidParameterError(f"unknown audit record kind {record.kind!r}")
        record.time = record.time or _iso(_now())
        row = (record.time, record.kind, record.user, record.question, record.answer,
               json.dumps(record.citations, ensure_ascii=False), record.model, record.version, int(record.redacted))
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cursor = self._db.execute(
                    "INSERT INTO audit (time, kind, user, question, answer, citations, model, version, redacted) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            record.id = cursor.lastrowid
        if self.retention_days is not None and time.monotonic() - self._pruned > 3600:
            self.prune()
        return record

    def prune(self) -> int:
        """Remove the records older than the retention period; how many were removed."""
        self._pruned = time.monotonic()
        if self.retention_days is None:
            return 0
        cutoff = _iso(_now() - timedelta(days=self.retention_days))
        with self._lock:
            return self._db.execute("DELETE FROM audit WHERE time < ?", (cutoff,)).rowcount

    def records(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[AuditRecord]:
        query, args = "SELECT id, time, kind, user, question, answer, citations, model, version, redacted FROM audit", []
        where = []
        if since is not None:
            where.append("time >= ?")
            args.append(_iso(since))
        if until is not None:
            where.append("time < ?")
            args.append(_iso(until))
        if where:
            query += " WHERE " + " AND ".join(where)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY id", args).fetchall()
        for row in rows:
            rid, when, kind, user, question, answer, citations, model, version, redacted = row
            yield AuditRecord(kind=kind, user=user, question=question, answer=answer, model=model, version=version,
                              citations=json.loads(citations), redacted=bool(redacted), time=when, id=rid)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def export(records: Iterable[AuditRecord], fmt: str = "jsonl") -> Iterator[str]:
    """Records as JSON Lines or CSV text, piece by piece."""
    if fmt == "jsonl":
        for r in records:
            yield json.dumps(r.to_dict(), ensure_ascii=False) + "\n"
        return
    if fmt != "csv":
        raise InvalidParameterError(f"unknown export format {fmt!r}: jsonl or csv")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS)
    writer.writeheader()
    for r in records:
        row = r.to_dict()
        row["citations"] = json.dumps(row["citations"], ensure_ascii=False)
        writer.writerow(row)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.getvalue():
        yield buffer.getvalue()


__all__ = ["AuditRecord", "AuditStore", "SQLiteAuditStore", "export", "key_id", "open_default_store", "parse_since"]
