"""One question through the four front doors: the Python API, the CLI, the web chat and the
OpenAI-compatible HTTP chat (and ``/v1/ask``) give the same answer, because all of them take the ask
task's turn: its system prompt (unless an HTTP client sends its own), its sampling defaults, and the
not-investment-advice notice where the question asks for advice. Real models (tiny), real HTTP,
a real Gradio client, a real CLI subprocess."""

from __future__ import annotations

import json
import os

import httpx
import pytest

from assistant import Assistant
from assistant.prompts import load_prompt
from assistant.server import create_app
from live_server import LiveServer

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
gradio_client = pytest.importorskip("gradio_client")
pytestmark = pytest.mark.timeout(600)

ADVICE = "Should I buy Nokia shares now?"
PLAIN = "What does operating profit mean?"
NOTICE = load_prompt("ask")["notice"]


@pytest.fixture(scope="module")
def assistant(tiny_gpt2_dir, tiny_bert_dir) -> Assistant:
    return Assistant(generator=tiny_gpt2_dir, encoder=tiny_bert_dir, device="cpu", audit=None)


@pytest.fixture(scope="module")
def live(assistant):
    server = LiveServer(create_app(assistant, ui=True))
    yield server
    server.stop()


@pytest.fixture
def web(live):
    """A new page session each time (the chat keeps the history of its session)."""
    client = gradio_client.Client(f"{live.url}/", verbose=False)
    yield client
    client.close()


def _http_chat(url: str, messages: list[dict], stream: bool = False) -> tuple[str, dict | None]:
    body = {"messages": messages, "temperature": 0}
    if not stream:
        data = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=300).json()
        return data["choices"][0]["message"]["content"], data["usage"]
    text = ""
    with httpx.stream("POST", f"{url}/v1/chat/completions", json={**body, "stream": True}, timeout=300) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                for choice in json.loads(line[6:])["choices"]:
                    text += choice["delta"].get("content") or ""
    return text, None


@pytest.mark.parametrize("question", [ADVICE, PLAIN], ids=["advice", "plain"])
def test_four_front_doors_give_the_same_answer(question, assistant, live, web, run_cli, tiny_gpt2_dir,
                                              tiny_bert_dir):
    expected = assistant.ask(question)
    assert expected.advice_notice == (question == ADVICE)
    assert expected.text.endswith(NOTICE) == (question == ADVICE)
    assert expected.generation.prompt_tokens > assistant.engine.count_tokens(question) + 20, "no system prompt"

    chat, usage = _http_chat(live.url, [{"role": "user", "content": question}])
    assert chat == expected.text
    assert usage["prompt_tokens"] == expected.generation.prompt_tokens  # the same prompt: ask's system prompt
    streamed, _ = _http_chat(live.url, [{"role": "user", "content": question}], stream=True)
    assert streamed.strip() == expected.text

    asked = httpx.post(f"{live.url}/v1/ask", json={"question": question}, timeout=300).json()
    assert asked["text"] == expected.text and asked["advice_notice"] == expected.advice_notice

    assert web.predict(question, api_name="/chat") == expected.text

    models = ["--generator", str(tiny_gpt2_dir), "--encoder", str(tiny_bert_dir), "--device", "cpu", "--no-audit"]
    proc = run_cli("ask", *models, "--json", question)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["text"] == expected.text


def test_a_client_system_message_is_kept_and_the_notice_still_applies(assistant, live):
    own = [{"role": "system", "content": "Answer in one word."}, {"role": "user", "content": ADVICE}]
    text, usage = _http_chat(live.url, own)
    assert text.endswith(NOTICE)
    rendered = assistant.engine.count_tokens(assistant.engine.render_chat(own))
    assert usage["prompt_tokens"] == rendered  # the client's system message, not ask's
    assert usage["prompt_tokens"] < assistant.ask(ADVICE).generation.prompt_tokens


def test_ask_route_refuses_bad_bodies_with_json(live):
    r = httpx.post(f"{live.url}/v1/ask", json={"question": 5}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["param"] == "question"
    r = httpx.post(f"{live.url}/v1/ask", json={"question": "   "}, timeout=30)
    assert r.status_code == 422 and r.json()["error"]["code"] == "empty_input"  # as /v1/summarize answers it
    r = httpx.post(f"{live.url}/v1/ask", json={"question": PLAIN, "max_tokens": 10**6}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["code"] == "max_tokens_too_large"
