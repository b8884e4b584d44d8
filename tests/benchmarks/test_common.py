"""benchmarks/common.py: the command line as typed, the commit, free ports, percentiles, table cells,
and the background server (real uvicorn on loopback)."""

from __future__ import annotations

import socket
import subprocess

import httpx
import pytest

from benchmarks.common import (
    REPO_ROOT,
    BackgroundServer,
    command_line,
    format_number,
    free_port,
    git_commit,
    percentile,
)


def test_command_line_names_the_command_as_typed():
    typed = ["/usr/bin/finassist", "bench", "decode", "--tokens", "8"]
    assert command_line(typed) == "finassist bench decode --tokens 8"
    assert command_line(["/repo/benchmarks/decode.py", "--dtypes", "float32,bfloat16"]) == (
        "python -m benchmarks.decode --dtypes float32,bfloat16")
    quoted = ["finassist", "bench", "load", "--out", "my results"]
    assert command_line(quoted) == "finassist bench load --out 'my results'"
    assert command_line([]) == ""


def test_percentile_interpolates_between_ranks():
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 0.0) == 1.0
    assert percentile(values, 1.0) == 4.0
    assert percentile(values, 0.5) == pytest.approx(2.5)
    assert percentile(values, 0.95) == pytest.approx(3.85)
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([], 0.5) is None


def test_format_number():
    assert format_number(3.14159) == "3.14"
    assert format_number(2.0, ".1f") == "2.0"
    assert format_number(None) == "-"
    assert format_number(None, none="n/a") == "n/a"


def test_free_port_can_be_bound():
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_git_commit_is_this_checkout():
    head = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    described = git_commit()
    assert described is not None and head.stdout.strip().startswith(described.removesuffix("-dirty")[:12])


def test_git_commit_outside_a_checkout_is_none(tmp_path):
    assert git_commit(tmp_path) is None


def test_background_server_serves_and_stops():
    import uvicorn

    async def app(scope, receive, send):
        assert scope["type"] == "http"
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    with BackgroundServer(config) as server:
        assert httpx.get(f"http://127.0.0.1:{port}/").text == "ok"
    assert not server.thread.is_alive()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/", timeout=2)


def test_wait_until_healthy_waits_through_503_and_gives_up_at_the_deadline():
    import uvicorn

    answers = [503, 503, 200]  # loading, loading, ready
    asked = []

    async def app(scope, receive, send):
        status = answers[min(len(asked), len(answers) - 1)] if scope["path"] == "/healthz" else 503
        asked.append(scope["path"])
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    with BackgroundServer(config) as server:
        server.wait_until_healthy(f"http://127.0.0.1:{port}/healthz")
        assert asked == ["/healthz"] * 3
        with pytest.raises(RuntimeError, match="did not become healthy"):
            server.wait_until_healthy(f"http://127.0.0.1:{port}/never", timeout_s=0.3)
