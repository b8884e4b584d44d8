"""The service's own middlewares: the body limit (size and time, JSON content type), the API key, and
the observer that feeds the request metrics. (Host names, slow clients and logins: ``assistant/guards.py``.)"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..guards import BODY_TIMEOUT_S

from .errors import APIError, error_response
from .metrics import METRIC_METHODS, Metrics


#: Paths under these prefixes are the API: they need the API key (when one is set) and their
#: bodies are size-checked here. Health checks, the documentation and the web UI (which has
#: its own login and upload limit) are outside.
API_PREFIXES = ("/v1/", "/metrics")
#: The key under ``request.state`` of the time (``time.monotonic()``) a request arrived (``Observe``).
RECEIVED_AT = "received_at"
#: Room for the multipart framing around an uploaded file.
UPLOAD_OVERHEAD_BYTES = 64_000
#: How much of a refused body is read and thrown away before the 413 goes out. A client still
#: sending when the server closes gets "connection reset" instead of our JSON error (the reason
#: nginx's lingering close exists); past this much we stop reading and close regardless, so an
#: over-limit body costs at most this many bytes of reading.
DRAIN_MAX_BYTES = 1 << 20

# ------------------------------------------------------------------ middleware


async def send_error(send: Send, error: APIError) -> None:
    response = error_response(error)
    await response({"type": "http"}, receive_nothing, send)


async def receive_nothing() -> Message:  # pragma: no cover - JSONResponse never reads
    return {"type": "http.disconnect"}


def is_api_path(scope: Scope) -> bool:
    return scope["path"].startswith(API_PREFIXES)


def is_json_body(scope: Scope) -> bool:
    kind = dict(scope["headers"]).get(b"content-type", b"").split(b";", 1)[0].strip().lower()
    return kind == b"application/json" or (kind.startswith(b"application/") and kind.endswith(b"+json"))


def _bodiless_delete(scope: Scope) -> bool:
    """A DELETE that announces no body (``DELETE /v1/documents/{id}``): nothing to limit or to type."""
    headers = dict(scope["headers"])
    return (scope["method"] == "DELETE" and b"transfer-encoding" not in headers
            and headers.get(b"content-length", b"0") == b"0")


class BodyLimit:
    """Every request body under a size limit and a time limit, before anything parses it.

    API paths: ``Content-Type: application/json`` only (415 otherwise, so that a web page cannot post
    to the API as a "simple" request without a CORS preflight); over ``max_bytes`` 413 (by
    Content-Length, and by what actually arrives); not UTF-8 400; read whole, then replayed.
    Other paths (the web UI): over ``other_max_bytes`` 413, streamed through as it arrives.
    Either way, a body still incomplete ``timeout_s`` after the headers is answered 408."""

    def __init__(self, app: ASGIApp, max_bytes: int, other_max_bytes: int | None = None,
                 timeout_s: float = BODY_TIMEOUT_S, path_max_bytes: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.other_max_bytes = other_max_bytes or max_bytes
        self.timeout_s = timeout_s
        #: API paths whose bodies carry files (document uploads) and have a limit of their own.
        self.path_max_bytes = path_max_bytes or {}

    # Both may answer before the body has been read to its end: the connection cannot carry another request.
    def _too_big(self, limit: int) -> APIError:
        return APIError(413, f"the request body is over the limit of {limit:,} bytes", code="body_too_large",
                        headers={"Connection": "close"})

    async def _refuse_too_big(self, receive: Receive, send: Send, limit: int, deadline: float,
                              unread: int | None = None) -> None:
        """413, after reading what is left of a body of modest size (``unread`` bytes announced, or
        up to ``DRAIN_MAX_BYTES``) within the body's time, so the client is listening for the answer."""
        if unread is None or unread <= DRAIN_MAX_BYTES:
            drained = 0
            while drained <= DRAIN_MAX_BYTES:
                message = await self._receive_until(receive, deadline)
                if message is None or message["type"] != "http.request":
                    break
                drained += len(message.get("body", b""))
                if not message.get("more_body", False):
                    break
        await send_error(send, self._too_big(limit))

    def _too_slow(self) -> APIError:
        return APIError(408, f"the request body did not arrive within {self.timeout_s:g} s", code="request_timeout",
                        headers={"Connection": "close"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS") or _bodiless_delete(scope):
            await self.app(scope, receive, send)
            return
        api = is_api_path(scope)
        limit = self.path_max_bytes.get(scope["path"], self.max_bytes) if api else self.other_max_bytes
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            if not length.isdigit():
                await send_error(send, APIError(400, "invalid Content-Length header", code="invalid_body"))
                return
            if int(length) > limit:
                await self._refuse_too_big(receive, send, limit, time.monotonic() + self.timeout_s, int(length))
                return
        if api:
            await self._api(scope, receive, send, limit)
        else:
            await self._streamed(scope, receive, send, limit)

    async def _receive_until(self, receive: Receive, deadline: float) -> Message | None:
        """The next message, or None once the body's time is up."""
        try:
            return await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            return None

    async def _api(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        if not is_json_body(scope):
            error = APIError(415, "send the request body as JSON with Content-Type: application/json",
                             code="unsupported_media_type")
            await send_error(send, error)
            return
        deadline = time.monotonic() + self.timeout_s
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self._receive_until(receive, deadline)
            if message is None:
                await send_error(send, self._too_slow())
                return
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._refuse_too_big(receive, send, limit, deadline)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            error = APIError(400, f"the request body is not UTF-8 text (byte {exc.start} cannot be decoded)", code="not_utf8")
            await send_error(send, error)
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

        # Gradio refuses an upload over its own limit with a text/plain 413: its words, in our JSON error.
        plain_413: list[bytes] | None = None

        async def guarded_send(message: Message) -> None:
            nonlocal started, plain_413
            if refused is not None and not started:
                return  # our answer replaces the app's
            if message["type"] == "http.response.start":
                kind = dict(message.get("headers", [])).get(b"content-type", b"")
                if message["status"] == 413 and b"json" not in kind:
                    plain_413 = []
                    return
                started = True
            elif plain_413 is not None:
                plain_413.append(message.get("body", b""))
                return
            await send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except Exception:
            if refused is None:
                raise
        if plain_413 is not None and refused is None:
            said = b"".join(plain_413).decode("utf-8", "replace").strip()[:300]
            await send_error(send, APIError(413, said or f"the upload is over the limit of {limit:,} bytes",
                                            code="body_too_large", headers={"Connection": "close"}))
            return
        if refused is not None and not started:
            if refused.status == 413 and not body_done:
                await self._refuse_too_big(receive, send, limit, deadline)
            else:
                await send_error(send, refused)


class BearerAuth:
    """``Authorization: Bearer <key>`` on the API paths (401 otherwise)."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.key = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_api_path(scope):
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self.key):
            message = "missing API key: send Authorization: Bearer <key>" if not header else "invalid API key"
            error = APIError(401, message, code="invalid_api_key", type="invalid_request_error",
                             headers={"WWW-Authenticate": "Bearer"})
            await send_error(send, error)
            return
        await self.app(scope, receive, send)


class Observe:
    """Counts every request by route and status code and times it (streams: until the last byte)."""

    def __init__(self, app: ASGIApp, metrics: Metrics, route_paths: Callable[[], set[str]]) -> None:
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
        # When the request arrived, before its body was read: the request timeout counts from here.
        scope.setdefault("state", {})[RECEIVED_AT] = time.monotonic()
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
            method = scope["method"] if scope["method"] in METRIC_METHODS else "other"
            self.metrics.requests.labels(label, method, str(status)).inc()
            self.metrics.latency.labels(label).observe(time.perf_counter() - started)
