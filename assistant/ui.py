"""Gradio web UI: chat, summarise, classify, documents — a thin front door over the same Assistant.

No model logic here: every tab calls ``Assistant`` methods (the chat streams through
the service's batcher) and shows their results; the Documents tab manages the library
(``Assistant.documents``) that grounds chat answers, which then show their numbered
citations. ``mount_ui`` puts the page on the HTTP service's FastAPI app, so the UI and
the API share one process, one port and one engine. Problems of ours (``AssistantError``)
show as readable messages in the page; anything else is logged and shown as a short
"internal error" line.
"""

from __future__ import annotations

import csv
import hmac
import html
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from contextlib import aclosing
from functools import wraps
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: never phone home

import gradio as gr
import pandas as pd

from .api import Assistant
from .documents import DOCUMENT_TYPES, LIBRARY_TYPES, read_document, read_texts_csv
from .errors import AssistantError, EmptyInputError, InputTooLongError, InvalidInputError
from .library import AddResult, DocumentInfo, DocumentStore, counted
from .settings import MAX_UPLOAD_BYTES
from .tasks.summarize import STYLES

log = logging.getLogger(__name__)

CHAT_EXAMPLES = [
    "What does a debt-to-equity ratio tell me?",
    "Explain the difference between EBITDA and net income.",
    "Should I buy shares of a company whose revenue fell 20%?",
]
#: Most texts the Classify tab takes at once (a CSV upload included).
MAX_CLASSIFY_TEXTS = 2000
#: How the audit log names the page's users (behind the login, the service's one API key).
UI_USER = "web-ui"
#: Labels drawn in the bar chart (contract clauses have 41).
CHART_LABELS = 10
#: The Documents tab's table: what ``finassist docs list`` shows.
DOCUMENT_COLUMNS = ["id", "document", "pages", "passages", "added"]
#: Opens the citations appended to a chat answer. The page sends the answer back as history with the
#: next question; the history keeps only the text before it (the passages would crowd out the window).
CITATIONS_START = "<div class='chat-citations'>"

_CSS = """
#finassist-header p { margin: 0; color: var(--body-text-color-subdued); }
.chat-citations details { margin-top: 0.25em; }
.chat-citations summary { cursor: pointer; }
footer { display: none !important; }
"""


def _answer_text(content) -> str:
    """A chat message's text without the citations the page appended to it."""
    return _text_of(content).split(CITATIONS_START, 1)[0].rstrip()


def _text_of(content) -> str:
    """Gradio message content is a string or a list of parts; keep the text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    if isinstance(content, dict):
        return str(content.get("text", ""))
    return str(content or "")


def _user_error(exc: AssistantError) -> gr.Error:
    # A user's mistake is not a fault: shown in the page, not printed as a traceback in the log.
    return gr.Error(str(exc), title="Cannot do that", print_exception=False)


def _internal_error() -> gr.Error:
    return gr.Error("internal error: the details are in the server log", title="Error", print_exception=False)


def _readable_errors(fn: Callable) -> Callable:
    """Our errors become a message in the page; anything else is logged, never shown as a traceback."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except AssistantError as exc:
            raise _user_error(exc) from exc
        except Exception as exc:
            log.exception("UI handler %s failed", fn.__name__)
            raise _internal_error() from exc

    return wrapper


def uploaded_path(file) -> Path:
    """The path of a file the page uploaded, refused unless it lies in Gradio's upload folder: the
    handlers receive a file object the client describes, and its path must never name any other file
    this process can read."""
    from gradio.utils import get_upload_folder

    raw = file if isinstance(file, (str, os.PathLike)) else getattr(file, "path", None) or getattr(file, "name", None)
    if not raw:
        raise InvalidInputError("no file was uploaded")
    path = Path(raw).resolve()
    if not path.is_relative_to(Path(get_upload_folder()).resolve()) or not path.is_file():
        log.warning("refused a file that was not uploaded through the page: %s", raw)
        raise InvalidInputError("that file was not uploaded through this page: upload it again")
    return path


def _model_line(assistant: Assistant) -> str:
    rows = assistant.models()
    return " · ".join(f"**{r['role']}**: {r['name']} on {r['device']} ({r['dtype']})" for r in rows)


def _scores_frame(result) -> pd.DataFrame:
    top = result.scores[:CHART_LABELS]
    return pd.DataFrame({"label": [s.label for s in top], "probability": [round(s.score, 4) for s in top]})


def build_ui(assistant: Assistant, *, max_file_bytes: int = MAX_UPLOAD_BYTES) -> gr.Blocks:
    """The page: Chat, Summarise, Classify and Documents tabs over ``assistant``."""

    async def chat(message: str, history: list[dict], scope: list[str] | None = None):
        turns = [{"role": m["role"], "content": _answer_text(m["content"])} for m in history
                 if _answer_text(m["content"])]
        answer = ""
        try:
            # Async: a waiting chat holds no thread, and Stop (Gradio cancels this coroutine)
            # closes the stream, which frees the request's row in the batch at the next token.
            # ``scope``: the documents chosen under the chat (none: the whole library).
            stream = assistant.ask_stream_async(message, history=turns, user=UI_USER, documents=scope or None)
            async with aclosing(stream):
                async for piece in stream:
                    answer += piece
                    yield answer
            # Read after the answer: the grounded answerer may find the answer not in the passages after
            # all, and then cites none (as ``Assistant.ask`` does).
            if stream.citations:
                yield answer + _citations_html(stream.citations)
        except AssistantError as exc:
            raise _user_error(exc) from exc
        except Exception as exc:
            log.exception("chat failed")
            raise _internal_error() from exc

    @_readable_errors
    def load_document(file) -> str:
        if file is None:
            return gr.skip()
        return read_document(uploaded_path(file), max_bytes=max_file_bytes)

    @_readable_errors
    def summarize(text: str, style: str, max_words: float, progress=gr.Progress()):
        progress(0, desc="Reading the text")

        def report(done: int, total: int, what: str) -> None:
            progress((done, total), desc=what.capitalize(), unit="steps")

        result = assistant.summarize(text, style=style, max_words=int(max_words), progress=report, user=UI_USER)
        if result.method == "chunked":
            detail = f"{result.chunks} part(s)" if result.chunks > 1 else "one pass"
        else:
            detail = "key sentences, rewritten"
        timing = f"Took **{result.seconds:.1f} s** · {result.source_tokens:,} source tokens · {detail}"
        return result.text, timing, _sources_html(result)

    @_readable_errors
    def load_texts(file) -> str:
        if file is None:
            return gr.skip()
        return "\n".join(read_texts_csv(uploaded_path(file), max_rows=MAX_CLASSIFY_TEXTS, max_bytes=max_file_bytes))

    @_readable_errors
    def classify(text: str, task: str, zero_shot: bool = False, progress=gr.Progress()):
        texts = [line.strip() for line in (text or "").splitlines() if line.strip()]
        if not texts:
            raise EmptyInputError("enter a text to classify (one per line for many), or upload a CSV")
        if len(texts) > MAX_CLASSIFY_TEXTS:
            raise EmptyInputError(f"{len(texts):,} texts: the page takes at most {MAX_CLASSIFY_TEXTS:,} at once")
        progress(0, desc=f"Classifying {len(texts):,} text(s)")
        results = assistant.classify(texts, task=task, zero_shot=bool(zero_shot))
        table = pd.DataFrame({
            "text": texts,
            "labels": ["; ".join(r.labels) or "(none)" for r in results],
            "top label": [r.scores[0].label for r in results],
            "probability": [round(r.scores[0].score, 4) for r in results],
        })
        out = Path(tempfile.mkdtemp(prefix="finassist-classify-")) / f"{task}-labels.csv"
        table.to_csv(out, index=False, quoting=csv.QUOTE_NONNUMERIC)
        caption = f"First text: **{', '.join(results[0].labels) or '(no label)'}**"
        return _scores_frame(results[0]), caption, table, gr.DownloadButton(value=str(out), visible=True)

    tasks = assistant.classification_tasks()
    with gr.Blocks(title="Financial text assistant", analytics_enabled=False) as demo:
        with gr.Row(elem_id="finassist-header"):
            gr.Markdown(f"## Financial text assistant\n{_model_line(assistant)}")
        with gr.Tab("Chat", id="chat"):
            # Which documents answers come from: a question about one report ("net income in 2019") is
            # answered by every report with that row unless the user says which (docs/results.md).
            scope = gr.Dropdown([], value=[], multiselect=True, label="Answer from these documents only "
                                "(none chosen: the whole library)", elem_id="chat-scope",
                                visible=assistant.documents is not None, render=False,
                                # The choices are this page's; a name chosen here may have been removed
                                # meanwhile (another tab, the CLI): the library says so, readably.
                                allow_custom_value=True)
            gr.ChatInterface(
                chat,
                chatbot=gr.Chatbot(height=460, buttons=["copy"], placeholder="Ask about finance: ratios, "
                                   "filings, earnings. Answers are information, not investment advice."),
                textbox=gr.Textbox(placeholder="Ask a question", submit_btn="Send", stop_btn="Stop",
                                   elem_id="chat-input"),
                examples=[[example] for example in CHAT_EXAMPLES],
                run_examples_on_click=True,
                save_history=False,
                fill_height=False,
                additional_inputs=[scope],
                additional_inputs_accordion=gr.Accordion("Documents", open=False, render=False,
                                                         visible=assistant.documents is not None),
            )
        with gr.Tab("Summarise", id="summarise"):
            with gr.Row():
                with gr.Column(scale=3):
                    source = gr.Textbox(label="Text", lines=12, max_lines=24, elem_id="summary-source",
                                        placeholder="Paste a news article or an earnings-call transcript")
                    upload = gr.File(label="…or upload a .txt, .md or .pdf file", file_types=list(DOCUMENT_TYPES),
                                     file_count="single", height=140, elem_id="summary-upload")
                with gr.Column(scale=2):
                    style = gr.Radio(list(STYLES), value="bullets", label="Style")
                    max_words = gr.Slider(5, 400, value=120, step=5, label="Length (max words)", elem_id="summary-length")
                    go = gr.Button("Summarise", variant="primary", elem_id="summarise-button")
            summary = gr.Textbox(label="Summary", lines=8, buttons=["copy"], elem_id="summary-output")
            timing = gr.Markdown(elem_id="summary-timing")
            sources = gr.HTML(elem_id="summary-sources")
            upload.upload(load_document, upload, source)
            go.click(summarize, [source, style, max_words], [summary, timing, sources], concurrency_limit=2)
        with gr.Tab("Classify", id="classify"):
            with gr.Row():
                with gr.Column(scale=3):
                    task = gr.Dropdown(tasks, value="sentiment" if "sentiment" in tasks else tasks[0], label="Task")
                    zero_shot = gr.Checkbox(False, label="Zero-shot (label descriptions, not the fine-tuned model)",
                                            elem_id="classify-zero-shot")
                    texts = gr.Textbox(label="Text (one per line for many)", lines=6, elem_id="classify-input")
                    texts_file = gr.File(label="…or upload a CSV (a 'text' column, else the first) or .txt",
                                         file_types=[".csv", ".txt"], height=140, elem_id="classify-upload")
                    go = gr.Button("Classify", variant="primary", elem_id="classify-button")
                with gr.Column(scale=2):
                    caption = gr.Markdown(elem_id="classify-caption")
                    chart = gr.BarPlot(x="label", y="probability", sort="-y", y_lim=[0, 1], x_label_angle=-30,
                                       label="Labels of the first text", elem_id="classify-chart", height=300)
            table = gr.Dataframe(label="All texts", wrap=True, elem_id="classify-table", interactive=False,
                                 column_widths=["58%", "17%", "15%", "10%"])
            download = gr.DownloadButton("Download CSV", visible=False, elem_id="classify-download")
            texts_file.upload(load_texts, texts_file, texts)
            go.click(classify, [texts, task, zero_shot], [chart, caption, table, download])
        with gr.Tab("Documents", id="documents"):
            _documents_tab(demo, assistant.documents, max_file_bytes, scope)
    return demo


def _documents_tab(demo: gr.Blocks, store: DocumentStore | None, max_file_bytes: int, scope: gr.Dropdown) -> None:
    """The library that grounds chat answers: upload files to add, see what is there, remove. ``scope``:
    the chat's choice of documents, whose choices follow the library."""
    if store is None:
        gr.Markdown("The document library is off (`FINASSIST_LIBRARY=off`), so answers are not grounded in "
                    "documents: start the app with `--library PATH` to use one.", elem_id="documents-off")
        return

    @_readable_errors
    def list_documents(scoped: list[str] | None = None):
        documents = store.list()
        names = [d.name for d in documents]
        return (gr.Dataframe(_documents_frame(documents), label=_library_caption(documents)),
                gr.Dropdown(choices=names, value=None),
                gr.Dropdown(choices=names, value=[n for n in scoped or [] if n in names]))

    @_readable_errors
    def add_documents(files, progress=gr.Progress()):
        paths = [uploaded_path(f) for f in files or []]
        if not paths:
            raise EmptyInputError("choose one or more files to add to the library")
        done, failed = [], []
        for path in paths:
            try:
                done.append(str(_add_upload(store, path, max_file_bytes, progress)))
            except AssistantError as exc:  # one bad file: said, and the others still added (as `docs add` does)
                failed.append(str(exc))
        if failed:
            raise InvalidInputError("; ".join(done + failed))
        return "\n".join(f"- {html.escape(line)}" for line in done), None

    @_readable_errors
    def remove_document(name: str | None):
        if not name:
            raise EmptyInputError("choose the document to remove")
        return f"Removed {html.escape(store.remove(name).name)}."

    gr.Markdown("Chat answers are written from these documents, with numbered citations, while the library "
                "holds any; choose documents under the chat to ask about those only. "
                f"Accepted: {', '.join(LIBRARY_TYPES)}.")
    with gr.Row():
        with gr.Column(scale=3):
            files = gr.File(label="Files to add", file_count="multiple", file_types=list(LIBRARY_TYPES),
                            height=140, elem_id="documents-upload")
            add = gr.Button("Add to library", variant="primary", elem_id="documents-add")
        with gr.Column(scale=2):
            choice = gr.Dropdown([], value=None, label="Document", elem_id="documents-choice")
            remove = gr.Button("Remove", variant="stop", elem_id="documents-remove")
    status = gr.Markdown(elem_id="documents-status")
    table = gr.Dataframe(_documents_frame([]), label="Library", interactive=False, wrap=True,
                         elem_id="documents-table")
    # First: the API name "list_documents" goes to the page load, not to a refresh below.
    demo.load(list_documents, scope, [table, choice, scope])
    # The list refreshes after an add or a remove, failed or not (a failed add may have added others).
    add.click(add_documents, files, [status, files]).then(list_documents, scope, [table, choice, scope],
                                                          api_visibility="private")
    remove.click(remove_document, choice, status).then(list_documents, scope, [table, choice, scope],
                                                       api_visibility="private")


def _add_upload(store: DocumentStore, path: Path, max_file_bytes: int, progress) -> AddResult:
    """Add one uploaded file under its own name, within the page's upload limit."""
    size = path.stat().st_size
    if size > max_file_bytes:
        raise InputTooLongError(f"{path.name} is {size / 1e6:.1f} MB; the limit is {max_file_bytes / 1e6:.1f} MB")

    def report(done: int, total: int, stage: str) -> None:
        progress((done, total), desc=f"{path.name}: {stage}", unit="passages")

    return store.add(path, name=path.name, source="upload", progress=report)


def _documents_frame(documents: Sequence[DocumentInfo]) -> pd.DataFrame:
    return pd.DataFrame([[d.id, d.name, d.pages, d.chunks, d.added] for d in documents], columns=DOCUMENT_COLUMNS)


def _library_caption(documents: Sequence[DocumentInfo]) -> str:
    if not documents:
        return "Library: empty (add files above)"
    return f"Library: {counted(len(documents), 'document')}, {counted(sum(d.chunks for d in documents), 'passage')}"


def _citations_html(citations) -> str:
    """The passages a grounded answer was written from, numbered as it cites them, each opening to its
    text. One line of HTML (a blank line would end the HTML block in the chat's Markdown); escaped: the
    passages are the user's documents, never markup."""
    def passage(text: str) -> str:
        return "<br>".join(html.escape(line) for line in text.splitlines() if line.strip())

    items = "".join(f"<details class='chat-citation'><summary>[{c.number}] {html.escape(c.document)}, page {c.page}"
                    f"</summary><blockquote>{passage(c.passage)}</blockquote></details>" for c in citations)
    return f"\n\n{CITATIONS_START}<strong>Sources</strong>{items}</div>"


def mount_ui(app, assistant: Assistant, *, path: str = "/", api_key: str | None = None,
             max_file_bytes: int = MAX_UPLOAD_BYTES):
    """Serve the page on ``app`` (the HTTP service's FastAPI app) at ``path``.

    Gradio's queue admits as many chats at once as the batcher batches (the batcher
    does the real scheduling) and holds as many waiting as the service's queue does.
    With an API key, the page asks for it as the password of a login form.
    """
    settings = assistant.engine.batch_settings
    demo = build_ui(assistant, max_file_bytes=max_file_bytes)
    demo.queue(default_concurrency_limit=settings.max_batch_size, max_size=settings.max_queue)
    # Gradio checks that the files a request names were uploaded (not any path on the server) only for
    # apps it launched itself; a mounted app must say it is running for that check to apply.
    demo.has_launched = True
    return gr.mount_gradio_app(
        app, demo, path=path, auth=_password_check(api_key) if api_key else None,
        auth_message="Enter the service's API key as the password.",
        max_file_size=max_file_bytes, ssr_mode=False, footer_links=[], show_error=True,
        # System fonts: the default theme's Google Fonts would be fetched from the internet.
        theme=gr.themes.Soft(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]),
        css=_CSS,
    )


def ui_app(assistant: Assistant, *, api_key: str | None = None, max_file_bytes: int = MAX_UPLOAD_BYTES):
    """The page as an ASGI app of its own, with the lifespan that starts its queue: for a server that
    mounts it once it is built (``assistant/server/late_ui.py``) rather than before it listens.
    Built by ``mount_ui`` on a holder app, so both ways serve the same page with the same settings."""
    from fastapi import FastAPI

    holder = FastAPI()
    mount_ui(holder, assistant, path="/", api_key=api_key, max_file_bytes=max_file_bytes)
    page = holder.routes[-1].app  # mount_ui's last act: the page mounted at "/"
    return page, holder.router.lifespan_context(holder)


def _password_check(api_key: str) -> Callable[[str, str], bool]:
    """The login form's check: any user name, the service's API key as the password."""
    def check(username: str, password: str) -> bool:
        return hmac.compare_digest(password.encode(), api_key.encode())

    return check


def _sources_html(summary) -> str:
    """Each bullet (or the headline/paragraph) as an expandable line showing the sentence(s) of the
    text it was written from: where every figure came from, one click away. Escaped: the text is
    the user's, never markup."""
    def sources(items) -> str:
        return "".join(f"<blockquote>{html.escape(s.text)} <small>(sentence {s.index + 1})</small></blockquote>"
                       for s in items)

    if summary.bullets:
        rows = [(b.text, b.sources, " · source sentence shown" if b.origin == "source" else "")
                for b in summary.bullets if b.sources]
    else:
        rows = [(summary.text, summary.sources, "")] if summary.sources else []
    if not rows:
        return ""
    items = "".join(f"<details class='summary-source'><summary>{html.escape(text)}{html.escape(note)}</summary>"
                    f"{sources(items)}</details>" for text, items, note in rows)
    return f"<div><strong>Sources</strong> (open a line to see where it came from){items}</div>"
