"""The app factory and ``serve``: the HTTP service, an OpenAI-compatible chat API plus the assistant's own tasks.

``create_app(assistant)`` builds a FastAPI app over one ``Assistant`` (one
``Engine``): ``finassist serve`` runs it with uvicorn, tests start it on a free
loopback port. Routes:

* ``POST /v1/chat/completions``: OpenAI Chat Completions, plain or streamed as
  Server-Sent Events, through the engine's dynamic batcher (concurrent requests
  share ``generate`` calls). A client that disconnects cancels its generation.
* ``GET /v1/models``: the generator and encoder being served.
* ``POST /v1/summarize``, ``POST /v1/classify``: ``Assistant.summarize`` and
  ``Assistant.classify`` (blocking calls, run in a thread pool).
* ``POST /v1/documents`` (a file as base64 in JSON), ``GET /v1/documents``, ``DELETE /v1/documents/{id}``:
  the document library that grounds ``/v1/ask`` and chat answers (``Assistant.documents``).
* ``GET /healthz``: 200 once the models are loaded (they load in the background
  at startup) and the web UI, where served, is built; 503 while loading or when loading failed.
* ``GET /metrics``: Prometheus metrics, in a registry of this app's own.
* ``GET /docs``, ``GET /redoc``: the OpenAPI documentation, its scripts served from this process
  (``fastapi-offline``'s copies), so it works offline.

Every error has an OpenAI-style body ``{"error": {"message", "type", "param",
"code"}}``; an ``AssistantError`` answers with its ``http_status``; nothing
ever answers with a traceback (unexpected errors are logged here and answered
with a generic 500).

Hostile clients (``assistant/guards.py`` and ``middleware.py``): a Host allow-list, JSON bodies
only with ``Content-Type: application/json``, every body (the web UI's included) under a size and a
time limit, the UI login throttled, metric labels from closed sets, chat admission refused (429 with
Retry-After) when the expected wait exceeds the request timeout.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from ..api import Assistant
from ..audit import key_id
from ..errors import InvalidParameterError
from ..settings import ServiceSettings
from ..guards import LOOPBACK_HOSTS, HostAllowList, LoginThrottle, RequireLoginFirst, allowed_hosts_for, uvicorn_config
from ..pii import install_log_redaction

from .errors import ERROR_RESPONSES, install_error_handlers
from .middleware import API_PREFIXES, BearerAuth, BodyLimit, Observe, UPLOAD_OVERHEAD_BYTES
from .metrics import Metrics
from .routes import chat, documents, operations, tasks
from .late_ui import WEB_UI, LateUI
from .service import Service

log = logging.getLogger(__name__)


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
        ui: also serve the Gradio web UI at ``/`` (needs gradio; the API alone does not import it). The
            page is built after the port listens and the models load (``late_ui.py``): until then ``/``
            says it is starting, and ``/healthz`` is 200 only once the page is there too.
        max_upload_bytes: largest file the UI accepts (its uploads are not API bodies); the UI's other
            request bodies have the same limit.
        allowed_hosts: Host header names answered (others get 400); default the loopback names, which is
            what ``serve`` passes for a loopback address (see ``guards.allowed_hosts_for``). ``["*"]``: any.
        body_timeout_s: a request body still incomplete this long after its headers is answered 408.

    The models start loading in the background when the app starts; ``/healthz`` says when they are ready
    and requests that arrive before wait for them (within ``request_timeout_s``). To generate on another
    OpenAI-compatible server, give an ``Assistant(upstream=URL)``: the routes do not change.
    """
    settings = service_settings(settings, limits)
    max_body_bytes, max_upload_bytes = settings.max_body_bytes, settings.max_upload_bytes
    max_tokens_limit, max_input_tokens = settings.max_tokens_limit, settings.max_input_tokens
    request_timeout_s, body_timeout_s = settings.request_timeout_s, settings.body_timeout_s
    from fastapi_offline import FastAPIOffline  # /docs and /redoc with their scripts served from here
    if assistant.pii.redact_logs:
        install_log_redaction()
    metrics = Metrics()
    service = Service(assistant, metrics, max_input_tokens=max_input_tokens, max_tokens_limit=max_tokens_limit,
                      request_timeout_s=request_timeout_s, caller=key_id(api_key) if api_key else "anonymous")

    late_ui = LateUI() if ui else None

    def make_page():
        from ..ui import ui_app  # Gradio is imported here, in the build's thread, after the port listens

        return ui_app(assistant, api_key=api_key, max_file_bytes=max_upload_bytes)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start_loading(parts=(WEB_UI,) if late_ui else ())
        if late_ui:
            building = asyncio.create_task(late_ui.build(service, make_page))
        try:
            yield
        finally:
            if late_ui:
                late_ui.stop()
                await asyncio.gather(building, return_exceptions=True)
            service.stop()

    app = FastAPIOffline(
        title="finassist",
        version=package_version(),
        description="Offline-first financial text assistant: OpenAI-compatible chat, summarise and classify.",
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
        strict_content_type=True,  # JSON only as application/json: no "simple" cross-site posts
    )
    app.state.service = service
    install_error_handlers(app)
    # Middleware, outermost last: metrics see every answer (401 and 413 included); the Host check
    # comes before anything else reads the request.
    # A document upload is a file in JSON (base64: 4 bytes for every 3), so its route takes the upload limit.
    upload_body_bytes = max(max_body_bytes, (max_upload_bytes + 2) // 3 * 4 + UPLOAD_OVERHEAD_BYTES)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes, timeout_s=body_timeout_s,
                       other_max_bytes=max(max_body_bytes, max_upload_bytes + UPLOAD_OVERHEAD_BYTES),
                       path_max_bytes={documents.UPLOAD_PATH: upload_body_bytes})
    if api_key:
        app.add_middleware(BearerAuth, api_key=api_key)
        if ui:  # the page's own routes: no body is read before a login, and logins are throttled
            app.add_middleware(RequireLoginFirst, open_paths=["/login", *API_PREFIXES])
            app.add_middleware(LoginThrottle, paths=["/login"])
    routers = (chat.router, tasks.router, documents.router, operations.router)
    # The paths metrics may name (the routers' routes are not listed in app.routes once included).
    app.add_middleware(Observe, metrics=metrics, route_paths=lambda: {
        path for r in [*app.routes, *(route for router in routers for route in router.routes)]
        if (path := getattr(r, "path", None))})
    app.add_middleware(HostAllowList, allowed=LOOPBACK_HOSTS if allowed_hosts is None else allowed_hosts)

    for router in routers:
        app.include_router(router)

    if late_ui:  # last: the page is mounted at "/" and must not shadow the routes above
        app.mount("/", late_ui)
    return app


SETTING_NAMES = frozenset(f.name for f in dataclasses.fields(ServiceSettings))


def service_settings(settings: ServiceSettings | None, limits: dict[str, Any]) -> ServiceSettings:
    """``settings`` (default ``ServiceSettings()``) with the limits given one by one in their place."""
    unknown = set(limits) - SETTING_NAMES
    if unknown:
        raise TypeError(f"unknown service setting(s): {', '.join(sorted(unknown))}")
    try:
        return dataclasses.replace(settings or ServiceSettings(), **limits)
    except InvalidParameterError as exc:
        raise ValueError(str(exc)) from exc


def package_version() -> str:
    from ..version import __version__

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
    limits = {k: options.pop(k) for k in list(options) if k in SETTING_NAMES}
    settings = service_settings(settings, limits)
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
