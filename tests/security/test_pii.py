"""Personal data: found and redacted (assistant/pii.py), kept from the model with --redact-inputs on
every path (HTTP chat, streamed chat, summarize, classify, the Python API, the web UI), kept from the
logs, and put back in the answer shown to the user who gave it."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator

import httpx
import pytest
from conftest import chat_body
from live_server import LiveServer

from assistant import Assistant
from assistant.pii import PiiPolicy, Redactor, find_pii, iban_ok, install_log_redaction, luhn_ok, redact

pytestmark = pytest.mark.timeout(300)

EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"
IBAN = "GB82 WEST 1234 5698 7654 32"
SSN = "123-45-6789"
PHONE = "+1 415 555 2671"
ACCOUNT = "998877665544"
PERSONAL = (f"My card {CARD}, IBAN {IBAN}, SSN {SSN}, mail {EMAIL}, phone {PHONE}, "
            f"account number: {ACCOUNT}. Should I refinance?")
VALUES = (EMAIL, CARD, IBAN, SSN, PHONE, ACCOUNT)


# ------------------------------------------------------------------ detection


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("card 4111111111111111 here", "CARD"), ("5500-0000-0000-0004", "CARD"), ("378282246310005", "CARD"),
        ("IBAN DE89370400440532013000", "IBAN"), ("FR14 2004 1010 0505 0001 3M02 606", "IBAN"),
        ("SSN 123-45-6789", "SSN"), ("mail a.b+c@mail.example.co.uk now", "EMAIL"),
        ("call (212) 555-0199", "PHONE"), ("call 415-555-2671", "PHONE"), ("+44 20 7946 0958", "PHONE"),
        ("account no. 12345678", "ACCOUNT"), ("Acct #: 0012-3456-78", "ACCOUNT"), ("a/c 87654321", "ACCOUNT"),
    ],
)
def test_each_kind_is_found(text, kind):
    found = find_pii(text)
    assert [f.kind for f in found] == [kind], found
    assert kind in redact(text) and found[0].value not in redact(text)


@pytest.mark.parametrize(
    "text",
    [
        "card 4111111111111112 fails the Luhn check", "IBAN DE89370400440532013001 fails mod 97",
        "SSN 000-12-3456 and 666-12-3456 and 900-12-3456 are never issued",
        "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in 2007.", "Shares: 1,234,567 at 2024-01-15.",
        "ISIN US0378331005", "Revenue grew 12.5% to $4.56 billion in Q3 2023", "+1 334 points",
        "0000 0000 0000 0000",
    ],
)
def test_no_false_finds(text):
    assert find_pii(text) == [], find_pii(text)


def test_checksums():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("GB82 WEST 1234 5698 7654 32") and not iban_ok("GB83 WEST 1234 5698 7654 32")


def test_real_financial_text_is_left_alone(phrasebank):
    """Press-release sentences: the only finds are the phone numbers they print."""
    kinds = {f.kind for r in phrasebank for f in find_pii(r["sentence"])}
    assert kinds <= {"PHONE"}, kinds


def test_redact_and_restore_round_trip():
    r = Redactor()
    redacted = r.redact(PERSONAL + f" Again: {EMAIL}.")
    assert not any(v in redacted for v in VALUES)
    assert redacted.count("[EMAIL_1]") == 2  # the same value, the same placeholder
    assert r.restore(redacted) == PERSONAL + f" Again: {EMAIL}."
    assert r.restore("[EMAIL_9] unknown stays") == "[EMAIL_9] unknown stays"


def test_streamed_restore_holds_split_placeholders():
    r = Redactor()
    redacted = r.redact(PERSONAL)
    for size in (1, 2, 3, 7):
        restorer = r.restoring()
        out = "".join(restorer.feed(redacted[i : i + size]) for i in range(0, len(redacted), size))
        assert out + restorer.flush() == PERSONAL
    restorer = r.restoring()
    assert restorer.feed("a [b") == "a " and restorer.feed("] c") == "[b] c"  # not a placeholder: let through


def test_log_records_are_redacted(caplog):
    install_log_redaction()
    with caplog.at_level(logging.INFO):
        logging.getLogger("assistant.test").info("question from %s about card %s", EMAIL, CARD)
        try:
            raise ValueError(f"cannot parse {SSN}")
        except ValueError:
            logging.getLogger("uvicorn.error").exception("failed for %s", PHONE)
    text = caplog.text
    assert not any(v in text for v in (EMAIL, CARD, SSN, PHONE)), text
    assert "[EMAIL_1]" in text and "[CARD_1]" in text and "[SSN_1]" in text


# ------------------------------------------------------------------ what the model sees


@pytest.fixture
def seen(engine) -> Iterator[list[str]]:
    """Every text the generator and the encoder are given (their input ids, decoded)."""
    texts: list[str] = []
    hooks = []
    for loaded in (engine.generator, engine.encoder):
        tok = loaded.tokenizer

        def capture(module, args, kwargs, tok=tok):
            ids = kwargs.get("input_ids") if kwargs.get("input_ids") is not None else (args[0] if args else None)
            if ids is not None:
                texts.extend(tok.batch_decode(ids, skip_special_tokens=True))

        hooks.append(loaded.model.register_forward_pre_hook(capture, with_kwargs=True))
    yield texts
    for h in hooks:
        h.remove()


def _no_values(texts: list[str]) -> None:
    joined = " ".join(texts).lower()
    assert texts, "the models saw nothing"
    for value in VALUES:
        assert value.lower() not in joined, value
        assert value.replace(" ", "").lower() not in joined.replace(" ", ""), value
    assert "example.com" not in joined


@pytest.fixture(scope="module")
def redacting(engine, tmp_path_factory) -> Iterator[LiveServer]:
    audit = tmp_path_factory.mktemp("pii-audit") / "audit.sqlite3"
    assistant = Assistant(engine=engine, pii=PiiPolicy(redact_inputs=True), audit=audit)
    from assistant.server import create_app

    server = LiveServer(create_app(assistant, max_tokens_limit=64))
    server.assistant = assistant
    yield server
    server.stop()


def test_http_chat_never_shows_the_model_personal_data(redacting, seen):
    r = httpx.post(f"{redacting.url}/v1/chat/completions", json=chat_body(PERSONAL), timeout=120)
    assert r.status_code == 200
    with httpx.stream("POST", f"{redacting.url}/v1/chat/completions", json=chat_body(PERSONAL, stream=True),
                      timeout=120) as s:
        assert s.status_code == 200 and "[DONE]" in s.read().decode()
    history = {"messages": [{"role": "user", "content": f"I am {EMAIL}"}, {"role": "assistant", "content": "Hi"},
                            {"role": "user", "content": [{"type": "text", "text": f"card {CARD}"}]}], "max_tokens": 2}
    assert httpx.post(f"{redacting.url}/v1/chat/completions", json=history, timeout=120).status_code == 200
    _no_values(seen)
    assert any("[EMAIL_1]" in t or "EMAIL_1" in t for t in seen)


def test_http_summarize_and_classify_never_show_the_model_personal_data(redacting, seen):
    r = httpx.post(f"{redacting.url}/v1/summarize", json={"text": PERSONAL, "max_words": 10}, timeout=120)
    assert r.status_code == 200, r.text
    r = httpx.post(f"{redacting.url}/v1/classify", json={"texts": [PERSONAL, f"Contact {EMAIL}"]}, timeout=120)
    assert r.status_code == 200, r.text
    _no_values(seen)


def test_python_api_paths_never_show_the_model_personal_data(engine, seen, tmp_path):
    a = Assistant(engine=engine, pii=PiiPolicy(redact_inputs=True), audit=tmp_path / "a.sqlite3")
    a.ask(PERSONAL, history=[{"role": "user", "content": EMAIL}, (f"hi {SSN}", "hello")], max_new_tokens=2)
    assert "".join(a.ask_stream(PERSONAL, max_new_tokens=2))
    a.summarize(PERSONAL, max_words=5)
    a.classify(PERSONAL)
    _no_values(seen)


def test_summary_sources_point_at_the_users_own_text(engine, tmp_path):
    """Summarised redacted, the sources come back with the details and the spans of the original."""
    a = Assistant(engine=engine, pii=PiiPolicy(redact_inputs=True), audit=tmp_path / "a.sqlite3")
    text = f"{PERSONAL} Revenue rose 5% to $3 million in the quarter. Contact {EMAIL} for the report."
    summary = a.summarize(text, max_words=60)
    sources = [s for b in summary.bullets for s in b.sources]
    assert sources
    for source in sources:
        assert text[source.start:source.end] == source.text and "_1]" not in source.text


def test_without_redact_inputs_the_model_gets_the_text(engine, seen, tmp_path):
    a = Assistant(engine=engine, audit=tmp_path / "a.sqlite3")
    a.classify(f"Contact {EMAIL}")
    assert any("example" in t for t in seen)


def test_documents_are_redacted_before_the_model(engine, seen, tmp_path):
    from assistant.documents import read_document

    doc = tmp_path / "statement.md"
    doc.write_text(f"# Statement\n\n{PERSONAL}\n", encoding="utf-8")
    a = Assistant(engine=engine, pii=PiiPolicy(redact_inputs=True), audit=tmp_path / "a.sqlite3")
    a.summarize(read_document(doc), max_words=5)
    _no_values(seen)


def test_answers_get_the_values_back(engine, tmp_path):
    """The model answers with placeholders; the user who gave the values sees them again."""
    a = Assistant(engine=engine, pii=PiiPolicy(redact_inputs=True), audit=tmp_path / "a.sqlite3")
    redactor = a.redactor()
    asked = redactor.redact(PERSONAL)
    assert redactor.restore(f"Write to [EMAIL_1] about [CARD_1].") == f"Write to {EMAIL} about {CARD}."
    assert "[EMAIL_1]" in asked


def test_ui_chat_never_shows_the_model_personal_data(engine, seen, tmp_path):
    gradio_client = pytest.importorskip("gradio_client")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    from assistant.server import create_app

    assistant = Assistant(engine=engine, pii=PiiPolicy(redact_inputs=True), audit=tmp_path / "ui.sqlite3")
    server = LiveServer(create_app(assistant, ui=True))
    try:
        client = gradio_client.Client(f"{server.url}/", verbose=False)
        try:
            client.predict(PERSONAL, api_name="/chat")
            client.predict(PERSONAL, "headline", 10, api_name="/summarize")
        finally:
            client.close()
    finally:
        server.stop()
    _no_values(seen)
    records = list(assistant.audit_store.records())
    assert {r.kind for r in records} == {"ask", "summarize"} and {r.user for r in records} == {"web-ui"}
    assert not any(v in json.dumps([r.to_dict() for r in records]) for v in VALUES)
