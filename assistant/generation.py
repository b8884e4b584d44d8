"""The contract between the engine and a generation backend, and the handle of one request.

A backend (the dynamic batcher in ``batching``, transformers' continuous batching in
``continuous``, an upstream OpenAI-compatible server in ``upstream``) is built from a
``ChatModel`` (``assistant/chat.py``) and a ``BatchSettings``; it admits requests (or refuses
them with ``QueueFullError``), and streams each one's text into its ``GenerationRequest``.
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from .errors import QueueFullError, ServiceUnavailableError
from .types import Generation, Message, SamplingParams

if TYPE_CHECKING:
    import numpy as np

    from .chat import ChatModel
    from .settings import BatchSettings

log = logging.getLogger(__name__)


@runtime_checkable
class GenerationBackend(Protocol):
    """What the engine needs of a backend."""

    #: Called with the size of each batch as it starts (metrics).
    batch_listeners: list[Callable[[int], None]]

    def submit(self, messages: Sequence[Message], params: SamplingParams, prompt_ids: np.ndarray | None = None,
               deadline_s: float | None = None) -> GenerationRequest:
        """Admit one chat completion (or raise ``QueueFullError`` / ``InputTooLongError`` now).
        ``prompt_ids``: the prompt already encoded (saves tokenising twice); ``deadline_s``: refuse a
        request not expected to be finished (waited for its turn and decoded) within this many seconds."""
        ...

    def queue_depth(self) -> int:
        """Requests admitted but not yet running."""
        ...

    def active(self) -> int:
        """Requests running now."""
        ...

    def close(self) -> None:
        """Stop: requests still waiting or running fail with ``ServiceUnavailableError``."""
        ...


_END = object()
_ids = itertools.count(1)


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to the first stop string, and whether there was one."""
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def partial_stop_suffix(text: str, stops: Sequence[str]) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of a stop string."""
    best = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:n]):
                best = n
                break
    return best


class GenerationRequest:
    """Handle of one submitted chat completion: iterate (sync or async) for its text pieces."""

    def __init__(self, prompt_ids: np.ndarray, params: SamplingParams, stops: tuple[str, ...]) -> None:
        self.id = f"req-{next(_ids)}"
        self.prompt_ids = prompt_ids
        self.prompt_tokens = int(prompt_ids.shape[-1])
        self.params = params
        self.stops = stops
        self.result: Generation | None = None
        self.ttft_s: float | None = None
        self.submitted = time.perf_counter()
        #: When (``time.perf_counter()``) it should be finished, if its caller said (``deadline_s``): a
        #: backend refuses it rather than start it too late to finish by then.
        self.deadline: float | None = None
        self._pieces: queue.Queue = queue.Queue()
        # Set by __aiter__: pieces then go straight to the consumer's event loop, so a waiting
        # async consumer holds no thread (a thread per waiting stream would starve the pool).
        self._async: tuple[asyncio.AbstractEventLoop, asyncio.Queue] | None = None
        self._handoff = threading.Lock()
        self._cancelled = threading.Event()
        #: Set by the backend while the request waits: takes it out of the queue when it is cancelled.
        self.on_cancel: Callable[[GenerationRequest], None] | None = None
        # Filled by the batcher thread while the request runs:
        self.new_ids: list[int] = []
        self.done = False
        self._emitted = ""
        self._held = ""
        self._stop_hit = False

    # -------------------------------------------------------------- consumer side

    def cancel(self) -> None:
        """The client went away: leave the queue now, or free this request's row at the next decoding step."""
        if self._cancelled.is_set():
            return
        self._cancelled.set()
        withdraw = self.on_cancel
        if withdraw is not None:
            withdraw(self)

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    @staticmethod
    def _piece(item: object) -> str | None:
        """A text piece, None at the end; a failure is raised."""
        if isinstance(item, BaseException):
            raise item
        return None if item is _END else item  # type: ignore[return-value]

    def wait(self) -> Generation:
        """Run to the end without reading the pieces; the result."""
        for _ in self:
            pass
        return self.result

    def __iter__(self) -> Iterator[str]:
        try:
            while (piece := self._piece(self._pieces.get())) is not None:
                yield piece
        finally:
            if not self.done:  # the consumer left early: free the row
                self.cancel()

    async def __aiter__(self) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        items: asyncio.Queue = asyncio.Queue()
        with self._handoff:
            while not self._pieces.empty():  # what arrived before we started listening
                items.put_nowait(self._pieces.get_nowait())
            self._async = (loop, items)
        try:
            while (piece := self._piece(await items.get())) is not None:
                yield piece
        finally:
            if not self.done:  # the consumer left early (client gone): free the row
                self.cancel()

    # -------------------------------------------------------------- backend side
    # A generation backend calls these from its own thread: feed (a local model's tokens) or emit
    # (an upstream server's text), then finish or fail exactly once.

    def _put(self, item: object) -> None:
        with self._handoff:
            if self._async is None:
                self._pieces.put(item)
                return
            loop, items = self._async
        try:
            loop.call_soon_threadsafe(items.put_nowait, item)
        except RuntimeError:  # the consumer's event loop is gone: nobody is listening
            self.cancel()

    def emit(self, text: str) -> None:
        """Send text on to the consumer (an upstream server's pieces come as text, not tokens)."""
        if text:
            if self.ttft_s is None:
                self.ttft_s = time.perf_counter() - self.submitted
            self._emitted += text
            self._put(text)

    def feed(self, token: int, tokenizer) -> None:
        """Take one new token; emit the text that is now certain (not part of a possible stop string)."""
        self.new_ids.append(token)
        text = tokenizer.decode(self.new_ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # an incomplete multi-byte character: wait for the next token
            return
        fresh = text[len(self._emitted) + len(self._held) :]
        self._held += fresh
        cut, hit = cut_at_stop(self._held, self.stops)
        if hit:
            self.emit(cut)
            self._held = ""
            self._stop_hit = True
            self.done = True
            return
        safe = len(self._held) - partial_stop_suffix(self._held, self.stops)
        if safe > 0:
            self.emit(self._held[:safe])
            self._held = self._held[safe:]

    def take(self, token: int, tokenizer, eos_ids: set[int]) -> str | None:
        """Take one generated token (a local backend's decoding step): the finish reason it brings
        ("stop": the end-of-turn token or a stop string, "length": ``max_new_tokens`` reached), or None
        while the request goes on. The caller ends the request with that reason, in its own way."""
        if token in eos_ids:
            self.new_ids.append(token)
            return "stop"
        self.feed(token, tokenizer)
        if self.done:  # a stop string matched
            return "stop"
        if len(self.new_ids) >= self.params.max_new_tokens:
            return "length"
        return None

    def finish(self, reason: str, prompt_tokens: int | None = None, completion_tokens: int | None = None) -> None:
        """End the request; an upstream server passes its own token counts."""
        if not self._stop_hit:
            self.emit(self._held)
        self._held = ""
        self.done = True
        self.result = Generation(
            text=self._emitted.strip(),
            prompt_tokens=self.prompt_tokens if prompt_tokens is None else int(prompt_tokens),
            completion_tokens=len(self.new_ids) if completion_tokens is None else int(completion_tokens),
            finish_reason="stop" if self._stop_hit else reason,
        )
        self._put(_END)

    def fail(self, exc: BaseException) -> None:
        """End the request with an error, raised to its consumer."""
        self.done = True
        self._put(exc)
        self._put(_END)


def notify_listeners(listeners: Sequence[Callable[[int], None]], size: int) -> None:
    """Tell a backend's ``batch_listeners`` how many requests decode together now."""
    for listener in listeners:
        try:
            listener(size)
        except Exception:  # a metrics hook must never take the worker down
            log.exception("batch listener failed")


class QueuedBackend:
    """What the local backends share: a bounded queue of admitted requests that one worker thread
    (``_loop``, the subclass's) decodes. Subclasses say how long a new request would wait
    (``expected_wait_s``), which requests run (``active``), and keep ``_estimate_s`` (the recent
    time of one batch) for Retry-After."""

    #: What decodes (``finassist models``, the benchmarks).
    name = "?"
    #: The worker thread's name.
    thread_name = "finassist-backend"

    def __init__(self, chat: ChatModel, settings: BatchSettings) -> None:
        self.chat = chat
        self.max_batch_size = settings.max_batch_size
        self.max_queue = settings.max_queue
        self.max_wait_s = settings.max_wait_ms / 1000
        self.batch_listeners: list[Callable[[int], None]] = []
        self._waiting: deque[GenerationRequest] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._estimate_s = 1.0  # running estimate of one batch's time, for Retry-After
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
        self._thread.start()
        # Stop the worker before the interpreter tears the runtime down under it.
        atexit.register(self.close)

    def submit(self, messages: Sequence[Message], params: SamplingParams, prompt_ids: np.ndarray | None = None,
               deadline_s: float | None = None) -> GenerationRequest:
        """Queue a chat completion; ``prompt_ids`` (from ``ChatModel.prompt_ids``) saves tokenising it twice.
        Refused (``QueueFullError``) when ``max_queue`` requests already wait, or when it is not expected to
        be finished (its wait, then its own decoding) within ``deadline_s``: better refused now, with a
        Retry-After, than admitted to time out."""
        prompt_ids = self.chat.encode(messages, params, prompt_ids)  # InputTooLongError before queueing
        request = GenerationRequest(prompt_ids[0], params, self.chat.stop_strings(params))
        with self._cond:
            if self._closed:
                raise ServiceUnavailableError("the generation service is shutting down")
            waiting = len(self._waiting)
            retry_after = self.retry_after_s()
            if waiting >= self.max_queue:
                raise QueueFullError(
                    f"the server is busy: {waiting} requests are already waiting (limit {self.max_queue})",
                    retry_after=retry_after,
                )
            wait = self.expected_wait_s()
            expected = wait + self.expected_run_s(params)
            if deadline_s is not None and expected > deadline_s:
                raise QueueFullError(
                    f"the server is busy: a new request would wait about {wait:.0f} s for the {waiting} ahead of it "
                    f"and finish in about {expected:.0f} s, later than this server's limit of {deadline_s:g} s",
                    retry_after=max(retry_after, expected - deadline_s),
                )
            if deadline_s is not None:
                request.deadline = request.submitted + deadline_s
            request.on_cancel = self._withdraw
            self._waiting.append(request)
            self._cond.notify()
        return request

    def expected_wait_s(self) -> float:
        raise NotImplementedError

    def retry_after_s(self) -> float:
        """When a refused client should try again: the recent time of one batch, at least a second."""
        return max(1.0, round(self._estimate_s, 1))

    def expected_run_s(self, params: SamplingParams) -> float:
        """How long a request with ``params`` is expected to decode once it has its turn."""
        raise NotImplementedError

    def active(self) -> int:
        raise NotImplementedError

    def queue_depth(self) -> int:
        return len(self._waiting)

    def _withdraw(self, request: GenerationRequest) -> None:
        """A waiting request was cancelled: out of the queue now, so it holds no place a new one could take."""
        with self._cond:
            try:
                self._waiting.remove(request)
            except ValueError:  # already decoding: the worker frees its row
                return
        request.finish("cancelled")

    def _decoding(self) -> list[GenerationRequest]:
        """The requests being decoded now (``close`` cancels them)."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop: waiting requests fail with ``ServiceUnavailableError``, running ones are cancelled."""
        if self._closed:
            return
        with self._cond:
            self._closed = True
            for req in self._waiting:
                req.fail(ServiceUnavailableError("the generation service is shutting down"))
            self._waiting.clear()
            self._cond.notify_all()
        for req in self._decoding():
            req.cancel()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        raise NotImplementedError
