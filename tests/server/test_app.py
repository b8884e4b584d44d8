"""The HTTP service (assistant/server/) over the tiny models, through real HTTP.

Each server is a real uvicorn server on a free loopback port in a background
thread; the tests talk to it with httpx and with the official ``openai`` client,
so routing, middleware, streaming and disconnects are exercised the way a
client sees them. The tiny models' weights are random: tests check structure,
counts and invariants, never what the model says.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from live_server import LiveServer, assert_error, sse_events

from assistant import Assistant
from assistant.engine import Engine
from assistant.server import create_app

pytestmark = pytest.mark.timeout(300)

QUESTION = "What does operating profit mean?"
TEXT = "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in the corresponding period in 2007."
#: Enough new tokens that a generation is still running while a test acts on it (the tiny GPT-2
#: never ends by itself: its EOS row is zeroed).
LONG = 800  # new tokens: with the ask system prompt, within the tiny model's window of 1024


@pytest.fixture(scope="module")
def engine(tiny_gpt2_dir, tiny_bert_dir) -> Engine:
    return Engine(generator=tiny_gpt2_dir, encoder=tiny_bert_dir, device="cpu")


def _serve(app) -> Iterator[LiveServer]:
    server = LiveServer(app)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def live(engine) -> Iterator[LiveServer]:
    """The main server: default batcher, a 1000-token max_tokens limit, a 20 kB body limit."""
    yield from _serve(create_app(Assistant(engine=engine), max_body_bytes=20_000, max_tokens_limit=1000,
                                 max_input_tokens=600))


@pytest.fixture(scope="module")
def client(live) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def openai_client(live):
    openai = pytest.importorskip("openai")
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key="x", max_retries=0, timeout=120)


def chat_body(content: str = QUESTION, **extra) -> dict:
    return {"messages": [{"role": "user", "content": content}], "max_tokens": 16, "temperature": 0, **extra}


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text ``text`` (0 if absent)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        sample, value = line.rsplit(" ", 1)
        found = dict(re.findall(r'(\w+)="([^"]*)"', sample))
        if sample.split("{")[0] == name and found == labels:
            return float(value)
    return 0.0


def wait_idle(engine: Engine, within: float) -> float:
    """Seconds until the engine's batcher has nothing running or waiting (fails after ``within``)."""
    started = time.monotonic()
    batcher = engine.batcher()
    while batcher.active() or batcher.queue_depth():
        assert time.monotonic() - started < within, f"still busy: {batcher.active()} active, {batcher.queue_depth()} waiting"
        time.sleep(0.01)
    return time.monotonic() - started


# ----------------------------------------------------------------- operations


def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


def test_healthz_503_and_errors_when_a_model_cannot_load(tmp_path, tiny_bert_dir):
    broken = tmp_path / "broken-generator"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    app = create_app(Assistant(generator=broken, encoder=tiny_bert_dir, device="cpu"))
    server = LiveServer(app, wait_healthy=False)
    try:
        deadline = time.monotonic() + 60
        while (r := httpx.get(f"{server.url}/healthz")).json()["status"] == "loading":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert r.status_code == 503
        assert r.json()["status"] == "error" and "generator" in r.json()["detail"]
        error = assert_error(httpx.post(f"{server.url}/v1/chat/completions", json=chat_body()), 500, "model_load")
        assert error["type"] == "server_error"
        # The encoder loaded: classification still works.
        assert httpx.post(f"{server.url}/v1/classify", json={"text": TEXT}).status_code == 200
    finally:
        server.stop()


def test_models_list(client, tiny_gpt2_dir, tiny_bert_dir):
    r = client.get("/v1/models")
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "list"
    by_role = {m["role"]: m for m in body["data"]}
    assert by_role["generator"]["id"] == str(tiny_gpt2_dir)
    assert by_role["encoder"]["id"] == str(tiny_bert_dir)
    assert all(m["object"] == "model" and m["loaded"] for m in body["data"])


def test_docs_and_openapi(client):
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/v1/chat/completions", "/v1/models", "/v1/summarize", "/v1/classify", "/healthz", "/metrics"):
        assert path in paths


def test_unknown_route_is_an_openai_error(client):
    assert_error(client.get("/v1/nothing-here"), 404, "not_found")
    assert_error(client.get("/v1/chat/completions"), 405, "method_not_allowed")


# ------------------------------------------------------------------------ chat


def test_chat_completion(client, tiny_gpt2_dir):
    r = client.post("/v1/chat/completions", json=chat_body())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == str(tiny_gpt2_dir)
    (choice,) = body["choices"]
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0
    assert 1 <= usage["completion_tokens"] <= 16
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_stream_concatenates_to_the_non_stream_text(client):
    body = chat_body(max_tokens=24)
    plain = client.post("/v1/chat/completions", json=body).json()
    with client.stream("POST", "/v1/chat/completions",
                       json={**body, "stream": True, "stream_options": {"include_usage": True}}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    finish, usage = chunks[-2], chunks[-1]
    assert finish["choices"][0]["finish_reason"] == plain["choices"][0]["finish_reason"]
    assert usage["choices"] == [] and usage["usage"] == plain["usage"]
    content = [c["choices"][0]["delta"].get("content", "") for c in chunks[1:-2]]
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-2])
    assert "".join(content).strip() == plain["choices"][0]["message"]["content"]
    assert len(content) > 1  # streamed piece by piece, not in one go


def test_stream_without_usage_ends_with_finish_reason_then_done(client):
    with client.stream("POST", "/v1/chat/completions", json=chat_body(max_tokens=4, stream=True)) as r:
        events = sse_events(r)
    assert events[-1] == "[DONE]"
    last = json.loads(events[-2])
    assert last["choices"][0]["finish_reason"] == "length" and last.get("usage") is None


def test_stop_string(client):
    plain = client.post("/v1/chat/completions", json=chat_body(max_tokens=24)).json()["choices"][0]["message"]["content"]
    word = plain.split()[1] if len(plain.split()) > 1 else plain[:2]
    r = client.post("/v1/chat/completions", json=chat_body(max_tokens=24, stop=[word]))
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert word not in choice["message"]["content"]


def test_model_field(client, tiny_gpt2_dir, tiny_bert_dir):
    for name in ("default", str(tiny_gpt2_dir)):
        assert client.post("/v1/chat/completions", json=chat_body(model=name, max_tokens=2)).status_code == 200
    for name in ("gpt-4o", str(tiny_bert_dir)):
        assert_error(client.post("/v1/chat/completions", json=chat_body(model=name)), 404, "model_not_found", "model")


def test_text_parts_and_system_messages(client):
    body = chat_body(max_tokens=4)
    body["messages"] = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": "What is "}, {"type": "text", "text": "EBITDA?"}]},
    ]
    assert client.post("/v1/chat/completions", json=body).status_code == 200


def test_openai_client(openai_client, tiny_gpt2_dir):
    messages = [{"role": "user", "content": QUESTION}]
    completion = openai_client.chat.completions.create(
        model=str(tiny_gpt2_dir), messages=messages, max_tokens=12, temperature=0
    )
    text = completion.choices[0].message.content
    assert completion.usage.completion_tokens <= 12
    stream = openai_client.chat.completions.create(
        model="default", messages=messages, max_tokens=12, temperature=0, stream=True,
        stream_options={"include_usage": True},
    )
    pieces, usage, reasons = [], None, []
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            reasons.append(choice.finish_reason)
    assert "".join(pieces).strip() == text
    assert reasons[-1] == completion.choices[0].finish_reason
    assert usage.completion_tokens == completion.usage.completion_tokens
    assert next(m.id for m in openai_client.models.list()) == str(tiny_gpt2_dir)


def test_openai_client_errors(openai_client):
    import openai

    with pytest.raises(openai.NotFoundError) as info:
        openai_client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert info.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        openai_client.chat.completions.create(model="default", messages=[{"role": "user", "content": "hi"}], n=2)


def test_parallel_requests_are_batched(live, engine):
    metrics = httpx.get(f"{live.url}/metrics").text
    batched_before = metric(metrics, "finassist_batch_size_count") - metric(metrics, "finassist_batch_size_bucket", le="1.0")

    def one(i: int) -> httpx.Response:
        return httpx.post(f"{live.url}/v1/chat/completions", json=chat_body(f"{QUESTION} ({i})", max_tokens=48), timeout=120)

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(one, range(8)))
    assert [r.status_code for r in responses] == [200] * 8
    assert all(r.json()["usage"]["completion_tokens"] >= 1 for r in responses)
    metrics = httpx.get(f"{live.url}/metrics").text
    batched = metric(metrics, "finassist_batch_size_count") - metric(metrics, "finassist_batch_size_bucket", le="1.0")
    assert batched > batched_before, "no batch of more than one request"
    wait_idle(engine, 5)


def test_client_disconnect_cancels_the_generation(live, engine, client):
    before = httpx.get(f"{live.url}/metrics").text
    with (
        httpx.Client(base_url=live.url, timeout=60) as c,
        c.stream("POST", "/v1/chat/completions", json=chat_body(max_tokens=LONG, stream=True)) as r,
    ):
        for line in r.iter_lines():  # up to the first generated text
            if line.startswith("data: ") and json.loads(line[6:])["choices"][0]["delta"].get("content"):
                break
        assert engine.batcher().active() == 1
    # Leaving both blocks closed the connection: the server must notice and free the slot at once.
    wait_idle(engine, 2)
    deadline = time.monotonic() + 5
    while True:
        after = httpx.get(f"{live.url}/metrics").text
        cancelled = metric(after, "finassist_chat_completions_total", finish_reason="cancelled")
        if cancelled > metric(before, "finassist_chat_completions_total", finish_reason="cancelled"):
            break
        assert time.monotonic() < deadline, "the cancelled completion was never recorded"
        time.sleep(0.05)
    generated = metric(after, "finassist_generated_tokens_total") - metric(before, "finassist_generated_tokens_total")
    assert generated < LONG, "the generation ran to its end"
    assert client.post("/v1/chat/completions", json=chat_body(max_tokens=4)).status_code == 200


def test_non_stream_disconnect_cancels_too(live, engine):
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{live.url}/v1/chat/completions", json=chat_body(max_tokens=LONG), timeout=0.3)
    assert wait_idle(engine, 5) < 5


# ----------------------------------------------------------------------- tasks


def test_summarize(client, tiny_gpt2_dir):
    r = client.post("/v1/summarize", json={"text": TEXT, "style": "headline", "max_words": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == str(tiny_gpt2_dir)
    assert body["style"] == "headline" and body["chunks"] == 1 and body["source_tokens"] > 0
    assert set(body) == {"model", "text", "style", "method", "bullets", "sources", "chunks", "source_tokens",
                         "seconds"}
    assert len(body["text"].split()) <= 6  # five words, maybe a trailing ellipsis
    assert body["sources"] and all(TEXT[s["start"]:s["end"]] == s["text"] for s in body["sources"])


def test_summary_bullets_carry_their_sources(client):
    r = client.post("/v1/summarize", json={"text": TEXT, "max_words": 40})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["method"] == "extract" and body["bullets"]
    for bullet in body["bullets"]:
        assert bullet["origin"] in ("rewritten", "source") and bullet["sources"]
        assert all(TEXT[s["start"]:s["end"]] == s["text"] for s in bullet["sources"])
    chunked = client.post("/v1/summarize", json={"text": TEXT, "max_words": 40, "method": "chunked"}).json()
    assert chunked["method"] == "chunked" and all(b["sources"] == [] for b in chunked["bullets"])


def test_summarize_errors(client):
    assert_error(client.post("/v1/summarize", json={"text": "   "}), 422, "empty_input")
    assert_error(client.post("/v1/summarize", json={"text": TEXT, "style": "haiku"}), 400, param="style")
    assert_error(client.post("/v1/summarize", json={"text": TEXT, "max_words": 1}), 400, param="max_words")
    assert_error(client.post("/v1/summarize", json={"text": TEXT, "method": "abstractive"}), 400, param="method")


def test_classify_list_and_single(client, tiny_bert_dir):
    r = client.post("/v1/classify", json={"task": "sentiment", "texts": [TEXT, "Sales fell sharply."]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == str(tiny_bert_dir) and body["task"] == "sentiment"
    assert len(body["results"]) == 2
    for result in body["results"]:
        assert {s["label"] for s in result["scores"]} == {"positive", "negative", "neutral"}
        assert len(result["labels"]) == 1 and result["multi_label"] is False
    single = client.post("/v1/classify", json={"text": TEXT}).json()["results"]
    assert len(single) == 1 and single[0]["labels"] == body["results"][0]["labels"]
    batched = {s["label"]: s["score"] for s in body["results"][0]["scores"]}
    assert {s["label"]: pytest.approx(batched[s["label"]], abs=1e-4) for s in single[0]["scores"]} == batched
    multi = client.post("/v1/classify", json={"task": "contract-clause", "text": TEXT, "threshold": 0.0}).json()
    assert multi["results"][0]["multi_label"] is True


def test_classify_errors(client):
    assert_error(client.post("/v1/classify", json={"text": TEXT, "texts": [TEXT]}), 400)
    assert_error(client.post("/v1/classify", json={}), 400)
    assert_error(client.post("/v1/classify", json={"text": TEXT, "task": "astrology"}), 404, "unknown_task")
    assert_error(client.post("/v1/classify", json={"texts": []}), 422, "empty_input")
    assert_error(client.post("/v1/classify", json={"texts": [TEXT, 5]}), 400, param="texts.1")


# ------------------------------------------------------------------- metrics


def test_metrics(client):
    before = client.get("/metrics").text
    chat = client.post("/v1/chat/completions", json=chat_body(max_tokens=8)).json()
    with client.stream("POST", "/v1/chat/completions", json=chat_body(max_tokens=8, stream=True)) as r:
        sse_events(r)
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    after = r.text
    for name in ("finassist_http_requests_total", "finassist_http_request_duration_seconds_bucket",
                 "finassist_time_to_first_token_seconds_bucket", "finassist_generated_tokens_total",
                 "finassist_queue_depth", "finassist_active_requests", "finassist_batch_size_bucket"):
        assert f"\n{name}" in after, name
    labels = {"route": "/v1/chat/completions", "method": "POST", "status": "200"}
    assert metric(after, "finassist_http_requests_total", **labels) == metric(before, "finassist_http_requests_total", **labels) + 2
    tokens = metric(after, "finassist_generated_tokens_total") - metric(before, "finassist_generated_tokens_total")
    assert tokens == 2 * chat["usage"]["completion_tokens"]  # greedy: the stream generated the same tokens
    ttft = metric(after, "finassist_time_to_first_token_seconds_count") - metric(before, "finassist_time_to_first_token_seconds_count")
    assert ttft == 2
    assert metric(after, "finassist_queue_depth") == 0
    # Error answers are counted by status; unknown paths share one label.
    client.get("/no/such/path")
    assert metric(client.get("/metrics").text, "finassist_http_requests_total", route="other", method="GET", status="404") >= 1


# ---------------------------------------------------------------- bad inputs


def _post(client: httpx.Client, content: bytes, content_type: str = "application/json") -> httpx.Response:
    return client.post("/v1/chat/completions", content=content, headers={"content-type": content_type})


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"messages": "hi"}, 400, "invalid_request", "messages"),
        ({"messages": []}, 400, "invalid_request", "messages"),
        ({}, 400, "invalid_request", "messages"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, 400, "invalid_request", "messages.0.role"),
        ({"messages": [{"role": "user"}]}, 400, "invalid_request", "messages.0.content"),
        ({"messages": [{"role": "user", "content": "  "}]}, 400, "invalid_request", "messages"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
         400, "invalid_request", None),
        (chat_body(max_tokens="5"), 400, "invalid_request", "max_tokens"),
        (chat_body(max_tokens=0), 400, "invalid_request", "max_tokens"),
        (chat_body(temperature=-1), 400, "invalid_request", "temperature"),
        (chat_body(temperature="hot"), 400, "invalid_request", "temperature"),
        (chat_body(stream="yes"), 400, "invalid_request", "stream"),
        (chat_body(n=2), 400, "invalid_request", "n"),
        (chat_body(max_tokens=5000), 400, "max_tokens_too_large", "max_tokens"),
        (chat_body(max_completion_tokens=5000), 400, "max_tokens_too_large", "max_completion_tokens"),
        (chat_body(model="nope"), 404, "model_not_found", "model"),
        (chat_body("word " * 2000), 413, "input_too_long", None),
        ([1, 2], 400, "invalid_request", None),
    ],
)
def test_bad_chat_requests(client, body, status, code, param):
    assert_error(client.post("/v1/chat/completions", json=body), status, code, param)


def test_extra_fields_are_ignored_and_n_1_is_fine(client):
    r = client.post("/v1/chat/completions", json=chat_body(n=1, user="u1", logprobs=False, frequency_penalty=0))
    assert r.status_code == 200


def test_malformed_and_non_utf8_bodies(client):
    error = assert_error(_post(client, b'{"messages": [{"role": "user", "content": "hi"}'), 400, "invalid_json")
    assert "JSON" in error["message"]
    assert_error(_post(client, '{"messages": [{"role": "user", "content": "caf\u00e9"}]}'.encode("latin-1")), 400, "not_utf8")
    assert_error(_post(client, b"hello", "text/plain"), 415, "unsupported_media_type")
    # JSON only as JSON: without a Content-Type (or as text/plain, which a web page can post to any
    # server without a CORS preflight) the body is refused before it is read.
    r = client.post("/v1/chat/completions", content=json.dumps(chat_body(max_tokens=2)).encode())
    assert_error(r, 415, "unsupported_media_type")
    r = _post(client, json.dumps(chat_body(max_tokens=2)).encode(), "application/json; charset=utf-8")
    assert r.status_code == 200, r.text


def test_oversized_bodies(client):
    big = json.dumps(chat_body("x" * 30_000)).encode()
    assert_error(_post(client, big), 413, "body_too_large")  # by Content-Length

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit counts what arrives
        for i in range(0, len(big), 4096):
            yield big[i : i + 4096]

    r = client.post("/v1/chat/completions", content=chunked(), headers={"content-type": "application/json"})
    assert "content-length" not in r.request.headers
    assert_error(r, 413, "body_too_large")


def test_request_timeout(engine):
    server = LiveServer(create_app(Assistant(engine=engine), request_timeout_s=0.5))
    try:
        r = httpx.post(f"{server.url}/v1/chat/completions", json=chat_body(max_tokens=LONG), timeout=60)
        assert_error(r, 504, "timeout")
        with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=chat_body(max_tokens=LONG, stream=True),
                          timeout=60) as r:
            events = sse_events(r)
        assert json.loads(events[-1])["error"]["code"] == "timeout"
        assert wait_idle(engine, 5) < 5
    finally:
        server.stop()


def test_the_request_timeout_counts_from_the_requests_arrival(engine):
    # A body that takes 1.5 s to arrive leaves 0.5 s of a 2 s timeout: the answer is a 504 about 2 s after
    # the request began, not 2 s after its body was read (the client waits from the start).
    import socket

    server = LiveServer(create_app(Assistant(engine=engine), request_timeout_s=2.0, body_timeout_s=10))
    try:
        body = json.dumps(chat_body(max_tokens=LONG)).encode()
        head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            started = time.monotonic()
            sock.sendall(head + body[:10])
            time.sleep(1.5)
            sock.sendall(body[10:])
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            elapsed = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 504") and b'"timeout"' in answer
        assert 1.9 < elapsed < 3.0, elapsed
        assert wait_idle(engine, 5) < 5
    finally:
        server.stop()


# --------------------------------------------------------------- queue limits


def test_queue_full_answers_429_with_retry_after(make_engine):
    small = make_engine(max_batch_size=1, max_queue=1)
    server = LiveServer(create_app(Assistant(engine=small)))
    try:
        def one(i: int) -> httpx.Response:
            body = chat_body(f"{QUESTION} ({i})", max_tokens=300)
            return httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=120)

        with ThreadPoolExecutor(6) as pool:
            responses = list(pool.map(one, range(6)))
        statuses = sorted(r.status_code for r in responses)
        assert statuses.count(200) >= 2 and statuses.count(429) >= 1, statuses
        assert set(statuses) == {200, 429}
        for r in responses:
            if r.status_code == 429:
                error = assert_error(r, 429, "queue_full")
                assert error["type"] == "rate_limit_error"
                assert int(r.headers["retry-after"]) >= 1
        wait_idle(small, 10)
        assert httpx.post(f"{server.url}/v1/chat/completions", json=chat_body(max_tokens=2)).status_code == 200
    finally:
        server.stop()
        small.batcher().close()


# -------------------------------------------------------------------- API key


def test_api_key(engine):
    server = LiveServer(create_app(Assistant(engine=engine), api_key="s3cret"))
    try:
        url = f"{server.url}/v1/chat/completions"
        error = assert_error(httpx.post(url, json=chat_body(max_tokens=2)), 401, "invalid_api_key")
        assert "API key" in error["message"]
        wrong = httpx.post(url, json=chat_body(max_tokens=2), headers={"Authorization": "Bearer nope"})
        assert_error(wrong, 401, "invalid_api_key")
        assert wrong.headers["www-authenticate"] == "Bearer"
        ok = httpx.post(url, json=chat_body(max_tokens=2), headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert_error(httpx.get(f"{server.url}/metrics"), 401)
        assert_error(httpx.get(f"{server.url}/v1/models"), 401)
        assert httpx.get(f"{server.url}/healthz").status_code == 200  # health checks need no key
        # A body that is not even JSON gets 401, not 400: nothing is parsed before authentication.
        assert_error(httpx.post(url, content=b"{not json"), 401)

        openai = pytest.importorskip("openai")
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{server.url}/v1", api_key="nope", max_retries=0).models.list()
        keyed = openai.OpenAI(base_url=f"{server.url}/v1", api_key="s3cret", max_retries=0)
        answer = keyed.chat.completions.create(model="default", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
        assert answer.usage.completion_tokens >= 1
    finally:
        server.stop()


# ------------------------------------------------------------------------ CLI


def test_engine_imports_without_fastapi(make_env):
    code = (
        "import sys, assistant, assistant.engine, assistant.batching, assistant.cli; "
        "bad = [m for m in ('fastapi', 'pydantic', 'starlette', 'uvicorn', 'prometheus_client') if m in sys.modules]; "
        "assert not bad, bad"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=make_env(), timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr


def test_cli_serve(tiny_gpt2_dir, tiny_bert_dir, make_env):
    """``finassist serve`` end to end: a real process, a free port, an API key from the environment."""
    cmd = [sys.executable, "-m", "assistant", "serve", "--generator", str(tiny_gpt2_dir), "--encoder",
           str(tiny_bert_dir), "--device", "cpu", "--port", "0", "--max-batch-size", "4"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=make_env(FINASSIST_API_KEY="k3y"))
    try:
        port = None
        for line in proc.stdout:
            if m := re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", line):
                port = int(m.group(1))
                break
        assert port, "the server did not report its address"
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/healthz").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert httpx.post(f"{url}/v1/chat/completions", json=chat_body(max_tokens=2)).status_code == 401
        r = httpx.post(f"{url}/v1/chat/completions", json=chat_body(max_tokens=2), headers={"Authorization": "Bearer k3y"})
        assert r.status_code == 200, r.text
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0


def test_cli_serve_rejects_bad_limits(run_cli):
    result = run_cli("serve", "--max-queue", "0")
    assert result.returncode == 2 and "must be positive" in result.stderr


if os.name != "posix":  # pragma: no cover - SIGINT to a child process
    test_cli_serve = pytest.mark.skip("needs POSIX signals")(test_cli_serve)


def test_classify_with_a_fine_tuned_run(engine, unfair_run):
    """A task served by a fine-tuned run (one with no zero-shot label set) answers through the API."""
    assistant = Assistant(engine=Engine(generator=engine.generator_spec, encoder=engine.encoder_spec, device="cpu"),
                          classifiers={"unfair-tos": unfair_run})
    server = LiveServer(create_app(assistant))
    try:
        body = httpx.post(f"{server.url}/v1/classify",
                          json={"task": "unfair-tos", "texts": ["We may terminate your account at any time.",
                                                                "Welcome to our service."]}).json()
        assert body["model"] == unfair_run.name and body["task"] == "unfair-tos"
        assert len(body["results"]) == 2 and all(r["multi_label"] for r in body["results"])
        labels = {s["label"] for s in body["results"][0]["scores"]}
        assert "Unilateral termination" in labels
    finally:
        server.stop()
