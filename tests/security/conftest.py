"""Shared pieces of the hostile-input suite: real servers over the tiny models on loopback, and the
checks every hostile case ends with (an error body, no traceback, the server still healthy)."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/live_server.py

from live_server import LiveServer  # noqa: E402

from assistant import Assistant  # noqa: E402
from assistant.engine import Engine  # noqa: E402
from assistant.server import create_app  # noqa: E402

QUESTION = "What does operating profit mean?"
#: Enough new tokens that a generation is still running while a test acts on it (the tiny GPT-2
#: never ends by itself: its EOS row is zeroed).
LONG = 800  # new tokens: with the ask system prompt, within the tiny model's window of 1024


def chat_body(content: str = QUESTION, **extra) -> dict:
    return {"messages": [{"role": "user", "content": content}], "max_tokens": 4, "temperature": 0, **extra}


def assert_error(response: httpx.Response, status: int | tuple[int, ...], code: str | None = None,
                 param: str | None = None) -> dict:
    """An OpenAI-style error body with the expected status, and no traceback anywhere in it."""
    statuses = (status,) if isinstance(status, int) else status
    assert response.status_code in statuses, (response.status_code, response.text)
    assert "Traceback" not in response.text and 'File "' not in response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert error["message"]
    if code is not None:
        assert error["code"] == code, error
    if param is not None:
        assert error["param"] == param, error
    return error


def assert_healthy(url: str) -> None:
    r = httpx.get(f"{url}/healthz", timeout=30)
    assert r.status_code == 200 and r.json()["status"] == "ok", r.text


def raw_request(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Send raw bytes to the server and read until it closes (or ``timeout``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):  # a refusing server may reset after replying
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and b"content-length" in b"".join(chunks).lower():
                head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                if len(body) >= length:
                    break
        return b"".join(chunks)


@pytest.fixture(scope="module")
def engine(tiny_gpt2_dir, tiny_bert_dir) -> Engine:
    return Engine(generator=tiny_gpt2_dir, encoder=tiny_bert_dir, device="cpu")


@pytest.fixture(scope="module")
def live(engine) -> Iterator[LiveServer]:
    """The API with ``finassist serve``'s protections, limits small enough to reach in a test."""
    app = create_app(Assistant(engine=engine), max_body_bytes=50_000, max_tokens_limit=1000, body_timeout_s=2)
    server = LiveServer(app, header_timeout_s=2, max_connections=64)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(live) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=120) as c:
        yield c
