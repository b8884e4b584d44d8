"""A real uvicorn server on a free loopback port, for tests that talk HTTP to the service."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import uvicorn


class LiveServer:
    """A uvicorn server for ``app`` on a free loopback port, in a daemon thread."""

    def __init__(self, app, wait_healthy: bool = True, **guards) -> None:
        """``guards``: options of ``assistant.guards.uvicorn_config`` (``header_timeout_s``,
        ``max_connections``): the server then runs with the settings of ``finassist serve``."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        if guards:
            from assistant.guards import uvicorn_config

            config = uvicorn_config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5, **guards)
        else:
            config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        if wait_healthy:
            while httpx.get(f"{self.url}/healthz").status_code != 200:
                assert time.monotonic() < deadline, "the models did not load"
                time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the server did not stop"


def assert_error(response: httpx.Response, status: int, code: str | None = None, param: str | None = None) -> dict:
    """Check an OpenAI-style error answer: its status, the body `{"error": {message, type, param, code}}`, no
    traceback; the error object."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert error["message"] and "Traceback" not in response.text
    if code is not None:
        assert error["code"] == code, error
    if param is not None:
        assert error["param"] == param, error
    return error


def sse_events(response: httpx.Response) -> list[str]:
    """The ``data:`` payloads of an SSE response, in order."""
    events = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            events.append(line[len("data: "):])
        else:
            assert line == "", f"unexpected SSE line {line!r}"
    return events
