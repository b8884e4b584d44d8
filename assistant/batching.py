"""Dynamic batching of concurrent chat completions over ``model.generate``.

Requests that arrive while the model is busy wait in a bounded queue; when the
running batch ends, up to ``max_batch_size`` waiting requests with the same
sampling settings are left-padded into one ``generate`` call. On a CPU or GPU,
decoding a batch of 16 costs little more per step than decoding one sequence
(each step reads all weights once), so aggregate throughput grows with the
batch. Each request streams its own tokens, ends on its own end-of-turn token,
stop string or ``max_new_tokens``, and can be cancelled: its row is marked
finished and stops costing anything but padding.

transformers' own continuous batching (paged KV cache; requests join and leave a
running batch at every step) is the other backend, ``assistant/continuous.py``,
chosen with ``--batching continuous``. This one stays the default (``auto``): it
runs the same on CPU and GPU (the comparison: docs/benchmarks/serve.md). Here, requests
arriving mid-batch wait for the next batch (at most one generation's length).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence

from .lazy import torch

from .chat import ChatModel
from .generation import GenerationRequest, QueuedBackend, notify_listeners
from .settings import BatchSettings
from .types import SamplingParams
from .errors import AssistantError, GenerationError

log = logging.getLogger(__name__)

class _BatchStreamer:
    """``generate``'s streamer for a batch: routes each row's new token to its request."""

    def __init__(self, requests: Sequence[GenerationRequest], tokenizer, eos: set[int]) -> None:
        self.requests = requests
        self.tokenizer = tokenizer
        self.eos = eos
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # generate first hands over the prompt itself
            self.prompt_seen = True
            return
        for req, token in zip(self.requests, value.reshape(-1).tolist()):
            if req.done:
                continue
            if req.cancelled:
                req.finish("cancelled")
            elif reason := req.take(token, self.tokenizer, self.eos):
                req.finish(reason)

    def end(self) -> None:
        for req in self.requests:
            if not req.done:
                req.finish("cancelled" if req.cancelled else "length")


class _RowsDone:
    """Stopping criterion per row: a row is finished once its request is (stop string, cancel, own limit)."""

    def __init__(self, requests: Sequence[GenerationRequest]) -> None:
        self.requests = requests

    def __call__(self, input_ids, scores, **kwargs) -> torch.Tensor:
        done = [r.done or r.cancelled for r in self.requests]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def _sampling_key(params: SamplingParams) -> tuple:
    """Requests batch together only when one generate() call can honour all their settings."""
    return (params.temperature, params.top_p, params.repetition_penalty, params.seed)


class Batcher(QueuedBackend):
    """Owns a worker thread that turns queued requests into batched ``generate`` calls."""

    name = "torch (dynamic batching over generate)"
    thread_name = "finassist-batcher"

    def __init__(self, chat: ChatModel, settings: BatchSettings | None = None) -> None:
        self._running: list[GenerationRequest] = []
        self._batch_started: float | None = None  # when the running batch began
        super().__init__(chat, settings or BatchSettings())

    def expected_wait_s(self) -> float:
        """How long a request queued now would wait for its batch: the batches ahead of it (the running
        one and those the waiting requests fill) times the recent time per batch."""
        ahead = -(-len(self._waiting) // self.max_batch_size) + (1 if self.active() else 0)
        per_batch = self._estimate_s
        started = self._batch_started
        if started is not None:  # a batch already running longer than the estimate says the estimate is low
            per_batch = max(per_batch, time.perf_counter() - started)
        return ahead * per_batch

    def expected_run_s(self, params: SamplingParams) -> float:
        """One batch, at the recent time per batch."""
        return self._estimate_s

    def active(self) -> int:
        return sum(not r.done for r in self._running)

    def _decoding(self) -> list[GenerationRequest]:
        return list(self._running)

    # ------------------------------------------------------------------ worker

    def _take_batch(self) -> list[GenerationRequest]:
        with self._cond:
            while not self._waiting and not self._closed:
                self._cond.wait()
            if self._closed:
                return []
        if len(self._waiting) < self.max_batch_size and self.max_wait_s > 0:
            time.sleep(self.max_wait_s)  # let near-simultaneous requests join this batch
        window = self.chat.context_window
        with self._cond:
            batch: list[GenerationRequest] = []
            key = None
            longest_prompt = most_new = 0
            kept: deque[GenerationRequest] = deque()
            while self._waiting:
                req = self._waiting.popleft()
                req.on_cancel = None  # leaving the queue: a cancel now frees its row in the batch
                if req.cancelled:
                    req.finish("cancelled")
                    continue
                if key is None:
                    key = _sampling_key(req.params)
                # Every row is padded to the longest prompt and runs for the largest max_new_tokens:
                # the batch must fit the window as a whole, not only each request on its own.
                prompt = max(longest_prompt, req.prompt_tokens)
                new = max(most_new, req.params.max_new_tokens)
                fits = not batch or prompt + new <= window
                if len(batch) < self.max_batch_size and _sampling_key(req.params) == key and fits:
                    batch.append(req)
                    longest_prompt, most_new = prompt, new
                else:
                    kept.append(req)
            self._waiting.extendleft(reversed(kept))
            return batch

    def _loop(self) -> None:
        while True:
            batch = self._take_batch()
            if not batch:
                if self._closed:
                    return
                continue
            self._running = batch
            notify_listeners(self.batch_listeners, len(batch))
            started = self._batch_started = time.perf_counter()
            try:
                self.run_batch(batch)
            except BaseException as exc:
                log.exception("batched generation failed")
                for req in batch:
                    if not req.done:
                        req.fail(exc if isinstance(exc, AssistantError) else GenerationError(f"generation failed: {exc}"))
            finally:
                self._running = []
                self._batch_started = None
            self._estimate_s = 0.7 * self._estimate_s + 0.3 * (time.perf_counter() - started)

    def run_batch(self, batch: list[GenerationRequest]) -> None:
        """One left-padded ``generate`` call for ``batch`` (on the worker thread). A subclass may wrap it:
        the continuous backend pauses its own loop around it."""
        from transformers import StoppingCriteriaList

        gen = self.chat.loaded
        pad = gen.tokenizer.pad_token_id
        eos = gen.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos])
        if pad is None:
            pad = next(iter(eos_ids))
        width = max(r.prompt_tokens for r in batch)
        # Left padding: every row's next token goes in the same (last) column.
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, req in enumerate(batch):
            input_ids[row, width - req.prompt_tokens :] = torch.as_tensor(req.prompt_ids)
            attention[row, width - req.prompt_tokens :] = 1
        params = batch[0].params
        kwargs = params.generate_kwargs()
        kwargs["max_new_tokens"] = max(r.params.max_new_tokens for r in batch)
        if params.seed is not None:
            torch.manual_seed(params.seed)
        device = gen.runtime.device
        with torch.inference_mode():
            gen.model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention.to(device),
                pad_token_id=pad,
                streamer=_BatchStreamer(batch, gen.tokenizer, eos_ids),
                stopping_criteria=StoppingCriteriaList([_RowsDone(batch)]),
                **kwargs,
            )
