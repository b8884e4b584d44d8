"""The web UI in a real browser: ``python app.py`` with the real default models, driven by
Playwright in Debian's headless Chromium.

One app process and one browser serve the whole module (the models load once); the app
has a document library of its own, empty but while a Documents test runs (the chat tests
answer without documents). Every request the page makes is recorded: the page must work
offline, so nothing may go anywhere but the app's own loopback address. Screenshots of
each tab go to ``test-artifacts/ui/`` (ignored by git) for a person to look at.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ARTIFACTS = REPO_ROOT / "test-artifacts" / "ui"
#: Chromium's own background traffic is off: on a closed network it only produces refused connections.
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]
STARTUP_S = 300  # first run converts the GGUF generator (~25 s) and loads both models
ANSWER_S = 120
SUMMARY_S = 300


def _chromium() -> str:
    path = os.environ.get("FINASSIST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    message = "no chromium on PATH (apt-get install chromium, or set FINASSIST_CHROMIUM)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}: CI must run the browser tests (scripts/setup.sh installs it)")
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """``python app.py`` on a free loopback port, ready (``/healthz`` 200) with the default models and a
    document library of its own (never the user's)."""
    port = _free_port()
    folder = tmp_path_factory.mktemp("app")
    log_path = folder / "app.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "app.py", "--port", str(port), "--library", str(folder / "library.sqlite")]
    with log_path.open("w") as log:
        proc = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"app.py exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"app.py not ready after {STARTUP_S} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        # Never a traceback for the user; in the server log only for real faults (none expected here).
        assert "Traceback" not in log_path.read_text(), log_path.read_text()[-3000:]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    executable = _chromium()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, app_url):
    """A fresh tab on the app; after the test, every request it made must have stayed on the app."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(app_url)
    page.wait_for_selector("#chat-input textarea", timeout=60_000)
    yield page
    context.close()
    app_host = urlparse(app_url).netloc
    outside = sorted({u for u in requests if urlparse(u).scheme in ("http", "https", "ws", "wss")
                      and urlparse(u).netloc != app_host})
    assert not outside, f"the page fetched from outside the app (it must work offline): {outside}"


def _open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def _wait_idle(page, selector: str, timeout_s: float) -> str:
    """The text of ``selector`` once it stopped changing (a streamed answer that is complete)."""
    deadline = time.monotonic() + timeout_s
    last, stable_since = None, time.monotonic()
    while time.monotonic() < deadline:
        text = page.locator(selector).last.inner_text() if page.locator(selector).count() else ""
        if text != last:
            last, stable_since = text, time.monotonic()
        elif text and time.monotonic() - stable_since > 3 and not page.get_by_role("button", name="Stop").is_visible():
            return text
        time.sleep(0.2)
    raise AssertionError(f"{selector} still changing after {timeout_s} s: {last!r}")


def _toast(page) -> str:
    toast = page.locator(".toast-body").first
    toast.wait_for(timeout=30_000)
    return toast.inner_text()


# ------------------------------------------------------------------------- chat


def test_page_shows_models_and_tabs(page):
    header = page.locator("#finassist-header").inner_text()
    assert "smollm2-135m-instruct" in header and "minilm-l6" in header and "cpu" in header
    for name in ("Chat", "Summarise", "Classify", "Documents"):
        assert page.get_by_role("tab", name=name).is_visible()
    assert page.get_by_text("What does a debt-to-equity ratio tell me?").is_visible()  # an example


def test_chat_streams_an_answer(page):
    page.fill("#chat-input textarea", "What is EBITDA? Explain in two sentences.")
    page.keyboard.press("Enter")
    lengths = []
    deadline = time.monotonic() + ANSWER_S
    while time.monotonic() < deadline and len(set(lengths)) < 4:
        bot = page.locator('[data-testid="bot"]')
        if bot.count():
            lengths.append(len(bot.last.inner_text()))
        time.sleep(0.1)
    seen = sorted({n for n in lengths if n})
    assert len(seen) >= 3, f"the answer did not arrive piece by piece: lengths seen {lengths}"
    answer = _wait_idle(page, '[data-testid="bot"]', ANSWER_S)
    assert len(answer.split()) >= 5
    page.screenshot(path=str(ARTIFACTS / "chat.png"), full_page=True)


def test_chat_advice_question_keeps_the_notice(page):
    page.get_by_text("Should I buy shares of a company whose revenue fell 20%?").click()  # an example runs
    answer = _wait_idle(page, '[data-testid="bot"]', ANSWER_S)
    assert "not investment advice" in answer.lower()


def test_stop_ends_the_generation(page, app_url):
    page.fill("#chat-input textarea", "Write a long, detailed essay on the history of central banking, "
                                      "covering every decade since 1900.")
    page.keyboard.press("Enter")
    bot = page.locator('[data-testid="bot"]')
    deadline = time.monotonic() + ANSWER_S
    while time.monotonic() < deadline and (not bot.count() or len(bot.last.inner_text()) < 40):
        time.sleep(0.1)
    page.get_by_role("button", name="Stop").click()
    time.sleep(1.0)
    stopped_at = bot.last.inner_text()
    time.sleep(3.0)
    assert bot.last.inner_text() == stopped_at, "text kept arriving after Stop"
    assert len(stopped_at.split()) < 200  # stopped well before the 256-token budget
    # The engine freed the row: no chat is running any more (without cancellation it would run ~10 s more).
    metrics = httpx.get(f"{app_url}/metrics").text
    active = re.search(r"^finassist_active_requests (\S+)", metrics, re.MULTILINE)
    assert active and float(active.group(1)) == 0.0, metrics
    assert page.locator("#chat-input textarea").is_enabled()


# -------------------------------------------------------------------- summarise


def _excerpt(transcript: str, words: int = 350) -> str:
    return " ".join(transcript.split()[:words])


def test_summarise_a_real_transcript_excerpt(page, shortest_transcript):
    _open_tab(page, "Summarise")
    page.fill("#summary-source textarea", _excerpt(shortest_transcript["transcript"], 250))
    length = page.locator("#summary-length input[type=number]")
    length.fill("60")
    length.press("Enter")
    page.locator("#summarise-button").click()
    page.wait_for_function(  # a shared 2-core CI machine decodes slowly
        "() => document.querySelector('#summary-timing')?.innerText.includes('Took')", timeout=SUMMARY_S * 1000
    )
    summary = page.locator("#summary-output textarea").input_value()
    bullets = [line for line in summary.splitlines() if line.lstrip().startswith(("-", "•", "*"))]
    assert bullets, f"no bullets in the summary: {summary!r}"
    assert re.search(r"Took \*?\*?[\d.]+ s", page.locator("#summary-timing").inner_text())
    # a bullet opens to show the sentence of the transcript it came from
    first = page.locator("#summary-sources details").first
    first.locator("summary").click()
    quoted = first.locator("blockquote").first.inner_text()
    assert quoted.split(" (sentence")[0] in shortest_transcript["transcript"]
    page.screenshot(path=str(ARTIFACTS / "summarise.png"), full_page=True)


def test_upload_a_text_file_fills_the_source(page, shortest_transcript, tmp_path):
    _open_tab(page, "Summarise")
    path = tmp_path / "call.txt"
    text = _excerpt(shortest_transcript["transcript"], 120)
    path.write_text(text, encoding="utf-8")
    page.locator("#summary-upload input[type=file]").set_input_files(str(path))
    page.wait_for_function(
        "() => document.querySelector('#summary-source textarea')?.value.length > 100", timeout=30_000
    )
    assert page.locator("#summary-source textarea").input_value().split()[:5] == text.split()[:5]


def test_upload_of_an_unsupported_file_is_a_readable_error(page, tmp_path):
    _open_tab(page, "Summarise")
    path = tmp_path / "report.docx"
    path.write_bytes(b"PK\x03\x04 not really a document")
    page.locator("#summary-upload input[type=file]").set_input_files(str(path))
    message = _toast(page)
    assert "docx" in message.lower() or "file type" in message.lower(), message
    assert "Traceback" not in message


def test_summarise_empty_input_is_a_readable_error(page):
    _open_tab(page, "Summarise")
    page.locator("#summarise-button").click()
    message = _toast(page)
    assert "empty" in message.lower(), message
    assert "Traceback" not in message


# --------------------------------------------------------------------- classify


def test_classify_three_sentences_shows_chart_and_table(page, phrasebank, tmp_path):
    _open_tab(page, "Classify")
    by_label = {}
    for row in phrasebank:
        by_label.setdefault(row["label"], row["sentence"])
    sentences = [by_label[label] for label in ("positive", "negative", "neutral")]
    page.fill("#classify-input textarea", "\n".join(sentences))
    page.locator("#classify-button").click()
    page.locator("#classify-download").wait_for(state="visible", timeout=ANSWER_S * 1000)
    chart = page.locator("#classify-chart")
    chart.locator("canvas, svg").first.wait_for(timeout=30_000)
    # the shipped fine-tuned sentiment classifier serves the page by default
    assert "First text: positive" in page.locator("#classify-caption").inner_text()
    table = page.locator("#classify-table").inner_text()
    for sentence in sentences:
        assert sentence[:30] in table
    with page.expect_download() as download:
        page.locator("#classify-download").click()
    saved = tmp_path / "labels.csv"
    download.value.save_as(saved)
    lines = saved.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith('"text"') and len(lines) == 4
    page.screenshot(path=str(ARTIFACTS / "classify.png"), full_page=True)


def test_classify_unfair_terms_from_the_task_list(page):
    _open_tab(page, "Classify")
    page.get_by_label("Task").click()
    options = page.get_by_role("option")
    options.first.wait_for(timeout=10_000)
    names = [name.replace("✓", "").strip() for name in options.all_inner_texts()]  # the chosen one is ticked
    assert {"sentiment", "contract-clause", "unfair-tos"} <= set(names), names
    page.get_by_role("option", name="unfair-tos").click()
    page.fill("#classify-input textarea", "We may terminate your account at any time, for any reason, without notice.")
    page.locator("#classify-button").click()
    page.locator("#classify-download").wait_for(state="visible", timeout=ANSWER_S * 1000)
    assert "Unilateral termination" in page.locator("#classify-caption").inner_text()


def test_classify_csv_upload(page, phrasebank, tmp_path):
    _open_tab(page, "Classify")
    path = tmp_path / "sentences.csv"
    rows = phrasebank[:5]
    path.write_text("id,text\n" + "\n".join(f'{r["id"]},"{r["sentence"]}"' for r in rows), encoding="utf-8")
    page.locator("#classify-upload input[type=file]").set_input_files(str(path))
    page.wait_for_function(
        "() => document.querySelector('#classify-input textarea')?.value.split('\\n').length === 5", timeout=30_000
    )
    page.locator("#classify-button").click()
    page.locator("#classify-download").wait_for(state="visible", timeout=ANSWER_S * 1000)
    assert rows[4]["sentence"][:30] in page.locator("#classify-table").inner_text()


# -------------------------------------------------------------------- documents


@pytest.fixture
def library(app_url):
    """The app's document library, emptied after the test (through the API): the chat tests answer
    without documents."""
    yield f"{app_url}/v1/documents"
    for document in httpx.get(f"{app_url}/v1/documents").json()["data"]:
        httpx.delete(f"{app_url}/v1/documents/{document['id']}").raise_for_status()


def _add_document(page, path: Path) -> None:
    """Upload ``path`` in the Documents tab, add it, and wait for the list to show it."""
    _open_tab(page, "Documents")
    page.locator("#documents-upload input[type=file]").set_input_files(str(path))
    # Listed in the file preview once uploaded (while uploading, only the progress shows its name).
    page.locator(f'#documents-upload .file-preview td.filename[aria-label="{path.name}"]').wait_for(timeout=30_000)
    page.locator("#documents-add").click()
    page.locator("#documents-status").get_by_text(f"added {path.name}").wait_for(timeout=ANSWER_S * 1000)
    page.locator("#documents-table").get_by_text(path.name).filter(visible=True).first.wait_for(timeout=30_000)


def test_documents_tab_adds_lists_and_removes_a_document(page, library, tatqa_file):
    path, _ = tatqa_file
    _open_tab(page, "Documents")
    page.locator("#documents-table").get_by_text("Library: empty").wait_for(timeout=30_000)  # the page load lists it
    _add_document(page, path)
    assert "Library: 1 document" in page.locator("#documents-table").inner_text()
    [listed] = httpx.get(library).json()["data"]
    cells = [page.locator("#documents-table").get_by_test_id(f"cell-0-{column}").inner_text().strip()
             for column in range(5)]
    assert cells[:4] == [str(listed["id"]), path.name, "1", str(listed["chunks"])] and listed["added"] in cells[4]
    page.screenshot(path=str(ARTIFACTS / "documents.png"), full_page=True)
    page.get_by_label("Document", exact=True).click()
    page.get_by_role("option", name=path.name).click()
    page.locator("#documents-remove").click()
    page.locator("#documents-status").get_by_text(f"Removed {path.name}.").wait_for(timeout=30_000)
    page.locator("#documents-table").get_by_text("Library: empty").wait_for(timeout=30_000)
    assert path.name not in page.locator("#documents-table").inner_text()
    assert httpx.get(library).json()["data"] == []


def test_chat_answer_cites_the_document_and_opens_to_its_passage(page, library, tatqa_file):
    path, record = tatqa_file
    _add_document(page, path)
    _open_tab(page, "Chat")
    page.fill("#chat-input textarea", record["question"])
    page.keyboard.press("Enter")
    _wait_idle(page, '[data-testid="bot"]', ANSWER_S)
    first = page.locator('[data-testid="bot"]').last.locator("details.chat-citation").first
    first.wait_for(timeout=10_000)
    assert first.locator("summary").inner_text().strip() == f"[1] {path.name}, page 1"
    passage = first.locator("blockquote")
    assert not passage.is_visible()  # closed until asked for
    first.locator("summary").click()
    passage.wait_for(state="visible", timeout=5_000)
    document = " ".join(path.read_text(encoding="utf-8").split())
    assert " ".join(passage.inner_text().split()) in document
    page.screenshot(path=str(ARTIFACTS / "chat-citations.png"), full_page=True)


def test_chat_answers_from_the_document_chosen_under_it(page, library, tatqa_file, tmp_path):
    path, record = tatqa_file
    # The same report filed twice under another name: either could answer; the one chosen does.
    copy = tmp_path / "sales-report-copy.txt"
    copy.write_text(path.read_text(encoding="utf-8") + "\n\nFiled again for the audit committee.", encoding="utf-8")
    _add_document(page, path)
    _add_document(page, copy)
    _open_tab(page, "Chat")
    page.locator(".label-wrap", has_text="Documents").first.click()  # the accordion under the chat
    chooser = page.locator("#chat-scope input")
    chooser.click()
    page.get_by_role("option", name=copy.name).click()
    page.locator("#chat-scope .token", has_text=copy.name).wait_for(timeout=10_000)
    page.fill("#chat-input textarea", record["question"])
    page.keyboard.press("Enter")
    _wait_idle(page, '[data-testid="bot"]', ANSWER_S)
    cited = page.locator('[data-testid="bot"]').last.locator("details.chat-citation summary")
    cited.first.wait_for(timeout=10_000)
    assert {" ".join(t.split()[1:]).rsplit(", page", 1)[0] for t in cited.all_inner_texts()} == {copy.name}
    page.screenshot(path=str(ARTIFACTS / "chat-documents-chosen.png"), full_page=True)
