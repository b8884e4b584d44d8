"""Gradio web UI: chat, summarise, classify — a thin front door over the same Assistant.

No model logic here: every tab calls ``Assistant`` methods and shows their
results. Errors of ours (``AssistantError``) appear as readable messages.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: never phone home

import gradio as gr  # noqa: E402

from .api import Assistant  # noqa: E402
from .errors import AssistantError  # noqa: E402
from .tasks.summarize import STYLES  # noqa: E402

CHAT_EXAMPLES = [
    "What does a debt-to-equity ratio tell me?",
    "Explain the difference between EBITDA and net income.",
    "Should I buy shares of a company whose revenue fell 20%?",
]


def _text_of(content) -> str:
    """Gradio message content is a string or a list of parts; keep the text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    if isinstance(content, dict):
        return str(content.get("text", ""))
    return str(content or "")


def build_ui(assistant: Assistant) -> gr.Blocks:
    def chat(message: str, history: list[dict]):
        turns = [{"role": m["role"], "content": _text_of(m["content"])} for m in history if _text_of(m["content"])]
        answer = ""
        try:
            for piece in assistant.ask_stream(message, history=turns):
                answer += piece
                yield answer
        except AssistantError as exc:
            raise gr.Error(str(exc)) from exc

    def summarize(text: str, style: str, max_words: float):
        try:
            result = assistant.summarize(text, style=style, max_words=int(max_words))
        except AssistantError as exc:
            raise gr.Error(str(exc)) from exc
        return result.text, f"{result.seconds:.1f} s, {result.chunks} chunk(s), {result.source_tokens} source tokens"

    def classify(text: str, task: str):
        texts = [line for line in (text or "").splitlines() if line.strip()] or [text]
        try:
            results = assistant.classify(texts, task=task)
        except AssistantError as exc:
            raise gr.Error(str(exc)) from exc
        first = {s.label: s.score for s in results[0].scores}
        table = [[t, ", ".join(r.labels) or "(none)", round(r.scores[0].score, 3)] for t, r in zip(texts, results)]
        return first, table

    rows = assistant.models()
    info = " · ".join(f"{r['role']}: {r['name']} on {r['device']} ({r['dtype']})" for r in rows)
    with gr.Blocks(title="Financial text assistant", analytics_enabled=False) as demo:
        gr.Markdown(f"## Financial text assistant\n{info}")
        with gr.Tab("Chat"):
            gr.ChatInterface(chat, examples=CHAT_EXAMPLES, run_examples_on_click=False, save_history=False)
        with gr.Tab("Summarise"):
            source = gr.Textbox(label="Text", lines=12, placeholder="Paste a news article or an earnings-call transcript")
            with gr.Row():
                style = gr.Radio(list(STYLES), value="bullets", label="Style")
                max_words = gr.Slider(5, 400, value=120, step=5, label="Max words")
            go = gr.Button("Summarise", variant="primary")
            summary = gr.Textbox(label="Summary", lines=8, buttons=["copy"])
            timing = gr.Markdown()
            go.click(summarize, [source, style, max_words], [summary, timing])
        with gr.Tab("Classify"):
            tasks = assistant.classification_tasks()
            task = gr.Dropdown(tasks, value="sentiment" if "sentiment" in tasks else tasks[0], label="Task")
            texts = gr.Textbox(label="Text (one per line for many)", lines=6)
            go = gr.Button("Classify", variant="primary")
            scores = gr.Label(label="First text", num_top_classes=5)
            table = gr.Dataframe(headers=["text", "labels", "score"], label="All texts")
            go.click(classify, [texts, task], [scores, table])
    return demo
