"""The web UI mounted on the service (assistant/ui.py) over the tiny models, through real HTTP.

The page's event handlers are called with Gradio's own client (``gradio_client``), the
way the browser's JavaScript calls them; the browser itself is in test_ui_browser.py.
The tiny models' weights are random: tests check structure, never what the model says.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Iterator

import httpx
import pytest
from live_server import LiveServer

from assistant import Assistant
from assistant.engine import Engine
from assistant.server import create_app
from assistant.settings import BatchSettings
from assistant.ui import CITATIONS_START, _answer_text, build_ui

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")  # gradio_client would report its start to the hub
gradio_client = pytest.importorskip("gradio_client")
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def engine(tiny_gpt2_dir, tiny_bert_dir) -> Engine:
    return Engine(generator=tiny_gpt2_dir, encoder=tiny_bert_dir, device="cpu",
                  batch_settings=BatchSettings(max_batch_size=4, max_queue=8))


@pytest.fixture(scope="module")
def assistant(engine, tmp_path_factory) -> Assistant:
    """The page's assistant, with a document library of its own."""
    return Assistant(engine=engine, documents=tmp_path_factory.mktemp("ui-library") / "library.sqlite")


@pytest.fixture(scope="module")
def live(assistant) -> Iterator[LiveServer]:
    server = LiveServer(create_app(assistant, ui=True, max_body_bytes=20_000, max_upload_bytes=50_000))
    yield server
    server.stop()


@pytest.fixture
def library(assistant):
    """The page's library, emptied after the test: the chat tests answer without documents."""
    yield assistant.documents
    for document in assistant.documents.list():
        assistant.documents.remove(document.id)


@pytest.fixture(scope="module")
def ui(live):
    client = gradio_client.Client(f"{live.url}/", verbose=False)
    yield client
    client.close()  # its heartbeat stream would hold the server open


def test_one_port_serves_page_and_api(live):
    page = httpx.get(f"{live.url}/")
    assert page.status_code == 200 and "<html" in page.text.lower()
    models = httpx.get(f"{live.url}/v1/models").json()
    assert {m["role"] for m in models["data"]} == {"generator", "encoder"}
    assert httpx.get(f"{live.url}/healthz").json()["status"] == "ok"
    assert httpx.get(f"{live.url}/docs").status_code == 200
    # The API's own limits still hold with the page mounted beside it.
    too_big = httpx.post(f"{live.url}/v1/summarize", json={"text": "word " * 10_000})
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "body_too_large"


def test_page_is_offline(live):
    """No font, script or stylesheet from another host in the page's HTML."""
    html = httpx.get(f"{live.url}/").text
    for outside in ("fonts.googleapis.com", "fonts.gstatic.com", "cdn.jsdelivr.net", "unpkg.com", "cdnjs"):
        assert outside not in html


def test_chat_streams_through_the_batcher(ui, engine):
    job = ui.submit("What is EBITDA?", api_name="/chat")
    updates = list(job)
    assert updates, "no streamed updates"
    assert isinstance(job.result(), str) and job.result()
    assert job.result().startswith(updates[0][:3])


def test_summarize_and_its_timing(ui, phrasebank):
    text = " ".join(r["sentence"] for r in phrasebank[:6])
    summary, timing, sources = ui.predict(text, "bullets", 40, api_name="/summarize")
    assert summary.strip()
    assert timing.startswith("Took **") and "source tokens" in timing
    # every bullet expands to the sentence(s) it was written from
    opened = re.findall(r"<details class='summary-source'><summary>(.*?)</summary>(.*?)</details>", sources)
    assert len(opened) == len(summary.strip().splitlines())
    for bullet, quoted in opened:
        assert bullet and any(html.escape(r["sentence"]) in quoted for r in phrasebank[:6])


def test_errors_are_readable_messages(ui):
    with pytest.raises(gradio_client.exceptions.AppError, match="text is empty"):
        ui.predict("   ", "bullets", 40, api_name="/summarize")
    with pytest.raises(gradio_client.exceptions.AppError, match="not in the list of choices"):
        ui.predict("Revenue rose.", "poem", 40, api_name="/summarize")
    with pytest.raises(gradio_client.exceptions.AppError, match="enter a text"):
        ui.predict("\n\n", "sentiment", api_name="/classify")
    with pytest.raises(gradio_client.exceptions.AppError, match="not in the list of choices"):
        ui.predict("Profit fell.", "no-such-task", api_name="/classify")


def test_document_upload(ui, tmp_path, phrasebank):
    path = tmp_path / "note.md"
    path.write_text("# Results\n\n" + phrasebank[1]["sentence"], encoding="utf-8")
    text = ui.predict(gradio_client.handle_file(str(path)), api_name="/load_document")
    assert phrasebank[1]["sentence"] in text
    wrong = tmp_path / "deck.pptx"
    wrong.write_bytes(b"PK\x03\x04")
    with pytest.raises(gradio_client.exceptions.AppError):  # Gradio's own file-type check, or ours
        ui.predict(gradio_client.handle_file(str(wrong)), api_name="/load_document")


def test_upload_over_the_limit_is_refused(ui, tmp_path):
    path = tmp_path / "big.txt"
    path.write_text("revenue " * 10_000, encoding="utf-8")  # 80 kB > the 50 kB limit
    with pytest.raises(Exception, match="(?i)size|large|limit"):
        ui.predict(gradio_client.handle_file(str(path)), api_name="/load_document")


def test_classify_many_and_download(ui, phrasebank, tmp_path):
    sentences = [r["sentence"] for r in phrasebank[:3]]
    path = tmp_path / "s.csv"
    path.write_text("text\n" + "\n".join(f'"{s}"' for s in sentences), encoding="utf-8")
    loaded = ui.predict(gradio_client.handle_file(str(path)), api_name="/load_texts")
    assert loaded.splitlines() == [" ".join(s.split()) for s in sentences]
    chart, caption, table, download = ui.predict(loaded, "sentiment", api_name="/classify")
    labels = {"positive", "negative", "neutral"}
    assert {row[0] for row in chart["data"]} <= labels, chart
    assert caption.startswith("First text: **")
    assert len(table["data"]) == 3 and all(row[2] in labels for row in table["data"])
    path = download["value"] if isinstance(download, dict) else download  # an update: {"value": path, ...}
    with open(path, encoding="utf-8") as fh:
        assert len(fh.read().splitlines()) == 4


def test_api_key_guards_page_and_api(engine):
    server = LiveServer(create_app(Assistant(engine=engine), ui=True, api_key="s3cret"))
    try:
        assert httpx.get(f"{server.url}/v1/models").status_code == 401
        ok = httpx.get(f"{server.url}/v1/models", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert httpx.post(f"{server.url}/login", data={"username": "me", "password": "wrong"}).status_code == 400
        login = httpx.post(f"{server.url}/login", data={"username": "me", "password": "s3cret"})
        assert login.status_code == 200 and login.json().get("success") is True
    finally:
        server.stop()


def _batch_histogram(url: str) -> tuple[float, float]:
    """(batches run, batches of one request) from the service's Prometheus metrics."""
    text = httpx.get(f"{url}/metrics").text
    count = float(re.search(r"^finassist_batch_size_count (\S+)", text, re.MULTILINE).group(1))
    ones = float(re.search(r'^finassist_batch_size_bucket\{le="1\.0"\} (\S+)', text, re.MULTILINE).group(1))
    return count, ones


def test_concurrent_chats_share_batches(live, engine, tiny_gpt2_dir):
    """Several tabs chatting at once go through the service's batcher together."""
    clients = [gradio_client.Client(f"{live.url}/", verbose=False) for _ in range(3)]
    try:
        before = _batch_histogram(live.url)
        jobs = [c.submit(f"What is revenue number {i}?", api_name="/chat") for i, c in enumerate(clients)]
        answers = [job.result(timeout=120) for job in jobs]
        after = _batch_histogram(live.url)
    finally:
        for c in clients:
            c.close()
    assert all(isinstance(a, str) and a for a in answers)
    batches, singles = after[0] - before[0], after[1] - before[1]
    assert batches >= 1 and singles < 3, f"the chats ran one by one: {batches} batches, {singles} of one request"


# -------------------------------------------------------------------- documents


def _listed(ui, scoped: list[str] | None = None) -> tuple[dict, dict]:
    """The Documents tab's table and document chooser, as the page load fills them (the chat's choice of
    documents follows the library: ``_scope``)."""
    table, choice, _ = ui.predict(scoped or [], api_name="/list_documents")
    return table, choice


def _scope(ui, scoped: list[str]) -> dict:
    """The chat's choice of documents after the library is listed, when ``scoped`` were chosen."""
    return ui.predict(scoped, api_name="/list_documents")[2]


def _names(ui) -> list[str]:
    return [row[1] for row in _listed(ui)[0]["value"]["data"]]


def test_documents_tab_adds_lists_and_removes_a_document(ui, library, tatqa_file):
    path, _ = tatqa_file
    table, choice = _listed(ui)
    assert table["value"]["data"] == [] and table["label"].startswith("Library: empty")
    status, files = ui.predict([gradio_client.handle_file(str(path))], api_name="/add_documents")
    assert status.startswith(f"- added {path.name} (1 page, ") and files is None  # the upload box is cleared
    status, _ = ui.predict([gradio_client.handle_file(str(path))], api_name="/add_documents")
    assert status.startswith(f"- already in the library: {path.name}")
    table, choice = _listed(ui)
    [row] = table["value"]["data"]
    info = library.get(path.name)
    assert row == [info.id, path.name, 1, info.chunks, info.added] and info.chunks >= 1
    assert table["label"] == f"Library: 1 document, {info.chunks} passage{'s' * (info.chunks != 1)}"
    assert choice["choices"] == [[path.name, path.name]]
    assert ui.predict(path.name, api_name="/remove_document") == f"Removed {path.name}."
    assert _names(ui) == [] and library.count() == 0


def test_documents_tab_refuses_bad_files_readably(ui, library, tatqa_file, tmp_path):
    path, _ = tatqa_file
    wrong = tmp_path / "deck.docx"
    wrong.write_bytes(b"PK\x03\x04 not a library file type")
    with pytest.raises(gradio_client.exceptions.AppError, match="(?i)file type"):  # Gradio's own check, or ours
        ui.predict([gradio_client.handle_file(str(wrong))], api_name="/add_documents")
    broken = tmp_path / "annual-report.pdf"
    broken.write_bytes(b"an annual report, but not a PDF")
    # One bad file among good ones: said, and the good ones are added all the same (as `docs add` does).
    with pytest.raises(gradio_client.exceptions.AppError,
                       match=rf"^added {path.name} \(1 page, .*; annual-report\.pdf is not a readable PDF") as raised:
        ui.predict([gradio_client.handle_file(str(path)), gradio_client.handle_file(str(broken))],
                   api_name="/add_documents")
    assert "Traceback" not in str(raised.value)
    assert _names(ui) == [path.name]
    with pytest.raises(gradio_client.exceptions.AppError, match="choose one or more files"):
        ui.predict([], api_name="/add_documents")
    with pytest.raises(gradio_client.exceptions.AppError, match="choose the document to remove"):
        ui.predict(None, api_name="/remove_document")
    ui.predict(path.name, api_name="/remove_document")
    with pytest.raises(gradio_client.exceptions.AppError, match="no document .* in the library"):
        ui.predict(path.name, api_name="/remove_document")  # removed meanwhile (another tab, the CLI)


def test_documents_tab_says_when_the_library_is_off(engine):
    config = build_ui(Assistant(engine=engine, documents=False)).config
    assert any(c.get("props", {}).get("elem_id") == "documents-off" for c in config["components"])
    handlers = {d.get("api_name") for d in config["dependencies"]}
    assert not {"add_documents", "remove_document", "list_documents"} & handlers


def test_grounded_chat_answer_shows_numbered_citations(retrieval_engine, tatqa_file, tmp_path):
    """With a document in the library, the answer ends with its sources: numbered as it cites them,
    each opening to its passage (the real MiniLM finds it; the tiny generator writes the answer)."""
    path, record = tatqa_file
    assistant = Assistant(engine=retrieval_engine, documents=tmp_path / "library.sqlite", audit=False)
    server = LiveServer(create_app(assistant, ui=True))
    client = gradio_client.Client(f"{server.url}/", verbose=False)
    try:
        client.predict([gradio_client.handle_file(str(path))], api_name="/add_documents")
        answer = client.submit(record["question"], api_name="/chat").result(timeout=120)
    finally:
        client.close()
        server.stop()
    text, start, sources = answer.partition(CITATIONS_START)
    assert start and text.strip()
    cited = re.findall(r"<details class='chat-citation'><summary>\[(\d+)\] (.*?), page (\d+)</summary>"
                       r"<blockquote>(.*?)</blockquote></details>", sources)
    assert [int(number) for number, *_ in cited] == list(range(1, len(cited) + 1)) and cited
    assert {(document, page) for _, document, page, _ in cited} == {(path.name, "1")}
    shown = html.escape(path.read_text(encoding="utf-8"))
    for *_, passage in cited:
        assert all(line in shown for line in passage.split("<br>"))  # the document's own text, escaped
    assert _answer_text(answer) == text.rstrip()  # sent back as history without its sources


def test_the_chat_answers_from_the_documents_chosen_under_it(ui, live, library, tatqa_file, tmp_path):
    path, record = tatqa_file
    chat = gradio_client.Client(f"{live.url}/", verbose=False)  # a chat of its own: no earlier turns
    other = tmp_path / "sales-2019-other-company.txt"
    other.write_text(f"{record['question']} Total sales in 2019 were $12 million at another company.", encoding="utf-8")
    ui.predict([gradio_client.handle_file(str(path)), gradio_client.handle_file(str(other))], api_name="/add_documents")
    # The choices follow the library; a chosen document removed meanwhile is no longer chosen.
    scope = _scope(ui, [path.name, "gone.txt"])
    assert sorted(name for name, _ in scope["choices"]) == sorted([path.name, other.name])
    assert scope["value"] == [path.name]
    try:
        for chosen in (path.name, other.name):
            answer = chat.submit(record["question"], [chosen], api_name="/chat").result(timeout=120)
            cited = set(re.findall(r"<summary>\[\d+\] (.*?), page \d+</summary>", answer))
            assert cited == {chosen}, answer
        with pytest.raises(gradio_client.exceptions.AppError, match="no document 'gone.txt' in the library"):
            chat.submit(record["question"], ["gone.txt"], api_name="/chat").result(timeout=120)
    finally:
        chat.close()
