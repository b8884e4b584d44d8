"""The dynamic batcher on the tiny GPT-2: batched output equals single-stream output,
per-request limits, cancellation, the bounded queue, and async iteration."""

from __future__ import annotations

import asyncio
import time

import pytest

from assistant.batching import Batcher
from assistant.settings import BatchSettings
from assistant.types import SamplingParams
from assistant.errors import InputTooLongError, QueueFullError

from chat_prompts import PROMPTS, chat

@pytest.fixture
def batcher(tiny_engine):
    b = Batcher(tiny_engine.chat, BatchSettings(max_batch_size=8, max_queue=16, max_wait_ms=50))
    yield b
    b.close()


def test_batched_greedy_output_equals_single_stream(tiny_engine, batcher):
    params = SamplingParams(max_new_tokens=12)
    singles = [tiny_engine.generate(chat(p), params) for p in PROMPTS]
    sizes: list[int] = []
    batcher.batch_listeners.append(sizes.append)
    handles = [batcher.submit(chat(p), params) for p in PROMPTS]  # different lengths: left padding
    texts = ["".join(h) for h in handles]
    assert max(sizes) > 1, f"requests were not batched: batch sizes {sizes}"
    for single, text, handle in zip(singles, texts, handles):
        assert text.strip() == single.text
        assert handle.result.completion_tokens == single.completion_tokens == 12
        assert handle.result.prompt_tokens == single.prompt_tokens
        assert handle.result.finish_reason == "length"
        assert handle.ttft_s is not None and handle.ttft_s > 0


def test_each_request_keeps_its_own_max_new_tokens(batcher):
    short = batcher.submit(chat(PROMPTS[0]), SamplingParams(max_new_tokens=3))
    long = batcher.submit(chat(PROMPTS[1]), SamplingParams(max_new_tokens=15))
    list(short), list(long)
    assert short.result.completion_tokens == 3
    assert long.result.completion_tokens == 15


def test_stop_string_ends_only_its_request(tiny_engine, batcher):
    free = tiny_engine.generate(chat(PROMPTS[2]), SamplingParams(max_new_tokens=16)).text
    assert len(free) > 4
    stop = free[2:5]
    stopped = batcher.submit(chat(PROMPTS[2]), SamplingParams(max_new_tokens=16, stop=(stop,)))
    other = batcher.submit(chat(PROMPTS[3]), SamplingParams(max_new_tokens=16))
    text = "".join(stopped)
    list(other)
    assert stop not in text
    assert stopped.result.finish_reason == "stop"
    assert other.result.finish_reason == "length" and other.result.completion_tokens == 16


def test_cancel_frees_the_row(batcher):
    handle = batcher.submit(chat(PROMPTS[0]), SamplingParams(max_new_tokens=400))
    pieces = iter(handle)
    next(pieces)
    handle.cancel()
    list(pieces)
    assert handle.result.finish_reason == "cancelled"
    assert handle.result.completion_tokens < 400
    deadline = time.time() + 5
    while batcher.active() and time.time() < deadline:
        time.sleep(0.01)
    assert batcher.active() == 0
    follow = batcher.submit(chat(PROMPTS[1]), SamplingParams(max_new_tokens=4))
    assert "".join(follow) and follow.result.completion_tokens == 4


def test_full_queue_refuses_with_retry_after(tiny_engine):
    b = Batcher(tiny_engine.chat, BatchSettings(max_batch_size=1, max_queue=1, max_wait_ms=0))
    try:
        running = b.submit(chat(PROMPTS[0]), SamplingParams(max_new_tokens=300))
        deadline = time.time() + 5
        while b.queue_depth() and time.time() < deadline:  # wait until it left the queue for the model
            time.sleep(0.005)
        waiting = b.submit(chat(PROMPTS[1]), SamplingParams(max_new_tokens=2))
        with pytest.raises(QueueFullError) as info:
            b.submit(chat(PROMPTS[2]), SamplingParams(max_new_tokens=2))
        assert info.value.retry_after >= 1 and info.value.http_status == 429
        running.cancel()
        list(running), list(waiting)
        assert waiting.result.completion_tokens == 2
    finally:
        b.close()


def test_too_long_prompt_is_refused_before_queueing(tiny_engine, batcher):
    with pytest.raises(InputTooLongError):
        batcher.submit(chat("profit " * 5000), SamplingParams(max_new_tokens=8))
    assert batcher.queue_depth() == 0


def test_different_sampling_settings_do_not_share_a_batch(batcher):
    sizes: list[int] = []
    batcher.batch_listeners.append(sizes.append)
    a = batcher.submit(chat(PROMPTS[0]), SamplingParams(max_new_tokens=4))
    b = batcher.submit(chat(PROMPTS[1]), SamplingParams(max_new_tokens=4, temperature=0.7, seed=1))
    list(a), list(b)
    assert sizes == [1, 1]


def test_async_iteration_yields_the_same_text(batcher):
    params = SamplingParams(max_new_tokens=8)
    sync_text = "".join(batcher.submit(chat(PROMPTS[3]), params))

    async def collect() -> str:
        return "".join([piece async for piece in batcher.submit(chat(PROMPTS[3]), params)])

    assert asyncio.run(collect()) == sync_text


def test_engine_owns_one_batcher(fresh_engine):
    assert fresh_engine.batcher() is fresh_engine.batcher()
    fresh_engine.batcher().close()


def test_requests_that_would_overflow_the_window_together_run_apart(tiny_engine, batcher):
    window = tiny_engine.context_window
    long_prompt = chat("Operating profit rose to EUR 13.1 mn. " * 60)
    long_tokens = tiny_engine.chat.encode(long_prompt, SamplingParams(max_new_tokens=8)).shape[1]
    short_new = window - long_tokens  # fits alone, and the short prompt with many new tokens fits alone...
    many_new = window - 40            # ...but padded to the long prompt, the second would overflow the window
    assert long_tokens + many_new > window
    sizes: list[int] = []
    batcher.batch_listeners.append(sizes.append)
    a = batcher.submit(long_prompt, SamplingParams(max_new_tokens=min(short_new, 8)))
    b = batcher.submit(chat("Sales fell."), SamplingParams(max_new_tokens=many_new))
    list(a), list(b)
    assert a.result.completion_tokens == min(short_new, 8)
    assert b.result.completion_tokens == many_new
    assert sizes == [1, 1]
