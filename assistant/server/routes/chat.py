"""``POST /v1/chat/completions``: OpenAI Chat Completions, plain or streamed as Server-Sent Events, on the
ask task's turn (its system prompt unless the client sends one, its defaults, the notice where due)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from ...models import GENERATOR
from ...schemas import ChatCompletion, ChatCompletionChoice, ChatCompletionMessage, ChatCompletionRequest
from ...types import Generation
from ..errors import APIError, timeout_error
from ..service import Service, service_of
from ..streaming import EventStream, cancel_on_disconnect, stream_events, timed_pieces, usage_of

#: Model names a chat request may use for "whatever this server serves".
DEFAULT_MODEL_ALIASES = ("", "default")

router = APIRouter()


@router.post("/v1/chat/completions", response_model=ChatCompletion, tags=["chat"],
          responses={200: {"content": {"text/event-stream": {}},
                           "description": "a ChatCompletion, or with stream=true ChatCompletionChunk events"}})
async def chat_completions(body: ChatCompletionRequest, request: Request, service: Annotated[Service, Depends(service_of)]):
    """OpenAI Chat Completions. Sampling is greedy unless ``temperature`` > 0 (OpenAI's default is 1)."""
    await service.ready(GENERATOR)
    model = service.model_name(GENERATOR)
    if body.model is not None and body.model not in (*DEFAULT_MODEL_ALIASES, model):
        raise APIError(404, f"the model {body.model!r} does not exist here; this server chats with {model!r}",
                       code="model_not_found", param="model")
    # The ask task's turn, as for every front door: its system prompt unless the client sent one,
    # its sampling defaults where the request sets none, the notice where due, and the passages of the
    # document library found for the question (a search: blocking, so in the thread pool).
    asked = [m.as_engine_message() for m in body.messages]
    turn = await service.blocking(service.assistant.chat_turn, asked, documents=body.documents)
    messages = turn.messages
    question = next(m["content"] for m in reversed(asked) if m["role"] == "user" and m["content"].strip())
    redactor = service.assistant.redactor()  # --redact-inputs: the model sees placeholders, the client its values
    if redactor is not None:
        messages = [{**m, "content": redactor.redact(m["content"])} for m in messages]
    pipeline = service.assistant.pipeline("ask")
    if turn.declined:  # the documents do not contain the answer: the fixed sentence, nothing generated
        handle = Settled(pipeline.declined())
    elif turn.answerer:
        # The grounded answerer (the generator with its shipped adapter) writes a short form that is
        # written out whole once complete: answered here, then sent like a settled answer. Its
        # citations are the passages it answered from, none when it found the answer not in them.
        answered = await service.blocking(lambda: pipeline.postprocess(pipeline.forward(replace(turn, messages=messages))))
        turn = replace(turn, citations=answered.citations, declined=answered.declined)
        handle = Settled(replace(answered.generation, text=answered.text))
    else:
        handle = await run_in_threadpool(service.submit, body, messages, turn.params, service.remaining_s(request))
    grounded = bool(turn.citations) or turn.declined
    citations = turn.citations if grounded else None

    def notice(text: str) -> str:
        return service.assistant.notice_for(turn, text)

    def record(text: str) -> None:
        service.assistant.record_answer("chat", question, text, user=service.who(body.user), model=model,
                                        citations=[str(c) for c in turn.citations])

    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        events = stream_events(service, handle, completion_id, created, model, include_usage, redactor, record,
                               notice, citations)
        return EventStream(events, on_close=lambda: service.settle(handle))

    watcher = asyncio.create_task(cancel_on_disconnect(request, handle))
    try:
        async for _ in timed_pieces(handle, service.remaining_s(request)):
            pass
    except TimeoutError:
        handle.cancel()
        raise timeout_error(service.timeout) from None
    finally:
        watcher.cancel()
        service.settle(handle)
    result = handle.result
    text = redactor.restore(result.text) if redactor is not None else result.text
    text += notice(text)
    await run_in_threadpool(record, text)
    return ChatCompletion(
        id=completion_id,
        created=created,
        model=model,
        choices=[ChatCompletionChoice(message=ChatCompletionMessage(content=text),
                                      finish_reason=result.finish_reason)],
        usage=usage_of(result),
        citations=citations,
    )


class Settled:
    """A completion whose answer is known without generating (the documents do not contain it): a
    handle like the batcher's, whose one piece is the whole text."""

    ttft_s = None

    def __init__(self, generation: Generation) -> None:
        self.result = generation

    async def __aiter__(self) -> AsyncIterator[str]:
        yield self.result.text

    def cancel(self) -> None:
        pass
