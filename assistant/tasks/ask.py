"""The advisory chat turn: a system prompt that keeps answers factual, and a
not-investment-advice notice appended where the question asks for advice."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

from ..types import Generation, Message, SamplingParams
from ..errors import InvalidParameterError
from ..inputs import ensure_text
from ..prompts import load_prompt
from .base import Pipeline

ROLES = ("system", "user", "assistant")


@dataclass
class Answer:
    text: str
    #: Whether the not-investment-advice notice was appended.
    advice_notice: bool
    generation: Generation

    def to_dict(self) -> dict:
        g = self.generation
        return {
            "text": self.text,
            "advice_notice": self.advice_notice,
            "finish_reason": g.finish_reason,
            "usage": {"prompt_tokens": g.prompt_tokens, "completion_tokens": g.completion_tokens},
        }

    def __str__(self) -> str:
        return self.text


@dataclass
class AskTurn:
    """One chat turn as the ask task sends it: the conversation (system prompt first), how to sample,
    and whether the not-investment-advice notice is due."""

    messages: list[Message]
    params: SamplingParams
    advice: bool


def normalise_history(history: object) -> list[Message]:
    """Accept [{"role", "content"}, ...] or [(user, assistant), ...] (Gradio's old tuple format)."""
    if history is None:
        return []
    if isinstance(history, (str, bytes)) or not isinstance(history, Sequence):
        raise InvalidParameterError("history must be a list of {role, content} messages or (user, assistant) pairs")
    messages: list[Message] = []
    for i, turn in enumerate(history):
        if isinstance(turn, dict):
            role, content = turn.get("role"), turn.get("content")
            if role not in ROLES:
                raise InvalidParameterError(f"history[{i}] has role {role!r}; use one of {', '.join(ROLES)}")
            messages.append({"role": role, "content": ensure_text(content, f"history[{i}].content")})
        elif isinstance(turn, (list, tuple)) and len(turn) == 2:
            user, assistant = turn
            if user:
                messages.append({"role": "user", "content": ensure_text(user, f"history[{i}][0]")})
            if assistant:
                messages.append({"role": "assistant", "content": ensure_text(assistant, f"history[{i}][1]")})
        else:
            raise InvalidParameterError(f"history[{i}] is neither a {{role, content}} message nor a (user, assistant) pair")
    return messages


class AskPipeline(Pipeline):
    name = "ask"

    def __init__(self, engine) -> None:
        super().__init__(engine)
        self.config = load_prompt("ask")

    @cached_property
    def _advice_patterns(self) -> list[re.Pattern]:
        return [re.compile(p, re.IGNORECASE) for p in self.config["advice_patterns"]]

    def asks_for_advice(self, question: str) -> bool:
        return any(p.search(question) for p in self._advice_patterns)

    def sampling(self, overrides: dict) -> SamplingParams:
        """The chat defaults from prompts/ask.toml, overridden by the caller's arguments."""
        try:
            return SamplingParams(**{**self.config["generation"], **overrides})
        except TypeError as exc:  # an unknown keyword argument
            raise InvalidParameterError(f"unknown sampling parameter: {exc}") from exc

    def preprocess(self, inputs, history=None, **sampling) -> AskTurn:
        question = ensure_text(inputs, "question")
        messages = normalise_history(history)
        messages.append({"role": "user", "content": question})
        return self.conversation(messages, **sampling)

    def conversation(self, messages: Sequence[Message], **sampling) -> AskTurn:
        """A whole conversation (OpenAI-style messages, the question last) as a turn of this task: the
        ask system prompt first unless the conversation brings its own (an OpenAI client's system
        message is kept), the ask sampling defaults under ``sampling``, and the notice due when the
        last user message asks for advice. Every front door (Python, CLI, web chat, HTTP chat) goes
        through here, so the same question gets the same kind of answer everywhere."""
        # An empty message (an OpenAI client's placeholder turn) says nothing: it is left out.
        messages = normalise_history([m for m in messages if not (isinstance(m, dict) and isinstance(
            m.get("content"), str) and not m["content"].strip())])
        if not any(m["role"] == "user" for m in messages):
            raise InvalidParameterError("the conversation has no user message to answer")
        if messages[0]["role"] != "system":
            messages.insert(0, {"role": "system", "content": self.config["system"]})
        question = next(m["content"] for m in reversed(messages) if m["role"] == "user")
        return AskTurn(messages, self.sampling(sampling), self.asks_for_advice(question))

    def forward(self, prepared: AskTurn) -> tuple[AskTurn, Generation]:
        return prepared, self.engine.generate(prepared.messages, prepared.params)

    def notice_for(self, prepared: AskTurn, text: str) -> str:
        """The notice to append (with its separator), or "" when none is due."""
        notice = self.config["notice"]
        if not prepared.advice or notice.lower() in text.lower():
            return ""
        return ("\n\n" if text.strip() else "") + notice

    def postprocess(self, outputs: tuple[AskTurn, Generation]) -> Answer:
        prepared, generation = outputs
        notice = self.notice_for(prepared, generation.text)
        return Answer(generation.text + notice, bool(notice), generation)

    def stream(self, inputs, history=None, **sampling) -> Iterator[str]:
        """Yield the answer piece by piece; the notice (if due) comes last."""
        prepared = self.preprocess(inputs, history, **sampling)
        stream = self.engine.stream(prepared.messages, prepared.params)
        text = ""
        for piece in stream:
            text += piece
            yield piece
        notice = self.notice_for(prepared, text)
        if notice:
            yield notice

    async def astream(self, inputs, history=None, **sampling) -> AsyncIterator[str]:
        """``stream`` for event loops (the UI, the server): waiting holds no thread, and closing the
        iterator (a Stop button, a client gone) cancels the generation at the next token."""
        prepared = self.preprocess(inputs, history, **sampling)
        request = self.engine.stream(prepared.messages, prepared.params)
        text = ""
        async for piece in request:
            text += piece
            yield piece
        notice = self.notice_for(prepared, text)
        if notice:
            yield notice
