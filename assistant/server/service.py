"""The one object the routes call: model readiness, blocking calls within the request timeout, chat
admission under this server's limits, and the metrics of every completion."""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool

from fastapi import Request

from ..api import Assistant
from ..types import SamplingParams
from ..errors import AssistantError, InputTooLongError
from ..models import ENCODER, GENERATOR
from ..schemas import ChatCompletionRequest
from .errors import APIError, timeout_error
from .metrics import Metrics
from .middleware import RECEIVED_AT


log = logging.getLogger(__name__)


# ----------------------------------------------------------------------- state


class Service:
    """The one handler every route calls (``request.app.state.service``): what the routes share: the assistant, its batcher, the limits, loading state and metrics."""

    def __init__(self, assistant: Assistant, metrics: Metrics, *, max_input_tokens: int | None,
                 max_tokens_limit: int, request_timeout_s: float, caller: str = "anonymous") -> None:
        self.assistant = assistant
        #: The audit log's name for this server's clients: the API key's id, or "anonymous".
        self.caller = caller
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

    def who(self, user: str | None) -> str:
        """The audit log's name for a request's sender: the API key's id, and the ``user`` it gave."""
        return f"{self.caller} user={user}" if user else self.caller

    # ---------------------------------------------------------------- loading

    def start_loading(self, parts: tuple[str, ...] = ()) -> None:
        """Load the generator (and start the batcher), then the encoder, in the background. ``parts``:
        more that ``/healthz`` waits for, each settled by ``part_ready`` / ``part_failed`` (the web UI)."""
        loop = asyncio.get_running_loop()
        self._loaded = {GENERATOR: loop.create_future(), ENCODER: loop.create_future()}
        self._loaded.update({part: loop.create_future() for part in parts})
        self._loader = asyncio.create_task(self._load_all())

    async def models_settled(self) -> None:
        """Wait until the models have loaded or failed to."""
        await asyncio.wait([self._loaded[GENERATOR], self._loaded[ENCODER]])

    def part_ready(self, part: str) -> None:
        self._loaded[part].set_result(None)

    def part_failed(self, part: str, exc: BaseException) -> None:
        self._loaded[part].set_exception(exc)
        self._loaded[part].exception()  # retrieved: reported by /healthz

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
        models = [self._loaded[GENERATOR], self._loaded[ENCODER]]
        self.metrics.models_loaded.set(1 if all(f.exception() is None for f in models) else 0)

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
            raise timeout_error(self.timeout) from None

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

    def remaining_s(self, request: Request) -> float:
        """Seconds left of the request timeout, which counts from the request's arrival (``Observe``
        stamps it before the body is read: under load, reading and parsing take time of their own)."""
        received = getattr(request.state, RECEIVED_AT, None)
        return self.timeout if received is None else max(0.0, self.timeout - (time.monotonic() - received))

    def submit(self, body: ChatCompletionRequest, messages: list[dict[str, str]], defaults: SamplingParams,
               deadline_s: float | None = None):
        """Admit a chat completion, to be finished within ``deadline_s`` (default: the request timeout)."""
        params, prompt_ids = self.sampling(body, messages, defaults)
        return self.batcher.submit(messages, params, prompt_ids, deadline_s=self.timeout if deadline_s is None else deadline_s)

    def settle(self, handle) -> None:
        """A chat completion's consumer is done with it: record its metrics, first cancelling it if it has
        not finished (client gone, timeout, error); a cancelled one is recorded when the batcher lets go.
        Idempotent: a stream settles from its generator and again when its response closes."""
        if handle in self._settled:
            return
        self._settled.add(handle)
        if handle.result is not None or getattr(handle, "done", False):  # finished, or failed (no result to wait for)
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


def service_of(request: Request) -> Service:
    """The app's ``Service``, for the routes (a FastAPI dependency)."""
    return request.app.state.service
