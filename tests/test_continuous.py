"""The continuous batcher (transformers' ContinuousBatchingManager, paged KV cache) on the tiny
models, on CPU: same interface and same greedy output as the dynamic batcher, streaming, stop
strings, cancellation freeing the manager's request, the bounded queue, close, the requests CB
cannot honour (repetition penalty, seeded sampling) and the backend choice. The GPU run of the
real model is at the end (marked gpu)."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
import torch
from chat_prompts import PROMPTS, chat

from assistant.batching import Batcher
from assistant.continuous import ContinuousBatcher
from assistant.engine import Engine
from assistant.settings import BatchSettings
from assistant.types import SamplingParams
from assistant.errors import InputTooLongError, InvalidParameterError, QueueFullError, ServiceUnavailableError


def wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.time() + timeout
    while not predicate() and time.time() < deadline:
        time.sleep(0.01)
    return predicate()


def manager_holds(cb: ContinuousBatcher, request_id: str) -> bool:
    scheduler = cb.manager.batch_processor.scheduler
    return request_id in scheduler.active_requests or request_id in scheduler.waiting_requests


@pytest.fixture
def cb(tiny_engine):
    b = ContinuousBatcher(tiny_engine.chat, BatchSettings(max_batch_size=8, max_queue=16))
    yield b
    b.close()


@pytest.fixture(scope="module")
def reference(tiny_engine):
    """Greedy results of the dynamic batcher (the engine's default backend), 12 new tokens per prompt."""
    params = SamplingParams(max_new_tokens=12)
    return [tiny_engine.generate(chat(p), params) for p in PROMPTS]


def test_greedy_output_equals_generate_and_the_dynamic_batcher(tiny_engine, cb, reference):
    assert isinstance(tiny_engine.batcher(), Batcher)
    params = SamplingParams(max_new_tokens=12)
    ids = torch.as_tensor(tiny_engine.chat.encode(chat(PROMPTS[0]), params))
    gen = tiny_engine.generator
    with torch.inference_mode():
        plain = gen.model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=12,
            do_sample=False,
            pad_token_id=gen.tokenizer.eos_token_id,
        )
    handle = cb.submit(chat(PROMPTS[0]), params)
    text = "".join(handle)
    assert handle.new_ids == plain[0, ids.shape[1] :].tolist()
    assert text.strip() == handle.result.text == reference[0].text
    assert handle.result.finish_reason == "length" and handle.result.completion_tokens == 12
    assert handle.result.prompt_tokens == ids.shape[1]
    assert handle.ttft_s is not None and handle.ttft_s > 0


def test_concurrent_requests_share_steps_and_keep_their_own_output(cb, reference):
    sizes: list[int] = []
    cb.batch_listeners.append(sizes.append)
    params = SamplingParams(max_new_tokens=12)
    handles = [cb.submit(chat(p), params) for p in PROMPTS]
    texts = {}

    def consume(i: int) -> None:
        texts[i] = "".join(handles[i])

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(len(handles))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert max(sizes) > 1, f"requests never decoded together: {sizes}"
    for i, (ref, handle) in enumerate(zip(reference, handles)):
        assert texts[i].strip() == handle.result.text == ref.text
        assert handle.result.completion_tokens == ref.completion_tokens == 12
        assert handle.result.prompt_tokens == ref.prompt_tokens
    assert wait_until(lambda: cb.active() == 0 and cb.queue_depth() == 0)


def test_a_late_request_joins_the_running_batch(cb):
    long = cb.submit(chat(PROMPTS[2]), SamplingParams(max_new_tokens=200))
    pieces = iter(long)
    next(pieces)  # the first request is decoding
    late = cb.submit(chat(PROMPTS[1]), SamplingParams(max_new_tokens=5))
    list(late)
    assert late.result.completion_tokens == 5
    assert not long.done, "the late request waited for the running one to end"
    list(pieces)
    assert long.result.completion_tokens == 200


def test_each_request_keeps_its_own_max_new_tokens(cb):
    short = cb.submit(chat(PROMPTS[0]), SamplingParams(max_new_tokens=3))
    long = cb.submit(chat(PROMPTS[1]), SamplingParams(max_new_tokens=15))
    list(short), list(long)
    assert short.result.completion_tokens == 3 and short.result.finish_reason == "length"
    assert long.result.completion_tokens == 15


def test_streamed_pieces_make_the_result_sync_and_async(cb, reference):
    params = SamplingParams(max_new_tokens=12)
    handle = cb.submit(chat(PROMPTS[3]), params)
    pieces = list(handle)
    assert len(pieces) > 1
    assert "".join(pieces).strip() == handle.result.text == reference[3].text

    async def collect() -> str:
        return "".join([piece async for piece in cb.submit(chat(PROMPTS[3]), params)])

    assert asyncio.run(collect()).strip() == reference[3].text


def test_stop_string_ends_only_its_request(tiny_engine, cb):
    free = tiny_engine.generate(chat(PROMPTS[2]), SamplingParams(max_new_tokens=16)).text
    assert len(free) > 4
    stop = free[2:5]
    stopped = cb.submit(chat(PROMPTS[2]), SamplingParams(max_new_tokens=16, stop=(stop,)))
    other = cb.submit(chat(PROMPTS[3]), SamplingParams(max_new_tokens=16))
    text = "".join(stopped)
    list(other)
    assert stop not in text and text.strip() == free[:2].strip()
    assert stopped.result.finish_reason == "stop" and stopped.result.completion_tokens < 16
    assert other.result.finish_reason == "length" and other.result.completion_tokens == 16
    assert wait_until(lambda: not manager_holds(cb, stopped.id)), "the stopped request still holds its cache"


def test_cancel_frees_the_request_in_the_manager(cb):
    handle = cb.submit(chat(PROMPTS[0]), SamplingParams(max_new_tokens=900))
    pieces = iter(handle)
    next(pieces)
    assert cb.active() == 1 and manager_holds(cb, handle.id)
    steps = cb.manager.current_batch  # the manager's decoding steps so far
    handle.cancel()
    list(pieces)
    assert handle.result.finish_reason == "cancelled"
    assert handle.result.completion_tokens < 900
    assert wait_until(lambda: cb.active() == 0 and not manager_holds(cb, handle.id), timeout=30)
    assert cb.manager.current_batch - steps < 450, "the manager decoded on for the cancelled request"
    follow = cb.submit(chat(PROMPTS[1]), SamplingParams(max_new_tokens=4))
    assert "".join(follow) and follow.result.completion_tokens == 4


def test_leaving_the_loop_early_cancels(cb):
    handle = cb.submit(chat(PROMPTS[0]), SamplingParams(max_new_tokens=900))
    for _ in handle:
        steps = cb.manager.current_batch  # the manager's decoding steps so far
        break  # the consumer went away: the generator's finally cancels
    assert wait_until(lambda: handle.result is not None and not manager_holds(cb, handle.id), timeout=30)
    assert cb.manager.current_batch - steps < 450, "the manager decoded on for the abandoned request"
    assert handle.result.finish_reason == "cancelled"


def test_full_queue_refuses_with_retry_after(tiny_engine):
    b = ContinuousBatcher(tiny_engine.chat, BatchSettings(max_batch_size=1, max_queue=1))
    try:
        first = b.submit(chat(PROMPTS[0]), SamplingParams(max_new_tokens=300))
        second = b.submit(chat(PROMPTS[1]), SamplingParams(max_new_tokens=300))
        with pytest.raises(QueueFullError) as info:
            b.submit(chat(PROMPTS[2]), SamplingParams(max_new_tokens=2))
        assert info.value.retry_after >= 1 and info.value.http_status == 429
        first.cancel()
        list(first)
        third = b.submit(chat(PROMPTS[2]), SamplingParams(max_new_tokens=2))  # room again
        second.cancel()
        list(second), list(third)
        assert third.result.completion_tokens == 2
    finally:
        b.close()


def test_too_long_prompt_is_refused_before_queueing(cb):
    with pytest.raises(InputTooLongError):
        cb.submit(chat("profit " * 5000), SamplingParams(max_new_tokens=8))
    assert cb.queue_depth() == 0 and cb.active() == 0


def test_greedy_and_sampling_requests_share_the_manager(cb, reference):
    sizes: list[int] = []
    cb.batch_listeners.append(sizes.append)
    greedy = cb.submit(chat(PROMPTS[0]), SamplingParams(max_new_tokens=12))
    sampled = [cb.submit(chat(PROMPTS[0]), SamplingParams(max_new_tokens=12, temperature=2.0)) for _ in range(3)]
    list(greedy)
    texts = ["".join(h) for h in sampled]
    assert greedy.result.text == reference[0].text  # the sampling rows did not change the greedy one
    assert max(sizes) > 1
    assert all(h.result.completion_tokens == 12 for h in sampled)
    assert any(t.strip() != reference[0].text for t in texts), "temperature 2 sampled the greedy answer 3 times"


def test_what_cb_cannot_honour_runs_through_generate_exactly(tiny_engine, cb):
    penalised = SamplingParams(max_new_tokens=12, repetition_penalty=1.3)
    seeded = SamplingParams(max_new_tokens=12, temperature=0.9, seed=7)
    expected = [tiny_engine.generate(chat(PROMPTS[1]), p).text for p in (penalised, seeded)]
    running = cb.submit(chat(PROMPTS[2]), SamplingParams(max_new_tokens=60))  # keeps the CB loop busy meanwhile
    got = [cb.submit(chat(PROMPTS[1]), p) for p in (penalised, seeded)]
    assert ["".join(h).strip() for h in got] == expected
    list(running)
    assert running.result.completion_tokens == 60
    assert wait_until(lambda: cb.active() == 0 and cb.queue_depth() == 0)


def test_an_eager_model_serves_both_paths_and_gets_its_attention_back(tiny_gpt2_dir, tiny_bert_dir):
    """CB runs an eager model as "paged|eager", which plain generate cannot use: the side path swaps it back."""
    engine = Engine(generator=tiny_gpt2_dir, encoder=tiny_bert_dir, device="cpu")
    model = engine.generator.model
    model.set_attn_implementation("eager")
    penalised, greedy = SamplingParams(max_new_tokens=10, repetition_penalty=1.3), SamplingParams(max_new_tokens=10)
    expected = [engine.generate(chat(PROMPTS[1]), p).text for p in (penalised, greedy)]
    b = ContinuousBatcher(engine.chat, BatchSettings(max_batch_size=4, max_queue=4))
    try:
        assert model.config._attn_implementation == "paged|eager"
        handles = [b.submit(chat(PROMPTS[1]), p) for p in (penalised, greedy)]
        assert ["".join(h).strip() for h in handles] == expected
    finally:
        b.close()
        engine.batcher().close()
    assert model.config._attn_implementation == "eager"


def test_close_ends_requests_and_stops_the_threads(tiny_engine):
    b = ContinuousBatcher(tiny_engine.chat, BatchSettings(max_batch_size=2, max_queue=2))
    handle = b.submit(chat(PROMPTS[0]), SamplingParams(max_new_tokens=500))
    pieces = iter(handle)
    next(pieces)
    b.close()
    list(pieces)
    assert handle.result.finish_reason == "cancelled"
    assert not b._thread.is_alive() and not b.manager.is_running()
    with pytest.raises(ServiceUnavailableError):
        b.submit(chat(PROMPTS[1]), SamplingParams(max_new_tokens=2))
    b.close()  # idempotent
    assert tiny_engine.generator.model.config._attn_implementation == "sdpa"


def test_engine_backend_setting_chooses_the_batcher(tiny_gpt2_dir, tiny_bert_dir):
    engines = []
    try:
        for backend, kind in (("auto", Batcher), ("dynamic", Batcher), ("continuous", ContinuousBatcher)):
            engine = Engine(generator=tiny_gpt2_dir, encoder=tiny_bert_dir, device="cpu",
                            batch_settings=BatchSettings(backend=backend, max_batch_size=4))
            engines.append(engine)
            assert type(engine.batcher()) is kind and engine.batcher() is engine.batcher()
        assert engines[-1].generate(chat("Sales fell."), SamplingParams(max_new_tokens=3)).completion_tokens == 3
        with pytest.raises(InvalidParameterError, match="auto, dynamic, continuous"):
            BatchSettings(backend="vllm")
    finally:
        for engine in engines:
            engine.batcher().close()


def test_http_service_over_the_continuous_backend(tiny_gpt2_dir, tiny_bert_dir):
    """The server uses the batcher only through its interface: streamed and plain answers agree, a client
    that leaves mid-stream frees its request."""
    import httpx
    from live_server import LiveServer

    from assistant import Assistant
    from assistant.server import create_app

    engine = Engine(generator=tiny_gpt2_dir, encoder=tiny_bert_dir, device="cpu",
                    batch_settings=BatchSettings(backend="continuous", max_batch_size=4, max_queue=4))
    server = LiveServer(create_app(Assistant(engine=engine)))
    try:
        assert isinstance(engine.batcher(), ContinuousBatcher)
        url = f"{server.url}/v1/chat/completions"
        body = {"messages": chat(PROMPTS[0]), "max_tokens": 12, "temperature": 0}
        plain = httpx.post(url, json=body, timeout=60).json()
        assert plain["usage"]["completion_tokens"] == 12 and plain["choices"][0]["finish_reason"] == "length"
        pieces = []
        with httpx.stream("POST", url, json={**body, "stream": True}, timeout=60) as r:
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    delta = json.loads(line[6:])["choices"][0]["delta"]
                    pieces.append(delta.get("content") or "")
        assert "".join(pieces).strip() == plain["choices"][0]["message"]["content"]
        with httpx.stream("POST", url, json={**body, "max_tokens": 800, "stream": True}, timeout=60) as r:
            next(r.iter_lines())  # one event, then the client goes away
        batcher = engine.batcher()
        assert wait_until(lambda: batcher.active() == 0 and batcher.queue_depth() == 0, timeout=30)
        cancelled = 'finassist_chat_completions_total{finish_reason="cancelled"} 1.0'
        assert wait_until(lambda: cancelled in httpx.get(f"{server.url}/metrics").text, timeout=10)
    finally:
        server.stop()
        engine.batcher().close()


def test_serve_command_takes_the_backend():
    from assistant.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["serve"]).backend == "auto"
    assert parser.parse_args(["serve", "--backend", "onnx"]).backend == "onnx"
    assert parser.parse_args(["ask", "q", "--backend", "dynamic"]).backend == "dynamic"
    assert parser.parse_args(["serve", "--batching", "continuous"]).backend == "continuous"  # the older name
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--backend", "paged"])


def test_chat_template_model_with_end_of_turn(tiny_smollm2_dir, tiny_bert_dir):
    """The tiny Llama with SmolLM2's tokenizer: greedy output, token counts and finish reasons match the
    dynamic batcher's (its random weights may or may not reach the end-of-turn token)."""
    engine = Engine(generator=tiny_smollm2_dir, encoder=tiny_bert_dir, device="cpu")
    params = SamplingParams(max_new_tokens=16)
    expected = [engine.generate(chat(p), params) for p in PROMPTS[:2]]
    b = ContinuousBatcher(engine.chat, BatchSettings(max_batch_size=4, max_queue=4))
    try:
        handles = [b.submit(chat(p), params) for p in PROMPTS[:2]]
        for handle, ref in zip(handles, expected):
            list(handle)
            assert (handle.result.text, handle.result.completion_tokens, handle.result.finish_reason) == (
                ref.text,
                ref.completion_tokens,
                ref.finish_reason,
            )
    finally:
        b.close()
        engine.batcher().close()


# ------------------------------------------------------------------ GPU (skipped without CUDA)


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_real_generator_on_cuda_matches_the_dynamic_batcher():
    """The default SmolLM2 on CUDA: continuous batching's greedy answers equal the dynamic batcher's on
    their first tokens (half precision, different kernels: a long answer may drift on a near tie)."""
    engine = Engine(device="cuda")
    params = SamplingParams(max_new_tokens=32)
    questions = ["What is EBITDA?", "What does a debt-to-equity ratio tell me?", "Define free cash flow."]
    expected = [engine.generate(chat(q), params) for q in questions]
    b = ContinuousBatcher(engine.chat, BatchSettings(max_batch_size=16, max_queue=16))
    try:
        handles = [b.submit(chat(q), params) for q in questions]
        for handle, ref in zip(handles, expected):
            list(handle)
            assert handle.result.finish_reason in ("stop", "length")
            assert handle.result.text[:40] == ref.text[:40]
    finally:
        b.close()
