"""The HTTP service: an OpenAI-compatible chat API plus the assistant's own tasks.

``create_app(assistant)`` builds a FastAPI app over one ``Assistant`` (one
``Engine``): ``finassist serve`` runs it with uvicorn, tests start it on a free
loopback port. Routes:

* ``POST /v1/chat/completions``: OpenAI Chat Completions, plain or streamed as
  Server-Sent Events, through the engine's dynamic batcher (concurrent requests
  share ``generate`` calls). A client that disconnects cancels its generation.
* ``GET /v1/models``: the generator and encoder being served.
* ``POST /v1/summarize``, ``POST /v1/classify``: ``Assistant.summarize`` and
  ``Assistant.classify`` (blocking calls, run in a thread pool).
* ``GET /healthz``: 200 once the models are loaded (they load in the background
  at startup), 503 while loading or when loading failed.
* ``GET /metrics``: Prometheus metrics, in a registry of this app's own.
* ``GET /docs``, ``GET /redoc``: the OpenAPI documentation, its scripts served from this process
  (``fastapi-offline``'s copies), so it works offline.

Every error has an OpenAI-style body ``{"error": {"message", "type", "param",
"code"}}``; an ``AssistantError`` answers with its ``http_status``; nothing
ever answers with a traceback (unexpected errors are logged here and answered
with a generic 500).

Hostile clients (``assistant/guards.py`` and the middlewares here): a Host allow-list, JSON bodies
only with ``Content-Type: application/json``, every body (the web UI's included) under a size and a
time limit, the UI login throttled, metric labels from closed sets, chat admission refused (429 with
Retry-After) when the expected wait exceeds the request timeout.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import logging
import math
import re
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .api import Assistant
from .audit import key_id
from .types import SamplingParams
from .errors import AssistantError, InputTooLongError, InvalidParameterError, QueueFullError
from .settings import ServiceSettings
from .guards import (
    BODY_TIMEOUT_S,
    LOOPBACK_HOSTS,
    HostAllowList,
    LoginThrottle,
    RequireLoginFirst,
    allowed_hosts_for,
    encode_json,
    uvicorn_config,
)
from .models import ENCODER, GENERATOR
from .pii import install_log_redaction
from .schemas import (
    AskRequest,
    AskResponse,
    ChatCompletion,
    ChatCompletionChoice,
    ChatCompletionChunk,
    ChatCompletionChunkChoice,
    ChatCompletionMessage,
    ChatCompletionRequest,
    ChoiceDelta,
    ClassificationResult,
    ClassifyRequest,
    ClassifyResponse,
    ErrorResponse,
    Health,
    ModelCard,
    ModelList,
    SummarizeRequest,
    SummarizeResponse,
    Usage,
)

log = logging.getLogger(__name__)

#: Model names a chat request may use for "whatever this server serves".
DEFAULT_MODEL_ALIASES = ("", "default")
#: Paths under these prefixes are the API: they need the API key (when one is set) and their
#: bodies are size-checked here. Health checks, the documentation and the web UI (which has
#: its own login and upload limit) are outside.
API_PREFIXES = ("/v1/", "/metrics")
#: Method labels of the request metrics: any other method is counted as "other" (a closed set, so
#: made-up methods cannot add label sets without bound).
_METRIC_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: Room for the multipart framing around an uploaded file.
_UPLOAD_OVERHEAD_BYTES = 64_000

_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 404, 408, 413, 415, 422, 429, 500, 503, 504)
}


# ----------------------------------------------------------------------- errors


class APIError(Exception):
    """An HTTP error answered with the OpenAI-style body (raised by the routes themselves)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type or _error_type(status)
        self.headers = headers


def _error_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 429:
        return "rate_limit_error"
    if status == 504:
        return "timeout_error"
    return "server_error" if status >= 500 else "invalid_request_error"


def _error_body(message: str, type: str, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


class _SafeJSONResponse(JSONResponse):
    """JSON that never fails to encode (an error message may quote what the client sent)."""

    def render(self, content: Any) -> bytes:
        return encode_json(content)


def _error_response(exc: APIError) -> JSONResponse:
    return _SafeJSONResponse(_error_body(exc.message, exc.type, exc.code, exc.param), exc.status, headers=exc.headers)


def _error_code(exc: AssistantError) -> str:
    """``InputTooLongError`` -> ``"input_too_long"``; the base class -> ``"assistant_error"``."""
    if type(exc) is AssistantError:
        return "assistant_error"
    name = type(exc).__name__.removesuffix("Error")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _from_assistant_error(exc: AssistantError) -> APIError:
    headers = None
    if isinstance(exc, QueueFullError):
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
    return APIError(exc.http_status, str(exc), code=_error_code(exc), headers=headers)


def _validation_message(errors: list[dict]) -> tuple[str, str | None, str]:
    """(message, param, code) for a RequestValidationError: every problem, naming its field."""
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        detail = (first.get("ctx") or {}).get("error", "invalid JSON")
        position = first.get("loc", ("body", None))[-1]
        return f"the request body is not valid JSON: {detail} (at character {position})", None, "invalid_json"
    if first.get("loc") == ("body",) and isinstance(first.get("input"), (bytes, str)):
        return "the request body must be a JSON object (send it with Content-Type: application/json)", None, "invalid_body"
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    if len(errors) > 5:
        parts.append(f"and {len(errors) - 5} more problems")
    param = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
    return "invalid request: " + "; ".join(parts), param, "invalid_request"


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> JSONResponse:
        return _error_response(exc)

    @app.exception_handler(AssistantError)
    async def assistant_error(request: Request, exc: AssistantError) -> JSONResponse:
        return _error_response(_from_assistant_error(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param, code = _validation_message(list(exc.errors()))
        return _error_response(APIError(400, message, code=code, param=param))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path}"
        error = APIError(exc.status_code, message, code=codes.get(exc.status_code), headers=exc.headers)
        return _error_response(error)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises after answering, so uvicorn logs the traceback; the client sees none.
        return _error_response(APIError(500, "internal server error (details are in the server log)"))


# ------------------------------------------------------------------ middleware


async def _send_error(send: Send, error: APIError) -> None:
    response = _error_response(error)
    await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:  # pragma: no cover - JSONResponse never reads
    return {"type": "http.disconnect"}


def _is_api(scope: Scope) -> bool:
    return scope["path"].startswith(API_PREFIXES)


def _is_json(scope: Scope) -> bool:
    kind = dict(scope["headers"]).get(b"content-type", b"").split(b";", 1)[0].strip().lower()
    return kind == b"application/json" or (kind.startswith(b"application/") and kind.endswith(b"+json"))


class _BodyLimit:
    """Every request body under a size limit and a time limit, before anything parses it.

    API paths: ``Content-Type: application/json`` only (415 otherwise, so that a web page cannot post
    to the API as a "simple" request without a CORS preflight); over ``max_bytes`` 413 (by
    Content-Length, and by what actually arrives); not UTF-8 400; read whole, then replayed.
    Other paths (the web UI): over ``other_max_bytes`` 413, streamed through as it arrives.
    Either way, a body still incomplete ``timeout_s`` after the headers is answered 408."""

    def __init__(self, app: ASGIApp, max_bytes: int, other_max_bytes: int | None = None,
                 timeout_s: float = BODY_TIMEOUT_S) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.other_max_bytes = other_max_bytes or max_bytes
        self.timeout_s = timeout_s

    # Both answer before the body has been read to its end: the connection cannot carry another request.
    def _too_big(self, limit: int) -> APIError:
        return APIError(413, f"the request body is over the limit of {limit:,} bytes", code="body_too_large",
                        headers={"Connection": "close"})

    def _too_slow(self) -> APIError:
        return APIError(408, f"the request body did not arrive within {self.timeout_s:g} s", code="request_timeout",
                        headers={"Connection": "close"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        api = _is_api(scope)
        limit = self.max_bytes if api else self.other_max_bytes
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            if not length.isdigit():
                await _send_error(send, APIError(400, "invalid Content-Length header", code="invalid_body"))
                return
            if int(length) > limit:
                await _send_error(send, self._too_big(limit))
                return
        if api:
            await self._api(scope, receive, send)
        else:
            await self._streamed(scope, receive, send, limit)

    async def _receive_until(self, receive: Receive, deadline: float) -> Message | None:
        """The next message, or None once the body's time is up."""
        try:
            return await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            return None

    async def _api(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _is_json(scope):
            error = APIError(415, "send the request body as JSON with Content-Type: application/json",
                             code="unsupported_media_type")
            await _send_error(send, error)
            return
        deadline = time.monotonic() + self.timeout_s
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self._receive_until(receive, deadline)
            if message is None:
                await _send_error(send, self._too_slow())
                return
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _send_error(send, self._too_big(self.max_bytes))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            error = APIError(400, f"the request body is not UTF-8 text (byte {exc.start} cannot be decoded)", code="not_utf8")
            await _send_error(send, error)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the client to go away

        await self.app(scope, replay, send)

    async def _streamed(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Pass the body through as it arrives; past the limit or the time, the app is told the client
        left (it stops reading) and the client gets our 413 or 408 instead of whatever the app says."""
        deadline = time.monotonic() + self.timeout_s
        size = 0
        body_done = False
        refused: APIError | None = None
        started = False

        async def guarded_receive() -> Message:
            nonlocal size, body_done, refused
            if refused is not None:
                return {"type": "http.disconnect"}
            if body_done:
                return await receive()
            message = await self._receive_until(receive, deadline)
            if message is None:
                refused = self._too_slow()
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > limit:
                    refused = self._too_big(limit)
                    return {"type": "http.disconnect"}
                body_done = not message.get("more_body", False)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused is not None and not started:
                return  # our answer replaces the app's
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except Exception:
            if refused is None:
                raise
        if refused is not None and not started:
            await _send_error(send, refused)


class _BearerAuth:
    """``Authorization: Bearer <key>`` on the API paths (401 otherwise)."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.key = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_api(scope):
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self.key):
            message = "missing API key: send Authorization: Bearer <key>" if not header else "invalid API key"
            error = APIError(401, message, code="invalid_api_key", type="invalid_request_error",
                             headers={"WWW-Authenticate": "Bearer"})
            await _send_error(send, error)
            return
        await self.app(scope, receive, send)


class _Observe:
    """Counts every request by route and status code and times it (streams: until the last byte)."""

    def __init__(self, app: ASGIApp, metrics: _Metrics, route_paths: Callable[[], set[str]]) -> None:
        self.app = app
        self.metrics = metrics
        self._route_paths = route_paths
        self._known: set[str] | None = None

    def route_paths(self) -> set[str]:
        if self._known is None:  # the routes are all declared by the time the first request comes
            self._known = self._route_paths()
        return self._known

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def observe_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observe_send)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or scope["path"]
            label = path if path in self.route_paths() else "other"  # unknown paths: one label, not one each
            method = scope["method"] if scope["method"] in _METRIC_METHODS else "other"
            self.metrics.requests.labels(label, method, str(status)).inc()
            self.metrics.latency.labels(label).observe(time.perf_counter() - started)


# --------------------------------------------------------------------- metrics


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "finassist_http_requests", "HTTP requests by route, method and status code",
            ["route", "method", "status"], registry=r,
        )
        self.latency = Histogram(
            "finassist_http_request_duration_seconds", "Time from request to the last byte of the response",
            ["route"], registry=r, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
        )
        self.ttft = Histogram(
            "finassist_time_to_first_token_seconds", "Chat completions: time from submission to the first text",
            registry=r, buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.completion_tokens = Counter(
            "finassist_generated_tokens", "Chat completion tokens generated", registry=r
        )
        self.prompt_tokens = Counter("finassist_prompt_tokens", "Chat completion prompt tokens", registry=r)
        self.completions = Counter(
            "finassist_chat_completions", "Finished chat completions by finish reason (cancelled: client gone)",
            ["finish_reason"], registry=r,
        )
        self.batch_size = Histogram(
            "finassist_batch_size", "Requests per batched generate call", registry=r,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
        )
        self.queue_depth = Gauge("finassist_queue_depth", "Chat requests waiting for a batch", registry=r)
        self.active = Gauge("finassist_active_requests", "Chat requests in the running batch", registry=r)
        self.models_loaded = Gauge("finassist_models_loaded", "1 once the generator and encoder are loaded", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)


# ----------------------------------------------------------------------- state


class _Service:
    """What the routes share: the assistant, its batcher, the limits, loading state and metrics."""

    def __init__(self, assistant: Assistant, metrics: _Metrics, *, max_input_tokens: int | None,
                 max_tokens_limit: int, request_timeout_s: float) -> None:
        self.assistant = assistant
        self.engine = assistant.engine
        self.metrics = metrics
        self.max_input_tokens = max_input_tokens
        self.max_tokens_limit = max_tokens_limit
        self.timeout = request_timeout_s
        self.batcher = None
        self._loaded: dict[str, asyncio.Future] = {}
        self._listener = self.metrics.batch_size.observe
        self._settling: set[asyncio.Task] = set()
        self._settled: weakref.WeakSet = weakref.WeakSet()
        metrics.queue_depth.set_function(lambda: self.batcher.queue_depth() if self.batcher else 0)
        metrics.active.set_function(lambda: self.batcher.active() if self.batcher else 0)

    # ---------------------------------------------------------------- loading

    def start_loading(self) -> None:
        """Load the generator (and start the batcher), then the encoder, in the background."""
        loop = asyncio.get_running_loop()
        self._loaded = {GENERATOR: loop.create_future(), ENCODER: loop.create_future()}
        self._loader = asyncio.create_task(self._load_all())

    async def _load_all(self) -> None:
        for role in (GENERATOR, ENCODER):
            future = self._loaded[role]
            try:
                await run_in_threadpool(getattr, self.engine, role)  # Engine.generator / .encoder load lazily
                if role == GENERATOR:
                    self.batcher = await run_in_threadpool(self.engine.batcher)
                    self.batcher.batch_listeners.append(self._listener)
            except Exception as exc:  # reported by /healthz and by every route that needs this model
                if not isinstance(exc, AssistantError):
                    log.exception("loading the %s failed", role)
                future.set_exception(exc)
                future.exception()  # retrieved: no "exception never retrieved" warning
            else:
                future.set_result(None)
        self.metrics.models_loaded.set(1 if self.health()[0] == "ok" else 0)

    def stop(self) -> None:
        self._loader.cancel()  # a load still running finishes in its thread; nothing waits for it
        if self.batcher is not None and self._listener in self.batcher.batch_listeners:
            self.batcher.batch_listeners.remove(self._listener)
        # The batcher belongs to the engine (it may serve another app): it is not closed here.

    def health(self) -> tuple[str, str | None]:
        for role, future in self._loaded.items():
            if not future.done():
                return "loading", f"loading the {role}"
            if future.exception() is not None:
                return "error", f"{role}: {future.exception()}"
        return ("ok", None) if self._loaded else ("loading", "starting")

    async def ready(self, role: str) -> None:
        """Wait until ``role`` is loaded; its load error, if loading failed."""
        future = self._loaded.get(role)
        if future is None:
            raise APIError(503, "the service is starting", code="not_ready")
        try:
            await asyncio.wait_for(asyncio.shield(future), self.timeout)
        except TimeoutError:
            raise APIError(503, f"the {role} is still loading", code="not_ready") from None

    def model_name(self, role: str) -> str:
        loaded = self.engine.loaded(role)
        return loaded.resolved.name if loaded else (self.engine.generator_spec if role == GENERATOR else self.engine.encoder_spec)

    # -------------------------------------------------------------- requests

    async def blocking(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a blocking assistant call in the thread pool, within the request timeout (504 after).
        A call that times out runs on in its thread: a model call cannot be interrupted."""
        try:
            return await asyncio.wait_for(run_in_threadpool(func, *args, **kwargs), self.timeout)
        except TimeoutError:
            raise _timeout_error(self.timeout) from None

    def sampling(self, body: ChatCompletionRequest, messages: list[dict[str, str]],
                 defaults: SamplingParams) -> tuple[SamplingParams, Any]:
        """The request's sampling settings (``defaults`` where it sets none: the ask task's) under this
        server's limits, and its prompt token ids (blocking: tokenises the prompt)."""
        requested = body.requested_max_tokens()
        param = "max_completion_tokens" if body.max_completion_tokens is not None else "max_tokens"
        if requested is not None and requested > self.max_tokens_limit:
            raise APIError(400, f"{param} is {requested}; this server allows at most {self.max_tokens_limit}",
                           code="max_tokens_too_large", param=param)
        prompt_ids = self.engine.prompt_ids(messages)
        prompt_tokens = prompt_ids.shape[1]
        if self.max_input_tokens is not None and prompt_tokens > self.max_input_tokens:
            raise InputTooLongError(
                f"the prompt is {prompt_tokens} tokens; this server accepts at most {self.max_input_tokens}"
            )
        room = self.engine.context_window - prompt_tokens
        if requested is None:  # as OpenAI does: up to the context window (within this server's limit)
            if room < 1:
                raise InputTooLongError(
                    f"the prompt is {prompt_tokens} tokens, which fills the model's context window "
                    f"of {self.engine.context_window} tokens"
                )
            requested = min(room, self.max_tokens_limit, defaults.max_new_tokens)
        return body.to_sampling_params(requested, defaults), prompt_ids

    def submit(self, body: ChatCompletionRequest, messages: list[dict[str, str]], defaults: SamplingParams):
        params, prompt_ids = self.sampling(body, messages, defaults)
        return self.batcher.submit(messages, params, prompt_ids, max_wait_s=self.timeout)

    def settle(self, handle) -> None:
        """A chat completion's consumer is done with it: record its metrics, first cancelling it if it has
        not finished (client gone, timeout, error); a cancelled one is recorded when the batcher lets go.
        Idempotent: a stream settles from its generator and again when its response closes."""
        if handle in self._settled:
            return
        self._settled.add(handle)
        if handle.result is not None:
            self._record(handle)
            return
        handle.cancel()
        task = asyncio.get_running_loop().create_task(self._record_when_settled(handle))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _record_when_settled(self, handle) -> None:
        deadline = time.monotonic() + max(self.timeout, 60)
        while handle.result is None and time.monotonic() < deadline:  # the batcher frees it at its next step
            await asyncio.sleep(0.02)
        self._record(handle)

    def _record(self, handle) -> None:
        m = self.metrics
        if handle.ttft_s is not None:
            m.ttft.observe(handle.ttft_s)
        result = handle.result
        if result is not None:
            m.prompt_tokens.inc(result.prompt_tokens)
            m.completion_tokens.inc(result.completion_tokens)
            m.completions.labels(result.finish_reason).inc()


async def _pieces(handle, timeout: float) -> AsyncIterator[str]:
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


def _timeout_error(seconds: float) -> APIError:
    return APIError(504, f"the request took longer than this server's limit of {seconds:g} s", code="timeout")


async def _cancel_on_disconnect(request: Request, handle) -> None:
    """Cancel ``handle`` when the client goes away (the body has been read: only a disconnect comes)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            handle.cancel()
            return


class _EventStream(StreamingResponse):
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


def _sse(data: dict | str) -> str:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"data: {payload}\n\n"


def _chunk(completion_id: str, created: int, model: str, delta: ChoiceDelta | None = None,
           finish_reason: str | None = None, usage: Usage | None = None) -> dict:
    choices = [] if delta is None else [ChatCompletionChunkChoice(delta=delta, finish_reason=finish_reason)]
    chunk = ChatCompletionChunk(id=completion_id, created=created, model=model, choices=choices, usage=usage)
    data = chunk.model_dump(mode="json")
    for choice in data["choices"]:  # OpenAI sends only the delta's fields that are set
        choice["delta"] = {k: v for k, v in choice["delta"].items() if v is not None}
    return data


def _usage(result) -> Usage:
    return Usage(prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
                 total_tokens=result.prompt_tokens + result.completion_tokens)


# ------------------------------------------------------------------------- app


def create_app(
    assistant: Assistant,
    *,
    settings: ServiceSettings | None = None,
    api_key: str | None = None,
    ui: bool = False,
    allowed_hosts: list[str] | tuple[str, ...] | None = None,
    **limits: Any,
) -> FastAPI:
    """The HTTP service over ``assistant``.

    Args:
        settings: the service's limits (``assistant.settings.ServiceSettings``); ``limits``: any of its
            fields given one by one (``max_body_bytes=...``) replace those of ``settings``.
        api_key: if set, every route but ``/healthz`` and the docs needs ``Authorization: Bearer <key>``.
        max_body_bytes: larger request bodies are refused (413).
        max_input_tokens: longest chat prompt accepted, in tokens (default: only the model's context window).
        max_tokens_limit: largest ``max_tokens`` a chat request may ask for (and the default cap).
        request_timeout_s: a request that takes longer is answered 504 (its generation is cancelled).
        ui: also serve the Gradio web UI at ``/`` (needs gradio; the API alone does not import it).
        max_upload_bytes: largest file the UI accepts (its uploads are not API bodies); the UI's other
            request bodies have the same limit.
        allowed_hosts: Host header names answered (others get 400); default the loopback names, which is
            what ``serve`` passes for a loopback address (see ``guards.allowed_hosts_for``). ``["*"]``: any.
        body_timeout_s: a request body still incomplete this long after its headers is answered 408.

    The models start loading in the background when the app starts; ``/healthz`` says when they are ready
    and requests that arrive before wait for them (within ``request_timeout_s``). To generate on another
    OpenAI-compatible server, give an ``Assistant(upstream=URL)``: the routes do not change.
    """
    settings = _settings(settings, limits)
    max_body_bytes, max_upload_bytes = settings.max_body_bytes, settings.max_upload_bytes
    max_tokens_limit, max_input_tokens = settings.max_tokens_limit, settings.max_input_tokens
    request_timeout_s, body_timeout_s = settings.request_timeout_s, settings.body_timeout_s
    from fastapi_offline import FastAPIOffline  # /docs and /redoc with their scripts served from here
    if assistant.pii.redact_logs:
        install_log_redaction()
    metrics = _Metrics()
    service = _Service(assistant, metrics, max_input_tokens=max_input_tokens,
                       max_tokens_limit=max_tokens_limit, request_timeout_s=request_timeout_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start_loading()
        try:
            yield
        finally:
            service.stop()

    app = FastAPIOffline(
        title="finassist",
        version=_version(),
        description="Offline-first financial text assistant: OpenAI-compatible chat, summarise and classify.",
        lifespan=lifespan,
        responses=_ERROR_RESPONSES,
        strict_content_type=True,  # JSON only as application/json: no "simple" cross-site posts
    )
    app.state.service = service
    _install_error_handlers(app)
    caller = key_id(api_key) if api_key else "anonymous"

    def who(user: str | None) -> str:
        """The audit log's name for a request's sender: the API key's id, and the ``user`` it gave."""
        return f"{caller} user={user}" if user else caller

    # Middleware, outermost last: metrics see every answer (401 and 413 included); the Host check
    # comes before anything else reads the request.
    app.add_middleware(_BodyLimit, max_bytes=max_body_bytes, timeout_s=body_timeout_s,
                       other_max_bytes=max(max_body_bytes, max_upload_bytes + _UPLOAD_OVERHEAD_BYTES))
    if api_key:
        app.add_middleware(_BearerAuth, api_key=api_key)
        if ui:  # the page's own routes: no body is read before a login, and logins are throttled
            app.add_middleware(RequireLoginFirst, open_paths=["/login", *API_PREFIXES])
            app.add_middleware(LoginThrottle, paths=["/login"])
    app.add_middleware(_Observe, metrics=metrics, route_paths=lambda: {getattr(r, "path", "") for r in app.routes})
    app.add_middleware(HostAllowList, allowed=LOOPBACK_HOSTS if allowed_hosts is None else allowed_hosts)

    # ------------------------------------------------------------------ chat

    @app.post("/v1/chat/completions", response_model=ChatCompletion, tags=["chat"],
              responses={200: {"content": {"text/event-stream": {}},
                               "description": "a ChatCompletion, or with stream=true ChatCompletionChunk events"}})
    async def chat_completions(body: ChatCompletionRequest, request: Request):
        """OpenAI Chat Completions. Sampling is greedy unless ``temperature`` > 0 (OpenAI's default is 1)."""
        await service.ready(GENERATOR)
        model = service.model_name(GENERATOR)
        if body.model is not None and body.model not in (*DEFAULT_MODEL_ALIASES, model):
            raise APIError(404, f"the model {body.model!r} does not exist here; this server chats with {model!r}",
                           code="model_not_found", param="model")
        # The ask task's turn, as for every front door: its system prompt unless the client sent one,
        # its sampling defaults where the request sets none, and the notice where due.
        turn = assistant.chat_turn([m.as_engine_message() for m in body.messages])
        messages = turn.messages
        question = next(m["content"] for m in reversed(messages) if m["role"] == "user")
        redactor = assistant.redactor()  # --redact-inputs: the model sees placeholders, the client its values
        if redactor is not None:
            messages = [{**m, "content": redactor.redact(m["content"])} for m in messages]
        handle = await run_in_threadpool(service.submit, body, messages, turn.params)

        def notice(text: str) -> str:
            return assistant.notice_for(turn, text)

        def record(text: str) -> None:
            assistant.record_answer("chat", question, text, user=who(body.user), model=model)

        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            events = _stream_events(service, handle, completion_id, created, model, include_usage, redactor, record,
                                    notice)
            return _EventStream(events, on_close=lambda: service.settle(handle))

        watcher = asyncio.create_task(_cancel_on_disconnect(request, handle))
        try:
            async for _ in _pieces(handle, service.timeout):
                pass
        except TimeoutError:
            handle.cancel()
            raise _timeout_error(service.timeout) from None
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
            usage=_usage(result),
        )

    # ---------------------------------------------------------------- models

    @app.get("/v1/models", response_model=ModelList, tags=["models"])
    async def list_models() -> ModelList:
        """The generator (chat, summarize) and the encoder (classify) this server runs."""
        rows = await service.blocking(assistant.models)
        return ModelList(data=[
            ModelCard(id=row["name"], role=row["role"], origin=row["origin"], loaded=row["loaded"]) for row in rows
        ])

    # ----------------------------------------------------------------- tasks

    @app.post("/v1/ask", response_model=AskResponse, tags=["tasks"])
    async def ask(body: AskRequest) -> AskResponse:
        """One advisory question, answered as ``finassist ask`` and the web chat answer it."""
        await service.ready(GENERATOR)
        requested = body.max_tokens
        if requested is not None and requested > service.max_tokens_limit:
            raise APIError(400, f"max_tokens is {requested}; this server allows at most {service.max_tokens_limit}",
                           code="max_tokens_too_large", param="max_tokens")
        answer = await service.blocking(assistant.ask, body.question, history=body.history_messages(),
                                        user=who(body.user), **body.sampling_overrides())
        return AskResponse(model=service.model_name(GENERATOR), **answer.to_dict())

    @app.post("/v1/summarize", response_model=SummarizeResponse, tags=["tasks"])
    async def summarize(body: SummarizeRequest) -> SummarizeResponse:
        """Summarise a text as bullets, a headline or a paragraph (long texts are chunked, never cut)."""
        await service.ready(GENERATOR)
        summary = await service.blocking(assistant.summarize, body.text, style=body.style, max_words=body.max_words,
                                         user=who(None))
        return SummarizeResponse(model=service.model_name(GENERATOR), **summary.to_dict())

    @app.post("/v1/classify", response_model=ClassifyResponse, tags=["tasks"])
    async def classify(body: ClassifyRequest) -> ClassifyResponse:
        """Classification (``sentiment``, ``contract-clause``, ``unfair-tos``, ...) of one text or a batch by
        the fine-tuned classifier serving the task (shipped, or ``--classifier``), or ``zero_shot`` with
        the encoder against the task's label descriptions."""
        fine_tuned = None if body.zero_shot else assistant.engine.classifier(body.task)
        if fine_tuned is None:
            await service.ready(ENCODER)
        results = await service.blocking(assistant.classify, body.inputs(), task=body.task, threshold=body.threshold,
                                         zero_shot=body.zero_shot)
        results = results if isinstance(results, list) else [results]
        return ClassifyResponse(
            model=fine_tuned.info.path.name if fine_tuned is not None else service.model_name(ENCODER),
            task=body.task,
            results=[ClassificationResult.model_validate(r.to_dict()) for r in results],
        )

    # ------------------------------------------------------------- operations

    @app.get("/healthz", response_model=Health, tags=["operations"], responses={503: {"model": Health}})
    async def healthz():
        """200 once the models are loaded; 503 while they load or when loading failed."""
        status, detail = service.health()
        return JSONResponse(Health(status=status, detail=detail).model_dump(), 200 if status == "ok" else 503)

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def prometheus_metrics() -> Response:
        """Prometheus text format."""
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    if ui:  # last: the page is mounted at "/" and must not shadow the routes above
        from .ui import mount_ui

        mount_ui(app, assistant, api_key=api_key, max_file_bytes=max_upload_bytes)
    return app


async def _stream_events(service: _Service, handle, completion_id: str, created: int, model: str,
                         include_usage: bool, redactor=None, record: Callable[[str], None] | None = None,
                         notice: Callable[[str], str] | None = None) -> AsyncIterator[str]:
    """The SSE body of a streamed completion: role, content deltas, finish reason, [usage], [DONE].
    An error after the first event is sent as an ``{"error": ...}`` event (the status is already 200).
    ``redactor``: placeholders in the answer are put back (split ones held until complete); ``record``
    gets the answer as sent, when the stream ends however it ends."""
    restorer = redactor.restoring() if redactor is not None else None
    sent = ""
    try:
        yield _sse(_chunk(completion_id, created, model, ChoiceDelta(role="assistant", content="")))
        async for piece in _pieces(handle, service.timeout):
            if restorer is not None:
                piece = restorer.feed(piece)
                if not piece:
                    continue
            sent += piece
            yield _sse(_chunk(completion_id, created, model, ChoiceDelta(content=piece)))
        if restorer is not None and (rest := restorer.flush()):
            sent += rest
            yield _sse(_chunk(completion_id, created, model, ChoiceDelta(content=rest)))
        if notice is not None and (due := notice(sent)):  # the not-investment-advice notice, last
            sent += due
            yield _sse(_chunk(completion_id, created, model, ChoiceDelta(content=due)))
        result = handle.result
        yield _sse(_chunk(completion_id, created, model, ChoiceDelta(), finish_reason=result.finish_reason))
        if include_usage:
            yield _sse(_chunk(completion_id, created, model, usage=_usage(result)))
        yield _sse("[DONE]")
    except TimeoutError:
        handle.cancel()
        yield _sse(_error_body(str(_timeout_error(service.timeout)), "timeout_error", "timeout"))
    except AssistantError as exc:
        error = _from_assistant_error(exc)
        yield _sse(_error_body(error.message, error.type, error.code))
    except Exception:
        log.exception("streamed chat completion failed")
        yield _sse(_error_body("internal server error (details are in the server log)", "server_error"))
    finally:  # the client left, an error, or the end: free the batch slot, record the metrics and the answer
        service.settle(handle)
        if record is not None and sent:
            try:
                record(sent)
            except Exception:  # pragma: no cover - record_answer logs its own failures
                log.exception("recording a streamed answer failed")


_SETTING_NAMES = frozenset(f.name for f in dataclasses.fields(ServiceSettings))


def _settings(settings: ServiceSettings | None, limits: dict[str, Any]) -> ServiceSettings:
    """``settings`` (default ``ServiceSettings()``) with the limits given one by one in their place."""
    unknown = set(limits) - _SETTING_NAMES
    if unknown:
        raise TypeError(f"unknown service setting(s): {', '.join(sorted(unknown))}")
    try:
        return dataclasses.replace(settings or ServiceSettings(), **limits)
    except InvalidParameterError as exc:
        raise ValueError(str(exc)) from exc


def _version() -> str:
    from .version import __version__

    return __version__


# ----------------------------------------------------------------------- serve


def serve(
    assistant: Assistant,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    log_level: str = "info",
    settings: ServiceSettings | None = None,
    **options: Any,
) -> None:
    """Run the service with uvicorn until interrupted. ``options``: those of ``create_app`` (its limits
    one by one, or ``settings``).

    Listens on loopback only unless ``host`` says otherwise; one process (the models live in it).
    Answers only the Host names of its bind address unless ``allowed_hosts`` says otherwise; clients
    get ``header_timeout_s`` to send their headers, and at most ``max_connections`` are open at once.
    """
    import uvicorn

    if host not in LOOPBACK_HOSTS and not options.get("api_key"):
        log.warning("serving on %s without an API key: anyone who can reach this port can use it", host)
    if options.get("allowed_hosts") is None:
        options["allowed_hosts"] = allowed_hosts_for(host)
        if options["allowed_hosts"] == ["*"]:
            log.warning("serving on %s: any Host name is answered; name the server's own with --allowed-hosts "
                        "to block DNS rebinding", host)
    limits = {k: options.pop(k) for k in list(options) if k in _SETTING_NAMES}
    settings = _settings(settings, limits)
    app = create_app(assistant, settings=settings, **options)
    shown = f"[{host}]" if ":" in host else host
    where = f"http://{shown}:{port}"
    print(f"finassist: API at {where}/v1 (docs {where}/docs)"
          + (f", web UI at {where}/" if options.get("ui") else ""), flush=True)
    config = uvicorn_config(app, host, port, header_timeout_s=settings.header_timeout_s,
                            max_connections=settings.max_connections,
                            log_level=log_level, timeout_graceful_shutdown=10)
    try:
        uvicorn.Server(config).run()
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it shut down on (as uvicorn.run does, it ends here)
        pass
