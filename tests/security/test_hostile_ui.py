"""Hostile requests against the web UI mounted on the service (``--ui``), through real HTTP: files it
never received, bombs it did receive, oversized and unauthenticated bodies, password guessing."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from conftest import assert_error, assert_healthy, raw_request
from live_server import LiveServer
from pdfs import pdf_bomb

from assistant import Assistant
from assistant.errors import InvalidInputError
from assistant.server import create_app
from assistant.ui import uploaded_path

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
gradio_client = pytest.importorskip("gradio_client")
pytestmark = pytest.mark.timeout(300)

SECRET = "finassist-secret-marker-7c1e"


@pytest.fixture(scope="module")
def ui_live(engine) -> Iterator[LiveServer]:
    server = LiveServer(create_app(Assistant(engine=engine), ui=True, max_body_bytes=20_000,
                                   max_upload_bytes=200_000, body_timeout_s=2), header_timeout_s=2)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ui(ui_live):
    client = gradio_client.Client(f"{ui_live.url}/", verbose=False)
    yield client
    client.close()


def _call(url: str, api_name: str, data: list) -> str:
    """Call an event handler the way the page's JavaScript does; the event stream's text."""
    body = json.dumps({"data": data}).encode()  # ASCII escapes: lone surrogates travel as JSON allows
    r = httpx.post(f"{url}/gradio_api/call/{api_name}", content=body, headers={"content-type": "application/json"},
                   timeout=60)
    if r.status_code != 200:
        return r.text
    event = r.json()["event_id"]
    with httpx.stream("GET", f"{url}/gradio_api/call/{api_name}/{event}", timeout=60) as stream:
        return "".join(stream.iter_text())


# ------------------------------------------------------------------ foreign files


@pytest.mark.parametrize("api_name", ["load_document", "load_texts"])
def test_files_never_uploaded_are_not_read(ui_live, tmp_path, api_name):
    secret = tmp_path / "notes.md"
    secret.write_text(f"# private\n{SECRET}\n", encoding="utf-8")
    (tmp_path / "notes.txt").write_text(SECRET, encoding="utf-8")
    for path in (str(secret), str(tmp_path / "notes.txt"), "/etc/hostname", f"{tmp_path}/../{tmp_path.name}/notes.md"):
        for payload in ({"path": path, "meta": {"_type": "gradio.FileData"}}, {"path": path}, path):
            answer = _call(ui_live.url, api_name, [payload])
            assert SECRET not in answer, answer[:300]
            assert "event: complete" not in answer or "null" in answer.split("event: complete")[-1][:40], answer[:300]
    assert_healthy(ui_live.url)


def test_files_never_uploaded_are_not_added_to_the_library(ui, ui_live, tmp_path):
    secret = tmp_path / "notes.md"
    secret.write_text(f"# private\n{SECRET}\n", encoding="utf-8")
    for path in (str(secret), "/etc/hostname", f"{tmp_path}/../{tmp_path.name}/notes.md"):
        for payload in ({"path": path, "meta": {"_type": "gradio.FileData"}}, {"path": path}, path):
            answer = _call(ui_live.url, "add_documents", [[payload]])
            assert SECRET not in answer and "event: error" in answer, answer[:300]
    table, _, _ = ui.predict([], api_name="/list_documents")
    assert not {"notes.md", "hostname"} & {row[1] for row in table["value"]["data"]}
    assert_healthy(ui_live.url)


def test_uploaded_path_accepts_only_the_upload_folder(tmp_path):
    from gradio.utils import get_upload_folder

    outside = tmp_path / "x.txt"
    outside.write_text("x", encoding="utf-8")
    with pytest.raises(InvalidInputError):
        uploaded_path(str(outside))
    folder = get_upload_folder()
    with pytest.raises(InvalidInputError):
        uploaded_path(os.path.join(folder, "..", "..", str(outside).lstrip("/")))
    with pytest.raises(InvalidInputError):
        uploaded_path(None)


def test_real_uploads_still_work(ui, tmp_path):
    path = tmp_path / "note.md"
    path.write_text("# Results\n\nRevenue rose 5 %.", encoding="utf-8")
    assert "Revenue rose" in ui.predict(gradio_client.handle_file(str(path)), api_name="/load_document")


# ------------------------------------------------------------------ bombs, broken files


def test_uploaded_pdf_bomb_is_a_readable_error(ui, ui_live, tmp_path):
    bomb = pdf_bomb(tmp_path / "bomb.pdf")
    started = time.monotonic()
    with pytest.raises(gradio_client.exceptions.AppError, match="bomb.pdf"):
        ui.predict(gradio_client.handle_file(str(bomb)), api_name="/load_document")
    assert time.monotonic() - started < 30
    assert_healthy(ui_live.url)


def test_uploaded_csv_with_a_huge_field_is_a_readable_error(ui, tmp_path):
    path = tmp_path / "big.csv"
    path.write_text('text\n"' + "x" * 150_000 + '"\n', encoding="utf-8")
    with pytest.raises(gradio_client.exceptions.AppError) as caught:
        ui.predict(gradio_client.handle_file(str(path)), api_name="/load_texts")
    assert "big.csv" in str(caught.value) and "internal error" not in str(caught.value)


def test_lone_surrogate_in_the_page_is_a_readable_error(ui_live):
    answer = _call(ui_live.url, "summarize", ["a \ud800 b", "bullets", 40])
    assert "surrogate" in answer and "Traceback" not in answer
    answer = _call(ui_live.url, "classify", ["a \udfff b", "sentiment", False])
    assert "surrogate" in answer and "Traceback" not in answer


def test_a_chat_scoped_to_documents_not_in_the_library_is_a_readable_error(ui_live):
    # The chat's choice of documents takes any value (a document may be removed meanwhile): names that are
    # paths, SQL or not text at all reach no file and no query, and say what is wrong.
    for scope in (["../../etc/hostname"], ["x' OR '1'='1"], ["/etc/passwd", "notes.md"]):
        answer = _call(ui_live.url, "chat", ["What was revenue in 2019?", [], scope])
        assert "event: error" in answer and "no document" in answer and "Traceback" not in answer, answer[:300]
    answer = _call(ui_live.url, "chat", ["What was revenue in 2019?", [], [{"path": "/etc/hostname"}]])
    assert "event: error" in answer and "Traceback" not in answer, answer[:300]
    assert_healthy(ui_live.url)


# ------------------------------------------------------------------ bodies


def test_ui_bodies_have_the_size_limit(ui_live):
    # Announced too big: refused before a byte of it is read.
    head = (f"POST /gradio_api/queue/join HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            f"content-length: {30_000_000}\r\n\r\n").encode()
    reply = raw_request(ui_live.port, head)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    body = reply.partition(b"\r\n\r\n")[2]
    # The connection is closed at once (the announced body is never read); under load the close can
    # overtake the error body, which is then checked when it arrived.
    if body:
        assert json.loads(body)["error"]["code"] == "body_too_large", reply[:400]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield (b'--zz\r\nContent-Disposition: form-data; name="files"; filename="a.txt"\r\n'
               b"Content-Type: text/plain\r\n\r\n")
        for _ in range(40):
            yield b"x" * 10_000

    r = httpx.post(f"{ui_live.url}/gradio_api/upload", content=chunks(),
                   headers={"content-type": "multipart/form-data; boundary=zz"})
    # Refused either by the service's body limit or, when the upload's file part reaches it first, by
    # Gradio's own file-size limit ("File size exceeded ..."): a 413 and no traceback either way.
    assert r.status_code == 413 and "Traceback" not in r.text and 'File "' not in r.text
    assert_healthy(ui_live.url)


def test_an_upload_over_the_ui_limit_gets_our_json_error(ui_live):
    # Within the body limit (multipart room included) but over the page's file limit: Gradio refuses it in
    # text/plain; the client reads our JSON error with Gradio's words.
    r = httpx.post(f"{ui_live.url}/gradio_api/upload", files={"files": ("a.txt", b"x" * 230_000, "text/plain")})
    error = assert_error(r, 413, "body_too_large")
    assert "File size exceeded" in error["message"]
    assert_healthy(ui_live.url)


def test_ui_bodies_have_the_time_limit(ui_live):
    with socket.create_connection(("127.0.0.1", ui_live.port), timeout=10) as sock:
        sock.sendall(b"POST /gradio_api/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"content-type: multipart/form-data; boundary=zz\r\ncontent-length: 5000\r\n\r\n"
                     b'--zz\r\nContent-Disposition: form-data; name="files"; filename="a.txt"\r\n'
                     b"Content-Type: text/plain\r\n\r\n")
        started = time.monotonic()
        reply = b""
        while time.monotonic() - started < 8:
            try:
                sock.sendall(b"x")
                sock.settimeout(0.5)
                chunk = sock.recv(65536)
            except (TimeoutError, OSError):
                continue
            if not chunk:
                break
            reply += chunk
            if b"}}" in reply:
                break
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert_healthy(ui_live.url)


# ------------------------------------------------------------------ login


def test_login_first_and_throttled(engine):
    server = LiveServer(create_app(Assistant(engine=engine), ui=True, api_key="s3cret"), header_timeout_s=5)
    try:
        # No login cookie: refused before the (announced 30 MB) body is read.
        head = ("POST /gradio_api/upload HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: multipart/form-data; "
                "boundary=zz\r\ncontent-length: 30000000\r\n\r\n").encode()
        reply = raw_request(server.port, head)
        assert reply.startswith(b"HTTP/1.1 4"), reply[:200]
        assert json.loads(reply.partition(b"\r\n\r\n")[2])["error"]["code"] in ("login_required", "body_too_large")
        r = httpx.post(f"{server.url}/gradio_api/queue/join", json={"data": []})
        assert_error(r, 401, "login_required")

        login = f"{server.url}/login"
        started = time.monotonic()
        statuses = [httpx.post(login, data={"username": "u", "password": f"guess{i}"}).status_code for i in range(12)]
        assert statuses[:5] == [400] * 5, statuses
        assert set(statuses[5:]) == {429}, statuses
        assert time.monotonic() - started < 20
        r = httpx.post(login, data={"username": "u", "password": "s3cret"})
        error = assert_error(r, 429, "login_throttled")  # even the right key waits its turn
        assert int(r.headers["retry-after"]) >= 1 and "try again" in error["message"]
        assert_healthy(server.url)
    finally:
        server.stop()
