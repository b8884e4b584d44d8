"""Continuous batching of chat completions over transformers' ``ContinuousBatchingManager``.

The second generation backend (``BatchSettings(backend="continuous")``), behind the
``GenerationBackend`` interface (``assistant/generation.py``): ``submit`` returns the same
``GenerationRequest`` handle (sync/async iteration, cancel, stop strings, finish
reasons, ``ttft_s``), and ``queue_depth``, ``active``, ``batch_listeners`` and
``close`` mean the same to the server.

Unlike the dynamic batcher, a request joins the running batch at the next decoding
step instead of waiting for the batch to end, and its KV cache lives in a paged
cache whose blocks are freed the moment it finishes or is cancelled.

How requests map onto the manager:

* One manager for all sampling settings. Its ``GenerationConfig`` samples
  (``do_sample=True``) with per-request temperature, top-k and top-p processors
  (``per_request_processors=True``). A greedy request asks for ``top_k=1``: only the
  arg-max survives, so sampling picks it (greedy output equals ``generate``'s, bar exact
  ties between top logits and kernel rounding differences). A
  sampling request asks for its temperature and top-p, with top-k = the vocabulary
  (off). So greedy and sampling requests share batches.
* What the manager cannot honour runs exactly, on the side: ``repetition_penalty != 1``
  (CB drops that logits processor: it needs each row's history) and seeded sampling
  (the manager has one RNG for all requests) go to a private dynamic ``Batcher`` whose
  ``generate`` calls run while the manager's loop is paused (``manager.pause()``). They
  stall the continuous batch while they run; the summarise task's default style uses a
  repetition penalty, so expect that on mixed summarise/chat load. ``seed`` on a greedy
  request changes nothing and is not routed.
* The paged cache is sized explicitly (``cache_tokens``, ``max_batch_tokens``): left to
  itself on a CPU, transformers takes 60 % of RAM for it and its attention mask.
* ``queue_depth()``: requests submitted that have no token yet (waiting in the manager's
  scheduler or prefilling); ``active()``: those producing tokens. ``batch_listeners`` get
  the number of requests producing tokens together each time that number changes.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from .batching import Batcher
from .chat import ChatModel
from .generation import GenerationRequest, notify_listeners
from .settings import BatchSettings
from .types import Message, SamplingParams
from .errors import GenerationError, QueueFullError, ServiceUnavailableError

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

#: How often (seconds) the dispatcher looks for cancelled requests while no token arrives.
_POLL_S = 0.02


def _needs_generate(params: SamplingParams) -> bool:
    """Settings the continuous batching manager cannot honour exactly."""
    return params.repetition_penalty != 1.0 or (params.sampled and params.seed is not None)


class _PausingBatcher(Batcher):
    """The dynamic batcher for the requests CB cannot serve: each ``generate`` runs with the CB loop paused."""

    def __init__(self, chat: ChatModel, owner: ContinuousBatcher, settings: BatchSettings) -> None:
        self.owner = owner
        super().__init__(chat, settings)

    def run_batch(self, batch: list[GenerationRequest]) -> None:
        with self.owner._paused():
            super().run_batch(batch)


class ContinuousBatcher:
    """Serves chat completions through one transformers ``ContinuousBatchingManager`` and one dispatcher thread."""

    #: What decodes (``finassist models``, the benchmarks).
    name = "torch (transformers continuous batching)"

    def __init__(
        self,
        chat: ChatModel,
        settings: BatchSettings | None = None,
        *,
        cache_tokens: int | None = None,
        max_batch_tokens: int | None = None,
        page_size: int = 256,
        auto_switch_to_flash: bool = False,
    ) -> None:
        """``settings.max_wait_ms`` is only used by the side batcher (a new
        request joins the running batch at the next step). ``cache_tokens``: paged KV cache capacity in
        tokens (default: ``max_batch_size`` requests of up to 2048 tokens each, and at least one full
        context window). ``max_batch_tokens``: tokens per forward pass (prefill chunks plus one per
        decoding request; default ``min(window, 1024)``). ``auto_switch_to_flash``: let transformers
        switch the model to flash attention when installed (off: the model keeps its attention, which
        the side batcher's ``generate`` also uses)."""
        self.settings = settings = settings or BatchSettings()
        self.chat = chat
        self.max_batch_size = settings.max_batch_size
        self.max_queue = settings.max_queue
        self.batch_listeners: list[Callable[[int], None]] = []
        self._cache_tokens = cache_tokens
        self._max_batch_tokens = max_batch_tokens
        self._page_size = page_size
        self._auto_switch_to_flash = auto_switch_to_flash
        self._lock = threading.Lock()
        self._inflight: dict[str, GenerationRequest] = {}
        self._started: set[str] = set()  # in-flight ids that have produced a token
        self._reported = 0
        self._request_seconds = 1.0  # running estimate, for Retry-After
        self._closed = False
        self._side: _PausingBatcher | None = None
        gen = chat.loaded
        self._eos: set[int] = gen.eos_ids
        # Top-k "off" is the logits' width (the LM head's, which may exceed the tokenizer's vocabulary).
        head = gen.model.get_output_embeddings()
        width = getattr(head, "out_features", None) or gen.model.config.get_text_config().vocab_size
        self._vocab = int(width)
        self.manager = self._start_manager()
        self._thread = threading.Thread(target=self._dispatch, name="finassist-continuous", daemon=True)
        self._thread.start()
        # Stop the manager and the dispatcher before the interpreter tears torch down under them.
        atexit.register(self.close)

    # ------------------------------------------------------------------ public

    def submit(
        self, messages: Sequence[Message], params: SamplingParams, prompt_ids: np.ndarray | None = None,
        deadline_s: float | None = None,
    ) -> GenerationRequest:
        """Queue a chat completion; ``prompt_ids`` (from ``ChatModel.prompt_ids``) saves tokenising it twice.
        ``deadline_s`` bounds the expected time of the requests that go to the side batcher (``Batcher.submit``);
        the continuous loop admits up to its in-flight limit."""
        prompt_ids = self.chat.encode(messages, params, prompt_ids)  # InputTooLongError before queueing
        with self._lock:
            if self._closed:
                raise ServiceUnavailableError("the generation service is shutting down")
            in_flight = len(self._inflight) + self._side_load()
            limit = self.max_batch_size + self.max_queue
            if in_flight >= limit:
                raise QueueFullError(
                    f"the server is busy: {in_flight} requests are already in flight (limit {limit})",
                    retry_after=max(1.0, round(self._request_seconds, 1)),
                )
            if _needs_generate(params):
                return self._side_batcher().submit(messages, params, prompt_ids, deadline_s=deadline_s)
            request = GenerationRequest(prompt_ids[0], params, self.chat.stop_strings(params))
            self._inflight[request.id] = request
        try:
            accepted = self.manager.add_request(
                prompt_ids[0].tolist(),
                request_id=request.id,
                max_new_tokens=params.max_new_tokens,
                streaming=True,
                **self._processor_kwargs(params),
            )
        except Exception:
            accepted = None
            log.exception("continuous batching refused a request")
        if accepted is None:  # the manager is stopping or died
            with self._lock:
                self._inflight.pop(request.id, None)
            raise ServiceUnavailableError("the continuous batching loop is not running")
        return request

    def queue_depth(self) -> int:
        """Requests with no token yet (waiting in the manager or prefilling), and those waiting on the side."""
        side = self._side.queue_depth() if self._side is not None else 0
        with self._lock:
            return len(self._inflight) - len(self._started) + side

    def active(self) -> int:
        """Requests producing tokens."""
        side = self._side.active() if self._side is not None else 0
        with self._lock:
            return len(self._started) + side

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            requests = list(self._inflight.values())
            self._inflight.clear()
            self._started.clear()
        for req in requests:
            self.manager.cancel_request(req.id)
            if req.new_ids:
                req.finish("cancelled")
            else:
                req.fail(ServiceUnavailableError("the generation service is shutting down"))
        if self._side is not None:
            self._side.close()
        try:
            self.manager.stop(block=True, timeout=30, hard_stop=True)
        except Exception:  # a manager that already died: nothing to stop
            log.debug("stopping the continuous batching manager failed", exc_info=True)
        self._thread.join(timeout=30)

    # ------------------------------------------------------------------ manager

    def _start_manager(self):
        """A started manager with a paged cache sized for this batcher's settings."""
        from transformers import GenerationConfig
        from transformers.generation.configuration_utils import ContinuousBatchingConfig

        gen = self.chat.loaded
        window = gen.context_window
        cache_tokens = self._cache_tokens or max(window, self.max_batch_size * min(window, 2048))
        generation_config = GenerationConfig(
            # Sampling with per-request processors; greedy requests ask for top_k=1 (see the module docstring).
            # The defaults only make transformers create each processor: every request sets its own values.
            do_sample=True,
            temperature=0.7,
            top_k=self._vocab,
            top_p=0.9,
            eos_token_id=sorted(self._eos) or None,
            pad_token_id=gen.tokenizer.pad_token_id,
        )
        cb_config = ContinuousBatchingConfig(
            page_size=self._page_size,
            num_blocks=math.ceil(cache_tokens / self._page_size) + 1,
            max_batch_tokens=self._max_batch_tokens or min(window, 1024),
            max_requests_per_batch=self.max_batch_size,
            per_request_processors=True,
            auto_switch_to_flash=self._auto_switch_to_flash,
        )
        try:
            manager = gen.model.init_continuous_batching(
                generation_config=generation_config, continuous_batching_config=cb_config
            )
            manager.warmup()  # CUDA graphs / compile when enabled; otherwise only builds the cache
            manager.start()
        except (ValueError, RuntimeError, MemoryError, NotImplementedError) as exc:
            raise GenerationError(
                f"continuous batching cannot run {gen.resolved.name} on {gen.runtime.describe()}: {exc}; "
                "use the dynamic batcher (--batching dynamic)"
            ) from exc
        return manager

    def _processor_kwargs(self, params: SamplingParams) -> dict:
        if params.sampled:
            return {"temperature": float(params.temperature), "top_k": self._vocab, "top_p": float(params.top_p)}
        return {"temperature": 1.0, "top_k": 1, "top_p": 1.0}  # greedy: only the arg-max is left to sample

    @contextlib.contextmanager
    def _paused(self) -> Iterator[None]:
        """Hold the CB loop (its requests keep their cache) while the side batcher uses the model."""
        if not self.manager.is_running():  # nothing to pause (it died and is being restarted)
            yield
            return
        model = self.chat.loaded.model
        with self.manager.pause():
            # CB swaps an eager model to "paged|eager", which plain generate cannot use: swap back meanwhile.
            original = self.manager._original_attn_impl
            current = model.config._attn_implementation
            if original is not None:
                model.set_attn_implementation(original)
            try:
                yield
            finally:
                if original is not None:
                    model.set_attn_implementation(current)

    def _side_batcher(self) -> _PausingBatcher:
        if self._side is None:
            self._side = _PausingBatcher(self.chat, self, self.settings)
            self._side.batch_listeners = self.batch_listeners  # one list: the server's hook sees both
        return self._side

    def _side_load(self) -> int:
        return self._side.queue_depth() + self._side.active() if self._side is not None else 0

    # ------------------------------------------------------------------ dispatcher

    def _dispatch(self) -> None:
        """Route the manager's streamed outputs to their requests; cancel what the clients left."""
        tokenizer = self.chat.loaded.tokenizer
        while True:
            if self._closed and not self.manager.is_running():
                return
            output = self.manager.get_result(timeout=_POLL_S)
            if output is not None:
                try:
                    self._deliver(output, tokenizer)
                except Exception as exc:  # a bug here must not kill the thread that serves everyone
                    log.exception("continuous batching dispatch failed")
                    self._drop(output.request_id, exc=GenerationError(f"generation failed: {exc}"))
            elif not self.manager.is_running() and not self._closed:
                self._recover()
            self._reap_cancelled()
            self._report()

    def _deliver(self, output, tokenizer) -> None:
        with self._lock:
            req = self._inflight.get(output.request_id)
        if req is None:  # cancelled or finished here already: make sure the manager lets it go too
            if not output.is_finished():
                self.manager.cancel_request(output.request_id)
            return
        if output.error is not None:
            self._drop(req.id, exc=GenerationError(f"generation failed: {output.error}"))
            return
        with self._lock:
            self._started.add(req.id)
        for token in output.generated_tokens[len(req.new_ids) :]:
            if req.cancelled:
                self._drop(req.id, reason="cancelled")
                return
            if reason := req.take(token, tokenizer, self._eos):
                self._drop(req.id, reason=reason)
                return
        if output.is_finished():  # the manager's own limit (never before ours; kept for safety)
            self._drop(req.id, reason="length")

    def _drop(self, request_id: str, reason: str | None = None, exc: BaseException | None = None) -> None:
        """End a request here and in the manager (which frees its cache blocks)."""
        with self._lock:
            req = self._inflight.pop(request_id, None)
            self._started.discard(request_id)
        if req is None:
            return
        self.manager.cancel_request(request_id)  # a no-op for a request the manager already finished
        if exc is not None:
            req.fail(exc)
        else:
            req.finish(reason or "length")
        self._request_seconds = 0.7 * self._request_seconds + 0.3 * (time.perf_counter() - req.submitted)

    def _reap_cancelled(self) -> None:
        with self._lock:
            gone = [rid for rid, req in self._inflight.items() if req.cancelled]
        for rid in gone:
            self._drop(rid, reason="cancelled")

    def _report(self) -> None:
        running = len(self._started)
        if running == self._reported:
            return
        self._reported = running
        if running == 0:
            return
        notify_listeners(self.batch_listeners, running)

    def _recover(self) -> None:
        """The manager's loop died (its error is logged by transformers): fail what it held, start a new one."""
        error = self.manager.background_thread_status.fatal_error
        with self._lock:
            ids = list(self._inflight)
        for rid in ids:
            self._drop(rid, exc=GenerationError(f"continuous batching failed: {error or 'the loop stopped'}"))
        log.error("the continuous batching loop stopped (%s); starting a new one", error)
        with contextlib.suppress(Exception):
            self.manager.stop(block=True, timeout=5)
        try:
            self.manager = self._start_manager()
        except Exception:
            log.exception("restarting continuous batching failed")
            time.sleep(1.0)
