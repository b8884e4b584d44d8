"""The web UI mounted once it is built (``assistant/server/late_ui.py``): what ``/`` answers before,
that the page is built only after the models have settled, that ``/healthz`` waits for it, and a page
that cannot be built reported instead of crashing the server."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from assistant.api import Assistant
from assistant.server.late_ui import WEB_UI, LateUI
from assistant.server.metrics import Metrics
from assistant.server.service import Service


def _service(engine) -> Service:
    return Service(Assistant(engine=engine, documents=False, audit=False), Metrics(), max_input_tokens=None,
                   max_tokens_limit=64, request_timeout_s=30)


def _page():
    """A real ASGI page with a lifespan that records it ran (the part Gradio's queue starts in)."""
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app):
        events.append("started")
        yield
        events.append("stopped")

    app = Starlette(routes=[Route("/", lambda request: PlainTextResponse("the page"))])
    return app, lifespan(app), events


async def _get(app, path="/", **headers) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        return await client.get(path, headers=headers)


def test_before_the_page_is_built_browsers_get_a_page_that_reloads_and_clients_a_503():
    late = LateUI()
    browser = asyncio.run(_get(late, accept="text/html,application/xhtml+xml"))
    assert browser.status_code == 503 and browser.headers["retry-after"] == "2"
    assert 'http-equiv="refresh"' in browser.text and "/v1" in browser.text
    other = asyncio.run(_get(late))
    assert other.status_code == 503 and other.json()["error"]["code"] == "not_ready"


def test_the_page_is_built_after_the_models_then_served_and_healthz_waits_for_it(tiny_engine):
    page, lifespan, events = _page()
    built_after: list[str] = []

    async def scenario():
        service = _service(tiny_engine)
        service.start_loading(parts=(WEB_UI,))
        late = LateUI()

        def make_page():
            built_after.append(service.health()[1])  # what was still loading when the build began
            return page, lifespan

        building = asyncio.create_task(late.build(service, make_page))
        assert service.health()[0] == "loading"
        while late.page is None:
            await asyncio.sleep(0.02)
        served = await _get(late)
        health = service.health()
        late.stop()
        await building
        service.stop()
        return served, health

    served, health = asyncio.run(scenario())
    assert built_after == ["loading the web UI"]  # both models had loaded before the page was built
    assert served.status_code == 200 and served.text == "the page"
    assert health == ("ok", None)
    assert events == ["started", "stopped"]  # its lifespan ran, and ended when the server stopped


def test_a_page_that_cannot_be_built_is_reported_not_raised(tiny_engine):
    async def scenario():
        service = _service(tiny_engine)
        service.start_loading(parts=(WEB_UI,))
        late = LateUI()

        def broken():
            raise RuntimeError("gradio is missing a theme")

        await late.build(service, broken)
        answer = await _get(late, accept="text/html")
        health = service.health()
        service.stop()
        return answer, health

    answer, health = asyncio.run(scenario())
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "ui_unavailable"
    assert "gradio is missing a theme" in answer.json()["error"]["message"]
    assert health == ("error", "web UI: gradio is missing a theme")
