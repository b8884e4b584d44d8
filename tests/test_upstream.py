"""Scale-out path: a finassist service generating on an upstream OpenAI-compatible server.

The upstream is a second instance of our own server on loopback (tiny models);
the front service is configured with ``upstream=`` and must answer chat,
streaming and summaries with the upstream's generations, and report upstream
failures as clear errors.
"""

from __future__ import annotations

import json

import httpx
import pytest

from assistant import Assistant, Engine, SamplingParams
from assistant.server import create_app
from assistant.errors import QueueFullError
from assistant.settings import BatchSettings
from assistant.upstream import UpstreamBatcher, UpstreamError

from live_server import LiveServer

pytestmark = pytest.mark.timeout(300)

MESSAGES = [{"role": "user", "content": "What does operating profit mean?"}]


@pytest.fixture(scope="module")
def upstream(tiny_gpt2_dir, tiny_bert_dir):
    engine = Engine(generator=tiny_gpt2_dir, encoder=tiny_bert_dir, device="cpu")
    server = LiveServer(create_app(Assistant(engine=engine)))
    yield server, engine
    server.stop()


@pytest.fixture(scope="module")
def front(upstream, tiny_gpt2_dir, tiny_bert_dir):
    upstream_server, _ = upstream
    assistant = Assistant(generator=tiny_gpt2_dir, encoder=tiny_bert_dir, device="cpu", upstream=upstream_server.url)
    server = LiveServer(create_app(assistant))
    yield server, assistant
    server.stop()


def _metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name) and "{" in line)


def test_engine_generate_goes_upstream(upstream, tiny_gpt2_dir, tiny_bert_dir):
    server, _ = upstream
    # What the upstream answers these messages with (a finassist upstream answers as its chat route does).
    body = {"messages": MESSAGES, "max_tokens": 10, "temperature": 0, "top_p": 1.0}
    direct = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=120).json()
    remote = Engine(generator=tiny_gpt2_dir, encoder=tiny_bert_dir, device="cpu", upstream=server.url)
    result = remote.generate(MESSAGES, SamplingParams(max_new_tokens=10))
    assert result.text == direct["choices"][0]["message"]["content"]
    assert result.completion_tokens == direct["usage"]["completion_tokens"] == 10
    assert result.prompt_tokens == direct["usage"]["prompt_tokens"]
    assert isinstance(remote.batcher(), UpstreamBatcher), "the front engine generated locally"


def test_upstream_generate_is_admitted_like_a_stream(upstream, tiny_gpt2_dir, tiny_bert_dir):
    """generate() takes the same in-flight limit as stream(): with one running and one waiting, a third
    caller is refused at once, whichever of the two it uses."""
    server, _ = upstream
    remote = Engine(generator=tiny_gpt2_dir, encoder=tiny_bert_dir, device="cpu", upstream=server.url,
                    batch_settings=BatchSettings(max_batch_size=1, max_queue=1))
    held = [remote.stream(MESSAGES, SamplingParams(max_new_tokens=400)) for _ in range(2)]
    try:
        with pytest.raises(QueueFullError, match="busy"):
            remote.generate(MESSAGES, SamplingParams(max_new_tokens=4))
    finally:
        for handle in held:
            handle.cancel()
            list(handle)


def test_repetition_penalty_reaches_the_upstream(upstream, tiny_gpt2_dir, tiny_bert_dir):
    server, local = upstream
    messages = [{"role": "system", "content": "Answer briefly."}, *MESSAGES]  # its own: the upstream keeps it
    plain = local.generate(messages, SamplingParams(max_new_tokens=24))
    penalised = local.generate(messages, SamplingParams(max_new_tokens=24, repetition_penalty=2.0))
    assert penalised.text != plain.text, "the penalty changes nothing on this model: pick another prompt"
    remote = Engine(generator=tiny_gpt2_dir, encoder=tiny_bert_dir, device="cpu", upstream=server.url)
    assert remote.generate(messages, SamplingParams(max_new_tokens=24, repetition_penalty=2.0)).text == penalised.text


def test_chat_through_front_equals_upstream(front, upstream):
    front_server, _ = front
    upstream_server, _ = upstream
    body = {"messages": MESSAGES, "max_tokens": 12, "temperature": 0}
    before = _metric(upstream_server.url, "finassist_chat_completions_total")
    via_front = httpx.post(f"{front_server.url}/v1/chat/completions", json=body, timeout=120).json()
    direct = httpx.post(f"{upstream_server.url}/v1/chat/completions", json=body, timeout=120).json()
    assert via_front["choices"][0]["message"]["content"] == direct["choices"][0]["message"]["content"]
    assert via_front["usage"]["completion_tokens"] == 12
    assert _metric(upstream_server.url, "finassist_chat_completions_total") >= before + 2


def test_streaming_through_front(front, upstream):
    front_server, _ = front
    upstream_server, _ = upstream
    body = {"messages": MESSAGES, "max_tokens": 12, "temperature": 0}
    direct = httpx.post(f"{upstream_server.url}/v1/chat/completions", json=body, timeout=120).json()
    pieces = []
    with httpx.stream("POST", f"{front_server.url}/v1/chat/completions", json={**body, "stream": True}, timeout=120) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                for choice in json.loads(line[6:]).get("choices", []):
                    pieces.append(choice["delta"].get("content") or "")
    assert len([p for p in pieces if p]) > 1
    assert "".join(pieces).strip() == direct["choices"][0]["message"]["content"]


def test_summarize_task_runs_on_the_upstream(front):
    front_server, _ = front
    text = "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn. Net sales increased by 5 %."
    r = httpx.post(f"{front_server.url}/v1/summarize", json={"text": text, "style": "headline"}, timeout=120)
    assert r.status_code == 200, r.text
    assert r.json()["style"] == "headline"


def test_unreachable_upstream_is_a_clear_error(tiny_gpt2_dir, tiny_bert_dir):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    engine = Engine(generator=tiny_gpt2_dir, encoder=tiny_bert_dir, device="cpu", upstream=f"http://127.0.0.1:{port}")
    with pytest.raises(UpstreamError, match="unreachable"):
        engine.generate(MESSAGES, SamplingParams(max_new_tokens=4))
