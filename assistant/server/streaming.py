"""Streamed chat completions: text pieces within the request timeout, Server-Sent Events that always
close (cancelling the generation when the client leaves), and the chunks of the OpenAI stream format."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ..errors import AssistantError
from ..schemas import ChatCompletionChunk, ChatCompletionChunkChoice, ChoiceDelta, Usage
from ..tasks.ask import Citation

from .errors import error_body, from_assistant_error, timeout_error
from .service import Service

log = logging.getLogger(__name__)


async def timed_pieces(handle, timeout: float) -> AsyncIterator[str]:
    """The handle's text pieces; ``TimeoutError`` once ``timeout`` seconds have passed since the first call.
    (Each wait is bounded on its own: an ``asyncio.timeout`` block must not span a ``yield``.)"""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pieces = aiter(handle)
    while True:
        try:
            piece = await asyncio.wait_for(anext(pieces), max(0.0, deadline - loop.time()))
        except StopAsyncIteration:
            return
        yield piece


async def cancel_on_disconnect(request: Request, handle) -> None:
    """Cancel ``handle`` when the client goes away (the body has been read: only a disconnect comes)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            handle.cancel()
            return


class EventStream(StreamingResponse):
    """A Server-Sent Events response that always closes its generator, so that the generator's
    ``finally`` (which cancels the generation) runs as soon as the client disconnects, wherever the
    stream was suspended at that moment."""

    media_type = "text/event-stream"

    def __init__(self, content: AsyncIterator[str], on_close: Callable[[], None]) -> None:
        super().__init__(content, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()
            await self.body_iterator.aclose()  # type: ignore[union-attr]


def sse_event(data: dict | str) -> str:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"data: {payload}\n\n"


def chunk_event(completion_id: str, created: int, model: str, delta: ChoiceDelta | None = None,
           finish_reason: str | None = None, usage: Usage | None = None,
           citations: list[Citation] | None = None) -> dict:
    choices = [] if delta is None else [ChatCompletionChunkChoice(delta=delta, finish_reason=finish_reason)]
    chunk = ChatCompletionChunk(id=completion_id, created=created, model=model, choices=choices, usage=usage,
                                citations=citations)
    data = chunk.model_dump(mode="json")
    if citations is None:  # the extension field only where it says something: the first chunk of a grounded answer
        del data["citations"]
    for choice in data["choices"]:  # OpenAI sends only the delta's fields that are set
        choice["delta"] = {k: v for k, v in choice["delta"].items() if v is not None}
    return data


def usage_of(result) -> Usage:
    return Usage(prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
                 total_tokens=result.prompt_tokens + result.completion_tokens)


async def stream_events(service: Service, handle, completion_id: str, created: int, model: str,
                         include_usage: bool, redactor=None, record: Callable[[str], None] | None = None,
                         notice: Callable[[str], str] | None = None,
                         citations: list[Citation] | None = None) -> AsyncIterator[str]:
    """The SSE body of a streamed completion: role (with the ``citations`` of a grounded answer),
    content deltas, finish reason, [usage], [DONE]. An error after the first event is sent as an
    ``{"error": ...}`` event (the status is already 200). ``redactor``: placeholders in the answer are
    put back (split ones held until complete); ``record`` gets the answer as sent, when the stream ends
    however it ends."""
    restorer = redactor.restoring() if redactor is not None else None
    sent = ""
    try:
        yield sse_event(chunk_event(completion_id, created, model, ChoiceDelta(role="assistant", content=""),
                                    citations=citations))
        async for piece in timed_pieces(handle, service.timeout):
            if restorer is not None:
                piece = restorer.feed(piece)
                if not piece:
                    continue
            sent += piece
            yield sse_event(chunk_event(completion_id, created, model, ChoiceDelta(content=piece)))
        if restorer is not None and (rest := restorer.flush()):
            sent += rest
            yield sse_event(chunk_event(completion_id, created, model, ChoiceDelta(content=rest)))
        if notice is not None and (due := notice(sent)):  # the not-investment-advice notice, last
            sent += due
            yield sse_event(chunk_event(completion_id, created, model, ChoiceDelta(content=due)))
        result = handle.result
        yield sse_event(chunk_event(completion_id, created, model, ChoiceDelta(), finish_reason=result.finish_reason))
        if include_usage:
            yield sse_event(chunk_event(completion_id, created, model, usage=usage_of(result)))
        yield sse_event("[DONE]")
    except TimeoutError:
        handle.cancel()
        yield sse_event(error_body(str(timeout_error(service.timeout)), "timeout_error", "timeout"))
    except AssistantError as exc:
        error = from_assistant_error(exc)
        yield sse_event(error_body(error.message, error.type, error.code))
    except Exception:
        log.exception("streamed chat completion failed")
        yield sse_event(error_body("internal server error (details are in the server log)", "server_error"))
    finally:  # the client left, an error, or the end: free the batch slot, record the metrics and the answer
        service.settle(handle)
        if record is not None and sent:
            try:
                record(sent)
            except Exception:  # pragma: no cover - record_answer logs its own failures
                log.exception("recording a streamed answer failed")
