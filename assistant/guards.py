"""Protections of the HTTP service below the routes: which hosts it answers, how long a client may
take to send a request, how many connections it may hold, how fast the UI login may be guessed.

``server.create_app`` installs the ASGI middlewares (``HostAllowList``, ``LoginThrottle``);
``uvicorn_config`` builds the uvicorn settings ``serve`` runs with, including ``GuardedH11Protocol``,
which bounds the time to send request headers and the number of open connections (uvicorn itself
has neither: its keep-alive timeout only starts after a first response, and ``limit_concurrency``
answers 503 but keeps every connection open).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .settings import ServiceSettings

log = logging.getLogger(__name__)

#: Host names a loopback-only server answers to.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
#: The service's defaults (``ServiceSettings``: header and body timeouts, connection cap).
HEADER_TIMEOUT_S = ServiceSettings.header_timeout_s
BODY_TIMEOUT_S = ServiceSettings.body_timeout_s
MAX_CONNECTIONS = ServiceSettings.max_connections
#: Idle seconds before a kept-alive connection is closed.
KEEP_ALIVE_S = 5


def error_body(message: str, type: str, code: str | None = None, param: str | None = None) -> dict:
    """The OpenAI-style error body every answer of this service uses."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def encode_json(content: Any) -> bytes:
    """JSON as UTF-8; a lone surrogate that got this far is written as its escape instead of failing."""
    text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.encode("utf-8", errors="backslashreplace")


async def send_error(send: Send, status: int, message: str, *, type: str = "invalid_request_error",
                     code: str | None = None, headers: dict[str, str] | None = None) -> None:
    body = encode_json(error_body(message, type, code))
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


# ------------------------------------------------------------------ host allow-list


def allowed_hosts_for(bind: str) -> list[str]:
    """The Host names a server bound to ``bind`` answers by default: the loopback names on loopback,
    the address itself (and loopback) on one address, any on a wildcard address (0.0.0.0, ::), where
    the names clients use cannot be known: ``--allowed-hosts`` should then say them."""
    if bind in ("0.0.0.0", "::", ""):
        return ["*"]
    if bind in LOOPBACK_HOSTS:
        return list(LOOPBACK_HOSTS)
    return [bind, *LOOPBACK_HOSTS]


def _host_name(header: bytes) -> str:
    host = header.decode("latin-1").strip().lower()
    if host.startswith("["):  # [::1]:8000
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


class HostAllowList:
    """Answers 400 to a request whose Host header is not an allowed name. Stops DNS rebinding: a web
    page whose own name has been pointed at this machine's address still sends its own name as Host.
    ``"*"`` allows any; ``"*.example.com"`` allows that domain's subdomains."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str]) -> None:
        self.app = app
        names = [a.strip().lower() for a in allowed if a.strip()]
        self.any = "*" in names
        self.exact = {n.strip("[]") for n in names if not n.startswith("*.")}
        self.suffixes = tuple(n[1:] for n in names if n.startswith("*."))

    def allows(self, host: str) -> bool:
        if self.any or host in self.exact or (self.suffixes and host.endswith(self.suffixes)):
            return True
        try:  # "127.0.0.01" or "::0:1" spelled differently
            return str(ipaddress.ip_address(host)) in self.exact
        except ValueError:
            return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.any:
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"host", b"")
        if not self.allows(_host_name(header)):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await send_error(send, 400, "this server does not answer to that Host name (see --allowed-hosts)",
                             code="host_not_allowed")
            return
        await self.app(scope, receive, send)


# ------------------------------------------------------------------ login throttle


class LoginThrottle:
    """Slows password guessing on the web UI's login form: after ``free_failures`` failed logins from
    one client address, that address must wait before the next try (429 with Retry-After), the wait
    doubling with each further failure up to ``max_delay_s``. A success clears the address's record.
    The record keeps the ``max_clients`` most recent addresses (bounded memory)."""

    def __init__(self, app: ASGIApp, paths: Iterable[str], free_failures: int = 5, base_delay_s: float = 1.0,
                 max_delay_s: float = 300.0, max_clients: int = 10_000) -> None:
        self.app = app
        self.paths = {p.rstrip("/") or "/" for p in paths}
        self.free = free_failures
        self.base = base_delay_s
        self.max_delay = max_delay_s
        self.max_clients = max_clients
        #: client address -> (failures, not before this monotonic time)
        self.record: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def _delay(self, failures: int) -> float:
        over = failures - self.free
        return 0.0 if over < 0 else min(self.max_delay, self.base * 2**min(over, 30))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or (scope["path"].rstrip("/") or "/") not in self.paths:
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("?", 0))[0]
        failures, not_before = self.record.get(client, (0, 0.0))
        now = time.monotonic()
        if now < not_before:
            wait = max(1, int(not_before - now + 0.999))
            await send_error(send, 429, f"too many failed logins from this address: try again in {wait} s",
                             type="rate_limit_error", code="login_throttled", headers={"Retry-After": str(wait)})
            return
        status = 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            if status < 400:
                self.record.pop(client, None)
            elif status in (400, 401, 403):  # wrong credentials (Gradio answers 400)
                failures += 1
                self.record[client] = (failures, time.monotonic() + self._delay(failures))
                self.record.move_to_end(client)
                while len(self.record) > self.max_clients:
                    self.record.popitem(last=False)
                if failures >= self.free:
                    log.warning("%d failed web UI logins from %s", failures, client)


class RequireLoginFirst:
    """With a login in front of the web UI, a POST that carries no login cookie at all is answered 401
    before its body is read (the UI's routes would otherwise take and parse the body first). Whether
    a cookie that is there is valid is still the UI's own check."""

    def __init__(self, app: ASGIApp, open_paths: Iterable[str], cookie_prefix: bytes = b"access-token") -> None:
        self.app = app
        self.open = tuple(p.rstrip("/") for p in open_paths)
        self.prefix = cookie_prefix

    def _has_cookie(self, scope: Scope) -> bool:
        cookies = b"; ".join(v for k, v in scope["headers"] if k == b"cookie")
        return any(c.strip().startswith(self.prefix) for c in cookies.split(b";"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS")
                or scope["path"].rstrip("/").startswith(self.open) or self._has_cookie(scope)):
            await self.app(scope, receive, send)
            return
        await send_error(send, 401, "log in to the web UI first", type="authentication_error", code="login_required")


# ------------------------------------------------------------ connections (uvicorn)


def guarded_protocol(header_timeout_s: float = HEADER_TIMEOUT_S, max_connections: int | None = MAX_CONNECTIONS):
    """uvicorn's h11 protocol with a time limit on sending headers and a cap on open connections."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        _header_timer = None

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if max_connections is not None and len(self.connections) > max_connections:
                self.logger.warning("connection refused: %d connections are open (limit %d)",
                                    len(self.connections) - 1, max_connections)
                transport.close()
                return
            self._arm_header_timer()

        def _arm_header_timer(self) -> None:
            self._disarm_header_timer()
            self._header_timer = self.loop.call_later(header_timeout_s, self._headers_too_slow)

        def _disarm_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _waiting_for_headers(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if not self._waiting_for_headers():  # a request's headers are complete: the body has its own limit
                self._disarm_header_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self._waiting_for_headers():
                self._arm_header_timer()  # the next request's headers have the same time

        def connection_lost(self, exc) -> None:
            self._disarm_header_timer()
            super().connection_lost(exc)

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if self.transport.is_closing() or not self._waiting_for_headers():
                return
            import h11

            if self.conn.their_state is not h11.IDLE:  # still sending the body of an answered request
                self.transport.close()
                return
            body = encode_json(error_body(f"the request headers did not arrive within {header_timeout_s:g} s",
                                          "invalid_request_error", "request_timeout"))
            head = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
                    b"content-length: " + str(len(body)).encode() + b"\r\n\r\n")
            try:
                self.transport.write(head + body)
            finally:
                self.transport.close()

    return GuardedH11Protocol


def uvicorn_config(app, host: str = "127.0.0.1", port: int = 8000, *, header_timeout_s: float = HEADER_TIMEOUT_S,
                   max_connections: int | None = MAX_CONNECTIONS, keep_alive_s: int = KEEP_ALIVE_S,
                   **options: Any):
    """The uvicorn settings of ``finassist serve`` (tests use it too): the guarded protocol, a short
    keep-alive."""
    import uvicorn

    return uvicorn.Config(
        app, host=host, port=port, http=guarded_protocol(header_timeout_s, max_connections),
        timeout_keep_alive=keep_alive_s, **options,
    )
