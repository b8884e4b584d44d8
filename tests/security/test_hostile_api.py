"""Hostile requests against the HTTP API, through real HTTP on loopback: each is answered with a
4xx (or 429/503) and an OpenAI-style error body, never a traceback, and the server stays healthy."""

from __future__ import annotations

import json
import re
import socket
import time

import httpx
import pytest
from conftest import LONG, assert_error, assert_healthy, chat_body, raw_request
from live_server import LiveServer

from assistant import Assistant
from assistant.server import create_app

pytestmark = pytest.mark.timeout(300)

SURROGATE = '"a \\ud800 b"'  # a JSON escape for a lone surrogate: valid JSON, not valid Unicode text


def post_raw(client: httpx.Client, path: str, body: str) -> httpx.Response:
    return client.post(path, content=body.encode(), headers={"content-type": "application/json"})


# ------------------------------------------------------------------------ text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", '{"messages": [{"role": "user", "content": %s}], "max_tokens": 2}' % SURROGATE),
        ("/v1/chat/completions",
         '{"messages": [{"role": "user", "content": [{"type": "text", "text": %s}]}], "max_tokens": 2}' % SURROGATE),
        ("/v1/chat/completions", '{"messages": [{"role": "user", "content": "hi"}], "stop": [%s]}' % SURROGATE),
        ("/v1/chat/completions", '{"messages": [{"role": "user", "content": "hi"}], "model": %s}' % SURROGATE),
        ("/v1/classify", '{"text": %s}' % SURROGATE),
        ("/v1/classify", '{"texts": ["fine", %s]}' % SURROGATE),
        ("/v1/classify", '{"text": "fine", "task": %s}' % SURROGATE),
        ("/v1/summarize", '{"text": %s}' % SURROGATE),
        ("/v1/summarize", '{"text": "\\ud800"}'),
        ("/v1/summarize", '{"text": "\\udfff\\ud800"}'),
    ],
)
def test_lone_surrogates_are_a_clear_400(client, live, path, body):
    error = assert_error(post_raw(client, path, body), 400, "invalid_request")
    assert "surrogate" in error["message"]
    assert_healthy(live.url)


def test_control_characters_are_replaced_not_fatal(client):
    body = chat_body("What is\u0007 EBITDA?\u001b[31m\u0085")
    assert client.post("/v1/chat/completions", json=body).status_code == 200
    r = client.post("/v1/classify", json={"text": "Profit rose\u0000"})
    assert_error(r, 400, "invalid_request")  # NUL: binary data, refused


# -------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seed", 2**64), ("seed", -(2**63) - 1), ("seed", 10**400),
        ("temperature", 1e308), ("temperature", -1e-45), ("top_p", 0), ("top_p", 1.0000001),
        ("max_tokens", 2**64), ("max_tokens", -1), ("max_completion_tokens", 10**30),
        ("repetition_penalty", 1e300), ("n", 2**63),
    ],
)
def test_out_of_range_numbers_are_400(client, live, field, value):
    rest = {k: v for k, v in chat_body().items() if k != field}
    body = json.dumps(rest)[:-1] + f', "{field}": {value}}}'  # written as JSON text: Python's json would refuse
    error = assert_error(post_raw(client, "/v1/chat/completions", body), 400)
    assert error["param"] == field or field in error["message"]
    assert_healthy(live.url)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_400(client, literal):
    for field in ("temperature", "top_p", "repetition_penalty"):
        body = '{"messages": [{"role": "user", "content": "hi"}], "%s": %s}' % (field, literal)
        assert_error(post_raw(client, "/v1/chat/completions", body), 400, param=field)
    assert_error(post_raw(client, "/v1/classify", '{"text": "hi", "threshold": %s}' % literal), 400, param="threshold")


@pytest.mark.parametrize(
    "extra",
    [{"seed": 2**64 - 1}, {"seed": -(2**63)}, {"temperature": 1e-45, "seed": 3}, {"temperature": 5e-324},
     {"temperature": 2.0, "top_p": 1e-300}],
)
def test_extreme_but_valid_sampling_is_answered(client, extra):
    r = client.post("/v1/chat/completions", json=chat_body(**extra))
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["finish_reason"] in ("stop", "length")


def test_overlong_stop_strings_are_400(client):
    assert_error(client.post("/v1/chat/completions", json=chat_body(stop="x" * 10_000)), 400, param="stop")


# --------------------------------------------------------------- content type, host


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x"])
def test_json_only_as_json(client, content_type):
    headers = {"content-type": content_type} if content_type else {}
    r = client.post("/v1/chat/completions", content=json.dumps(chat_body()).encode(), headers=headers)
    assert_error(r, 415, "unsupported_media_type")


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "127.0.0.1.evil.example", "[::2]:80", ""])
def test_foreign_host_names_are_refused(live, host):
    request = (f"POST /v1/classify HTTP/1.1\r\nHost: {host}\r\ncontent-type: application/json\r\n"
               f"content-length: 15\r\nconnection: close\r\n\r\n" + '{"text": "hi!"}').encode()
    reply = raw_request(live.port, request)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), reply[:200]
    assert json.loads(body)["error"]["code"] == "host_not_allowed"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST.", "[::1]"])
def test_loopback_host_names_are_answered(live, host):
    reply = raw_request(live.port, f"GET /healthz HTTP/1.1\r\nHost: {host}:{live.port}\r\nconnection: close\r\n\r\n".encode())
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]


# ------------------------------------------------------------------------ metrics


def test_made_up_methods_do_not_grow_the_metrics(client):
    for i in range(30):
        client.request(f"X{i}CUSTOM", "/v1/models")
        client.request(f"Y{i}", f"/random/{i}")
    text = client.get("/metrics").text
    methods = set(re.findall(r'method="([^"]*)"', text))
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}, methods
    routes = set(re.findall(r'route="([^"]*)"', text))
    assert not any(r.startswith("/random") for r in routes), routes


# ------------------------------------------------------------ slow clients, connections


def _sockets(port: int, n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        socks.append(s)
    return socks


def _closed_by_server(sock: socket.socket, within: float) -> bytes | None:
    """What the server sent before closing ``sock`` within ``within`` s; None if still open."""
    sock.settimeout(0.2)
    data = b""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk
    return None


def test_clients_dripping_headers_are_cut_off(live):
    socks = _sockets(live.port, 40)
    try:
        for s in socks:
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        for _ in range(3):  # keep dripping: a byte a second never completes the headers
            time.sleep(0.6)
            for s in socks:
                try:
                    s.sendall(b"X")
                except OSError:
                    pass
        replies = [_closed_by_server(s, within=6) for s in socks]
        assert all(r is not None for r in replies), "some slow clients were still held open"
        with_body = [r for r in replies if r]
        assert with_body and all(r.startswith(b"HTTP/1.1 408") for r in with_body)
        assert json.loads(with_body[0].partition(b"\r\n\r\n")[2])["error"]["code"] == "request_timeout"
    finally:
        for s in socks:
            s.close()
    assert_healthy(live.url)


def test_clients_dripping_bodies_get_408(live):
    socks = _sockets(live.port, 40)
    try:
        for s in socks:
            s.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
                      b"content-length: 1000\r\n\r\n{\"text\": \"")
        for _ in range(4):
            time.sleep(0.6)
            for s in socks:
                try:
                    s.sendall(b"a")
                except OSError:
                    pass
        replies = [_closed_by_server(s, within=6) for s in socks]
        assert all(r is not None and r.startswith(b"HTTP/1.1 408") for r in replies), replies[:3]
        error = json.loads(replies[0].partition(b"\r\n\r\n")[2])["error"]
        assert error["code"] == "request_timeout" and "did not arrive" in error["message"]
    finally:
        for s in socks:
            s.close()
    assert_healthy(live.url)


def test_connections_over_the_cap_are_closed(engine):
    server = LiveServer(create_app(Assistant(engine=engine)), header_timeout_s=30, max_connections=10)
    try:
        socks = _sockets(server.port, 25)
        closed = [_closed_by_server(s, within=1) for s in socks]
        assert sum(c is not None for c in closed) >= 15, "connections over the cap were kept open"
        for s in socks:
            s.close()
        time.sleep(0.3)
        assert_healthy(server.url)
    finally:
        server.stop()


# ---------------------------------------------------------------- queue: disconnects, admission


def _wait(predicate, within: float) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def _slowed(engine, seconds_per_step: float = 0.02):
    """The tiny generator decodes in about a millisecond a step: slowed down, a long generation keeps
    the batch busy for as long as a test needs (the hook is on this test's own engine)."""
    return engine.generator.model.register_forward_pre_hook(lambda *_: time.sleep(seconds_per_step))


def test_dropped_streams_leave_the_queue_at_once(make_engine):
    fresh_engine = make_engine(max_batch_size=1, max_queue=4)
    _slowed(fresh_engine)
    server = LiveServer(create_app(Assistant(engine=fresh_engine), max_tokens_limit=1000))
    batcher = fresh_engine.batcher()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as busy:
            with busy.stream("POST", "/v1/chat/completions", json=chat_body(max_tokens=LONG, stream=True)) as running:
                assert running.status_code == 200
                lines = running.iter_lines()  # kept: a dropped line iterator would close the response
                next(lines)  # the long generation holds the only batch slot
                for _round in range(3):  # a storm: the queue fills, every client drops, again
                    clients = [httpx.Client(base_url=server.url, timeout=60) for _ in range(4)]
                    streams = [c.stream("POST", "/v1/chat/completions", json=chat_body(stream=True)) for c in clients]
                    for s in streams:
                        assert s.__enter__().status_code == 200
                    _wait(lambda: batcher.queue_depth() == 4, 10)
                    for s, c in zip(streams, clients):
                        s.__exit__(None, None, None)
                        c.close()
                    _wait(lambda: batcher.queue_depth() == 0, 5)  # not when the running batch ends
                assert batcher.active() == 1
                with httpx.Client(base_url=server.url, timeout=60) as fresh:
                    with fresh.stream("POST", "/v1/chat/completions", json=chat_body(stream=True)) as r:
                        assert r.status_code == 200  # admitted: nobody is waiting
    finally:
        server.stop()
        fresh_engine.batcher().close()


def test_admission_refuses_what_cannot_be_served_in_time(make_engine):
    fresh_engine = make_engine(max_batch_size=1, max_queue=64)
    _slowed(fresh_engine)
    # The batcher's first estimate of a batch is 1 s: a request with one batch ahead expects to be finished in
    # about 2 s (that batch, then its own), within the 2.5 s timeout; with two ahead, 3 s: refused.
    server = LiveServer(create_app(Assistant(engine=fresh_engine), max_tokens_limit=1000, request_timeout_s=2.5))
    batcher = fresh_engine.batcher()
    try:
        clients = [httpx.Client(base_url=server.url, timeout=60) for _ in range(3)]
        first = clients[0].stream("POST", "/v1/chat/completions", json=chat_body(max_tokens=LONG, stream=True))
        assert first.__enter__().status_code == 200
        _wait(lambda: batcher.active() == 1, 10)
        second = clients[1].stream("POST", "/v1/chat/completions", json=chat_body(max_tokens=LONG, stream=True))
        assert second.__enter__().status_code == 200  # one batch ahead of it: admitted
        _wait(lambda: batcher.queue_depth() == 1, 10)
        r = clients[2].post("/v1/chat/completions", json=chat_body())
        error = assert_error(r, 429, "queue_full")
        assert "wait" in error["message"] and int(r.headers["retry-after"]) >= 1
        for s in (first, second):
            s.__exit__(None, None, None)
        for c in clients:
            c.close()
        _wait(lambda: batcher.queue_depth() == 0 and batcher.active() == 0, 30)
        assert_healthy(server.url)
    finally:
        server.stop()
        fresh_engine.batcher().close()


# ---------------------------------------------------------------------- classify


def test_long_classify_text_is_encoded_in_bounded_passes(client, engine, phrasebank):
    shapes: list[int] = []
    model = engine.encoder.model
    hook = model.register_forward_pre_hook(lambda m, args, kwargs: shapes.append(kwargs["input_ids"].shape[0]),
                                           with_kwargs=True)
    try:
        text = " ".join(r["sentence"] for r in phrasebank[:400])  # hundreds of 128-token windows
        r = client.post("/v1/classify", json={"text": text[:48_000]})
        assert r.status_code == 200, r.text
    finally:
        hook.remove()
    assert len(shapes) > 1 and max(shapes) <= 32, shapes


# -------------------------------------------------------------------------- docs


def test_docs_work_offline(client):
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assert "cdn.jsdelivr.net" not in html and "fonts.googleapis.com" not in html and "unpkg.com" not in html
        for src in re.findall(r'(?:src|href)="(/[^"]+)"', html):
            assert client.get(src).status_code == 200, src
    assert client.get("/openapi.json").status_code == 200

