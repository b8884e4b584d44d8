"""The web UI, mounted once it is built: the API listens (and answers) while the page is still being
built, instead of after.

Importing Gradio and building the page takes about 3 s on a 2-core CPU, more than the rest of a start
(``finassist bench coldstart``). ``LateUI`` stands at ``/`` from the first moment: until the page is
built it answers a short page that reloads itself (a browser) or a 503 with ``Retry-After`` (anything
else); afterwards it hands every request to the page. The page is built after the models have loaded,
so that it does not slow the first answers down; ``/healthz`` says 200 once it is there too.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack

from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import APIError, error_response

log = logging.getLogger(__name__)

#: The part ``/healthz`` waits for besides the models.
WEB_UI = "web UI"
#: Seconds a client is asked to wait before trying again while the page is built.
RETRY_AFTER_S = 2

_LOADING_PAGE = f"""<!doctype html><html><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{RETRY_AFTER_S}"><title>finassist: starting</title></head>
<body style="font-family: system-ui, sans-serif; margin: 3em">
<p>The assistant is starting: this page reloads itself in a moment.</p>
<p>The HTTP API at <code>/v1</code> already answers.</p></body></html>"""


class LateUI:
    """An ASGI app that serves the web UI once ``build`` has produced it (see the module doc)."""

    def __init__(self) -> None:
        self.page: ASGIApp | None = None
        self.error: str | None = None
        self._stop = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.page is not None:
            await self.page(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1013})  # "try again later"
            return
        if self.error is not None:
            error = APIError(503, f"the web UI could not be built: {self.error}", code="ui_unavailable")
        elif scope["method"] in ("GET", "HEAD") and b"text/html" in dict(scope["headers"]).get(b"accept", b""):
            response = HTMLResponse(_LOADING_PAGE, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})
            await response(scope, receive, send)
            return
        else:
            error = APIError(503, "the web UI is starting", code="not_ready", headers={"Retry-After": str(RETRY_AFTER_S)})
        await error_response(error)(scope, receive, send)

    async def build(self, service, make_page) -> None:
        """Once the models have settled, build the page in a worker thread (``make_page()`` returns the
        page and its lifespan: ``ui.ui_app``), start it, serve it; stop it when ``stop`` is called.
        Runs as a task for the server's life; ``service`` hears how it went (``/healthz``)."""
        async with AsyncExitStack() as stack:
            try:
                await service.models_settled()
                page, lifespan = await run_in_threadpool(make_page)
                await stack.enter_async_context(lifespan)
            except Exception as exc:  # noqa: BLE001 - reported by /healthz and at "/", never a crash
                log.exception("building the web UI failed")
                self.error = str(exc) or type(exc).__name__
                service.part_failed(WEB_UI, exc)
                return
            self.page = page
            service.part_ready(WEB_UI)
            await self._stop.wait()  # the page's lifespan ends in the task that began it

    def stop(self) -> None:
        self._stop.set()
