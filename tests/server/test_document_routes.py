"""The document routes (assistant/server/routes/documents.py) and grounded answers over HTTP: a real
server on the tiny GPT-2 and the real MiniLM, talked to with httpx and the official openai client."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import httpx
import pytest
from live_server import LiveServer, assert_error, sse_events
from pdfs import text_pdf

from assistant import Assistant
from assistant.prompts import load_prompt
from assistant.server import create_app

pytestmark = pytest.mark.timeout(300)

NOT_FOUND = load_prompt("ask")["grounding"]["not_found"]
CAPEX_QUESTION = "What was capital expenditure in 2023?"


def upload(client: httpx.Client, name: str, content: bytes) -> httpx.Response:
    return client.post("/v1/documents", json={"name": name, "content_base64": base64.b64encode(content).decode()})


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    return tmp_path_factory.mktemp("library") / "library.sqlite"


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> bytes:
    path = text_pdf(tmp_path_factory.mktemp("files") / "10k-2023.pdf",
                    ["Annual report 2023. Letter to shareholders.",
                     "Capital expenditure | 2023: $4.2 billion | 2022: $3.9 billion"])
    return path.read_bytes()


def _serve(retrieval_engine, library, **limits) -> Iterator[LiveServer]:
    server = LiveServer(create_app(Assistant(engine=retrieval_engine, documents=library, audit=False), **limits))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def live(retrieval_engine, library) -> Iterator[LiveServer]:
    yield from _serve(retrieval_engine, library, max_body_bytes=20_000, max_upload_bytes=150_000)


@pytest.fixture(scope="module")
def client(live) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def added(client, report) -> dict:
    response = upload(client, "10k-2023.pdf", report)
    assert response.status_code == 201, response.text
    return response.json()


def test_an_uploaded_pdf_is_listed_with_its_pages(client, added):
    assert added["created"] is True and added["replaced"] is None
    document = added["document"]
    assert (document["name"], document["pages"], document["source"]) == ("10k-2023.pdf", 2, "upload")
    listed = client.get("/v1/documents").json()
    assert listed["object"] == "list" and document in listed["data"]


def test_the_same_file_uploaded_again_is_not_added(client, added, report):
    again = upload(client, "copy.pdf", report)
    assert again.status_code == 200
    assert again.json()["created"] is False and again.json()["document"] == added["document"]
    assert len(client.get("/v1/documents").json()["data"]) == 1


def test_ask_answers_with_citations_or_declines(client, added):
    answer = client.post("/v1/ask", json={"question": CAPEX_QUESTION, "max_tokens": 6}).json()
    assert answer["declined"] is False
    assert (answer["citations"][0]["document"], answer["citations"][0]["page"]) == ("10k-2023.pdf", 2)
    assert "$4.2 billion" in answer["citations"][0]["passage"]
    declined = client.post("/v1/ask", json={"question": "What is the CEO's favourite colour?"}).json()
    assert declined["declined"] is True and declined["citations"] == []
    assert declined["text"] == NOT_FOUND and declined["usage"]["completion_tokens"] == 0


def test_chat_completions_carry_citations_in_the_extension_field(client, live, added):
    body = {"messages": [{"role": "user", "content": CAPEX_QUESTION}], "max_tokens": 6}
    completion = client.post("/v1/chat/completions", json=body).json()
    assert completion["citations"][0]["document"] == "10k-2023.pdf"
    events = [json.loads(e) for e in sse_events(client.post("/v1/chat/completions", json={**body, "stream": True}))
              if e != "[DONE]"]
    assert events[0]["citations"][0]["page"] == 2
    assert all("citations" not in e for e in events[1:])
    declined = client.post("/v1/chat/completions", json={
        "messages": [{"role": "user", "content": "What is the CEO's favourite colour?"}], "stream": True})
    pieces = [json.loads(e) for e in sse_events(declined) if e != "[DONE]"]
    assert pieces[0]["citations"] == []
    assert "".join(p["choices"][0]["delta"].get("content", "") for p in pieces if p["choices"]) == NOT_FOUND

    openai = pytest.importorskip("openai")
    answer = openai.OpenAI(base_url=f"{live.url}/v1", api_key="x", max_retries=0).chat.completions.create(
        model="default", messages=body["messages"], max_tokens=6)
    assert answer.choices[0].message.content  # the client parses the answer with the extension field in it
    assert answer.model_extra["citations"][0]["document"] == "10k-2023.pdf"


def test_a_question_can_be_asked_of_some_documents_only(client, live, added):
    other = upload(client, "call-q3.txt", b"Capital expenditure in 2023 was 1.1 billion dollars at the plant.")
    assert other.status_code == 201, other.text
    try:
        for scope, name in ((["call-q3.txt"], "call-q3.txt"), (["10k-2023.pdf"], "10k-2023.pdf"),
                            ([str(added["document"]["id"])], "10k-2023.pdf")):
            answer = client.post("/v1/ask", json={"question": CAPEX_QUESTION, "max_tokens": 6, "documents": scope})
            assert answer.status_code == 200, answer.text
            assert {c["document"] for c in answer.json()["citations"]} == {name}
            chat = client.post("/v1/chat/completions", json={
                "messages": [{"role": "user", "content": CAPEX_QUESTION}], "max_tokens": 6, "documents": scope})
            assert {c["document"] for c in chat.json()["citations"]} == {name}
        openai = pytest.importorskip("openai")  # the openai client sends it as an extra field of the body
        answer = openai.OpenAI(base_url=f"{live.url}/v1", api_key="x", max_retries=0).chat.completions.create(
            model="default", messages=[{"role": "user", "content": CAPEX_QUESTION}], max_tokens=6,
            extra_body={"documents": ["call-q3.txt"]})
        assert {c["document"] for c in answer.model_extra["citations"]} == {"call-q3.txt"}
        missing = {"question": CAPEX_QUESTION, "documents": ["10k-2022.pdf"]}
        assert_error(client.post("/v1/ask", json=missing), 404, "document_not_found")
        assert_error(client.post("/v1/chat/completions", json={
            "messages": [{"role": "user", "content": CAPEX_QUESTION}], "documents": ["10k-2022.pdf"]}),
            404, "document_not_found")
        assert_error(client.post("/v1/ask", json={"question": CAPEX_QUESTION, "documents": []}), 400, "invalid_request")
        assert_error(client.post("/v1/ask", json={"question": CAPEX_QUESTION, "documents": "10k-2023.pdf"}), 400,
                     "invalid_request")
    finally:
        assert client.delete(f"/v1/documents/{other.json()['document']['id']}").status_code == 200


@pytest.mark.parametrize(("payload", "status", "code"), [
    ({"name": "x.pdf", "content_base64": "not base64!"}, 400, "invalid_base64"),
    ({"name": "..", "content_base64": "aGVsbG8="}, 400, "invalid_name"),
    ({"name": "notes.docx", "content_base64": "aGVsbG8="}, 415, "unsupported_file"),
    ({"name": "empty.txt", "content_base64": ""}, 422, "empty_input"),
    ({"name": "x.txt"}, 400, "invalid_request"),
])
def test_bad_uploads_are_clear_4xx(client, payload, status, code):
    assert_error(client.post("/v1/documents", json=payload), status, code)


def test_an_upload_over_the_limit_is_refused_before_it_is_read(client):
    # This route's limit is the upload limit in base64 and some room (264,000 bytes), not max_body_bytes (20,000).
    fits = upload(client, "fits.txt", b"Revenue rose. " * 10_000)  # 186,668 bytes of base64
    assert fits.status_code == 201
    client.delete(f"/v1/documents/{fits.json()['document']['id']}")
    assert_error(upload(client, "big.txt", b"Revenue rose. " * 15_000), 413, "body_too_large")  # 280,000


def test_remove_by_id_then_404(client, report):
    document = upload(client, "to-remove.txt", b"Net debt fell to 1.2 billion.").json()["document"]
    removed = client.delete(f"/v1/documents/{document['id']}")
    assert removed.status_code == 200 and removed.json() == document
    assert_error(client.delete(f"/v1/documents/{document['id']}"), 404, "document_not_found")
    assert_error(client.delete("/v1/documents/abc"), 400, "invalid_request")


def test_ask_returns_an_answer_read_from_a_table_with_its_calculation(client, added, tatqa_file, retrieval_engine,
                                                                     monkeypatch, tmp_path):
    path, _ = tatqa_file  # TAT-QA's sales by contract type, 2017-2019, "(in millions)" below the table
    uploaded = upload(client, path.name, path.read_bytes())
    assert uploaded.status_code == 201, uploaded.text
    # The reader serves the grounded answerer's path; the adapter itself is never loaded for a read answer.
    monkeypatch.setattr(retrieval_engine, "answerer_adapter", tmp_path)
    try:
        answer = client.post("/v1/ask", json={"question": "What is the percentage change in Other in 2019 from 2018?"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["read_from_table"] is True and body["usage"]["completion_tokens"] == 0
        assert body["computation"]["expression"] == "(44.1 - 56.7) / 56.7 * 100"
        assert body["text"].startswith("-22.22% [")
        assert body["citations"][body["sources"][0] - 1]["document"] == path.name
    finally:
        assert client.delete(f"/v1/documents/{uploaded.json()['document']['id']}").status_code == 200


def test_the_library_survives_a_restart_of_the_server(live, client, added, retrieval_engine, library):
    before = client.get("/v1/documents").json()
    live.stop()
    for server in _serve(retrieval_engine, library):
        with httpx.Client(base_url=server.url, timeout=120) as again:
            assert again.get("/v1/documents").json() == before
            answer = again.post("/v1/ask", json={"question": CAPEX_QUESTION, "max_tokens": 4}).json()
            assert answer["citations"][0]["document"] == "10k-2023.pdf"


def test_a_server_without_a_library_says_so(retrieval_engine):
    server = LiveServer(create_app(Assistant(engine=retrieval_engine, documents=False, audit=False)))
    try:
        with httpx.Client(base_url=server.url, timeout=60) as c:
            assert_error(c.get("/v1/documents"), 404, "no_library")
    finally:
        server.stop()

