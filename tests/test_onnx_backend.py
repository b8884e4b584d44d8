"""The ONNX Runtime GenAI backend on the tiny Llama with SmolLM2's tokenizer and chat template: the
export (once, atomic, a padding id that no prompt holds), greedy output equal to torch's (fp32
export, prompts of different lengths batched together), a request never waiting for a running
generation, per-request limits, stop strings, cancellation, the bounded queue, the engine's
choice of backend with its fall-back to torch, and the decoding process (never the server's own,
started again if it dies)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from assistant.engine import Engine
from assistant.errors import InputTooLongError, ModelLoadError, QueueFullError, ServiceUnavailableError
from assistant.models import weights_fingerprint
from assistant.onnx_backend import OnnxBatcher, export_onnx, onnx_available, padding_id
from assistant.settings import BatchSettings
from assistant.types import SamplingParams

from chat_prompts import PROMPTS, chat

pytestmark = pytest.mark.skipif(onnx_available() is not None, reason=f"ONNX backend not installed: {onnx_available()}")


@pytest.fixture(scope="module")
def torch_engine(tiny_smollm2_dir, tiny_bert_dir):
    """The reference: the same tiny model decoded by torch (dynamic batcher)."""
    engine = Engine(generator=tiny_smollm2_dir, encoder=tiny_bert_dir, device="cpu",
                    batch_settings=BatchSettings(backend="dynamic"))
    yield engine
    engine.batcher().close()


@pytest.fixture(scope="module")
def exported(torch_engine, tmp_path_factory):
    """The tiny model exported in fp32 (int8 would change a random model's greedy choices) into a
    cache of this module's own."""
    cache = tmp_path_factory.mktemp("onnx-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("FINASSIST_CACHE", str(cache))
    gen = torch_engine.generator
    pad = padding_id(gen.tokenizer, {gen.model.generation_config.eos_token_id})
    source = Path(gen.resolved.location)
    path = export_onnx(source, source.name, weights_fingerprint(gen.resolved), "fp32", pad)
    yield path, cache, pad
    mp.undo()


@pytest.fixture(scope="module")
def endless(torch_engine, exported):
    """A prompt on which the exported random model's greedy output never reaches its end-of-turn token
    within the context window, and that length: a row that stays busy for as long as a test needs it."""
    b = OnnxBatcher(torch_engine.chat, exported[0], BatchSettings(), precision="fp32")
    try:
        for p in PROMPTS:
            longest = torch_engine.context_window - torch_engine.prompt_ids(chat(p)).shape[1]
            handle = b.submit(chat(p), SamplingParams(max_new_tokens=longest))
            list(handle)
            if handle.result.finish_reason == "length":
                return chat(p), longest
    finally:
        b.close()
    pytest.skip("the random model ends every prompt early")


@pytest.fixture
def onnx(torch_engine, exported):
    b = OnnxBatcher(torch_engine.chat, exported[0], BatchSettings(max_batch_size=8, max_queue=4, max_wait_ms=50),
                    precision="fp32")
    yield b
    b.close()


def test_export_is_cached_atomically_with_a_padding_id_no_prompt_holds(torch_engine, exported):
    path, cache, pad = exported
    assert path.parent == cache / "onnx" and path.name.startswith(Path(torch_engine.generator.resolved.location).name)
    assert (path / "model.onnx").is_file() and (path / ".finassist-complete").is_file()
    assert not list(path.parent.glob("*.partial-*"))  # nothing half-written left beside it
    config = json.loads((path / "genai_config.json").read_text())["model"]
    assert config["pad_token_id"] == pad
    tok = torch_engine.generator.tokenizer
    assert pad != config["eos_token_id"]
    for p in PROMPTS:  # SmolLM2 pads with <|im_end|>, which every chat prompt holds: not here
        assert pad not in torch_engine.prompt_ids(chat(p))[0].tolist()
    assert tok.convert_ids_to_tokens(pad) not in tok.chat_template
    mtime = (path / "model.onnx").stat().st_mtime_ns
    gen = torch_engine.generator
    source = Path(gen.resolved.location)
    again = export_onnx(source, source.name, weights_fingerprint(gen.resolved), "fp32", pad)
    assert again == path and (path / "model.onnx").stat().st_mtime_ns == mtime  # not exported twice


def test_unknown_precision_is_refused(torch_engine):
    with pytest.raises(ModelLoadError, match="unknown ONNX precision"):
        export_onnx(Path(torch_engine.generator.resolved.location), "tiny", "sha256:x", "int3", 0)


def test_batched_greedy_output_equals_torch(torch_engine, onnx):
    params = SamplingParams(max_new_tokens=12)
    expected = []
    for p in PROMPTS:  # one at a time through torch: the token ids of each
        handle = torch_engine.stream(chat(p), params)
        list(handle)
        expected.append(handle)
    sizes: list[int] = []
    onnx.batch_listeners.append(sizes.append)
    handles = [onnx.submit(chat(p), params) for p in PROMPTS]  # different lengths: right padding
    for h in handles:
        list(h)
    assert max(sizes) > 1, f"requests were not batched: rows {sizes}"
    assert len({h.prompt_tokens for h in handles}) > 1  # the padding was exercised
    for want, got in zip(expected, handles):
        assert got.new_ids == want.new_ids
        assert got.result.text == want.result.text
        assert got.result.prompt_tokens == want.result.prompt_tokens
        assert got.result.finish_reason == want.result.finish_reason


def test_a_lone_request_decoded_a_few_tokens_per_call_equals_torch(torch_engine, onnx):
    # Alone, with nobody waiting, a cohort asks the decoding process for BURST_TOKENS tokens a call;
    # its limit (13: not a multiple of the burst) and its stop string still cut it where torch would.
    params = SamplingParams(max_new_tokens=13)
    want = torch_engine.stream(chat(PROMPTS[2]), params)
    free = "".join(want)  # unstripped, as streamed
    got = onnx.submit(chat(PROMPTS[2]), params)
    list(got)
    assert got.new_ids == want.new_ids and got.result.completion_tokens == 13
    stop = free[5:7]
    cut = onnx.submit(chat(PROMPTS[2]), SamplingParams(max_new_tokens=13, stop=(stop,)))
    assert "".join(cut) == free[: free.find(stop)] and cut.result.finish_reason == "stop"


def test_a_request_does_not_wait_for_a_running_generation(onnx, endless):
    prompt, longest = endless
    long = onnx.submit(prompt, SamplingParams(max_new_tokens=longest))
    pieces = iter(long)
    next(pieces)  # the long one is decoding
    started = time.perf_counter()
    short = onnx.submit(chat(PROMPTS[1]), SamplingParams(max_new_tokens=4))
    list(short)
    short_done = time.perf_counter() - started
    assert not long.done, "the short request waited for the long generation to end"
    list(pieces)
    long_left = time.perf_counter() - started
    assert short.result.completion_tokens == 4 and long.result.completion_tokens in range(1, longest + 1)
    assert short_done < long_left


def test_each_request_keeps_its_own_limit_and_stop_string(torch_engine, onnx):
    # What torch writes, unstripped (the random model may write only whitespace): stop on its 2nd..3rd characters.
    free = "".join(torch_engine.stream(chat(PROMPTS[2]), SamplingParams(max_new_tokens=16)))
    assert len(free) >= 3
    stop = free[1:3]
    stopped = onnx.submit(chat(PROMPTS[2]), SamplingParams(max_new_tokens=16, stop=(stop,)))
    short = onnx.submit(chat(PROMPTS[3]), SamplingParams(max_new_tokens=3))
    text = "".join(stopped)
    list(short)
    assert stop not in text and text == free[: free.find(stop)]
    assert stopped.result.finish_reason == "stop" and stopped.result.completion_tokens < 16
    assert short.result.completion_tokens == 3 and short.result.finish_reason == "length"


def test_cancel_frees_the_row_and_others_go_on(onnx):
    a = onnx.submit(chat(PROMPTS[0]), SamplingParams(max_new_tokens=300))
    b = onnx.submit(chat(PROMPTS[1]), SamplingParams(max_new_tokens=8))
    next(iter(a))
    a.cancel()
    list(b)
    deadline = time.time() + 10
    while not a.done and time.time() < deadline:
        time.sleep(0.01)
    assert a.result.finish_reason == "cancelled" and a.result.completion_tokens < 300
    assert b.result.completion_tokens == 8
    deadline = time.time() + 10
    while onnx.active() and time.time() < deadline:
        time.sleep(0.01)
    assert onnx.active() == 0 and onnx.queue_depth() == 0


def test_rows_beyond_max_batch_size_wait_and_a_full_queue_refuses(torch_engine, exported, endless):
    b = OnnxBatcher(torch_engine.chat, exported[0], BatchSettings(max_batch_size=1, max_queue=2, max_wait_ms=0))
    try:
        prompt, longest = endless  # busy for the whole window: the tiny model decodes fast
        running = b.submit(prompt, SamplingParams(max_new_tokens=longest))
        pieces = iter(running)  # kept: a dropped iterator cancels its request (the consumer left)
        next(pieces)
        # No free row: a caller that will not wait is refused rather than queued.
        with pytest.raises(QueueFullError, match="would wait"):
            b.submit(chat(PROMPTS[1]), SamplingParams(max_new_tokens=2), deadline_s=0.0)
        waiting = [b.submit(chat(p), SamplingParams(max_new_tokens=2)) for p in PROMPTS[1:3]]
        assert b.queue_depth() == 2 and b.active() == 1
        with pytest.raises(QueueFullError, match="already waiting") as info:
            b.submit(chat(PROMPTS[3]), SamplingParams(max_new_tokens=2))
        assert info.value.retry_after >= 1
        running.cancel()
        for w in waiting:
            list(w)
            assert w.result.completion_tokens == 2
    finally:
        b.close()
    with pytest.raises(ServiceUnavailableError):
        b.submit(chat(PROMPTS[0]), SamplingParams(max_new_tokens=2))


def test_a_request_that_can_no_longer_finish_in_time_is_refused_not_started(torch_engine, exported, endless):
    b = OnnxBatcher(torch_engine.chat, exported[0], BatchSettings(max_batch_size=1, max_wait_ms=0), precision="fp32")
    try:
        prompt, _ = endless
        running = b.submit(prompt, SamplingParams(max_new_tokens=30))
        pieces = iter(running)
        next(pieces)  # the one row is busy
        late = b.submit(chat(PROMPTS[1]), SamplingParams(max_new_tokens=4))
        late.deadline = time.perf_counter() + 0.005  # its caller's limit passes while it waits for the row
        list(pieces)
        with pytest.raises(QueueFullError, match="waited too long") as info:
            list(late)
        assert late.new_ids == [] and info.value.retry_after >= 1  # refused with a Retry-After, never started
    finally:
        b.close()


def test_too_long_prompt_is_refused_before_queueing(torch_engine, onnx):
    window = torch_engine.context_window
    with pytest.raises(InputTooLongError):
        onnx.submit(chat("word " * window), SamplingParams(max_new_tokens=8))
    assert onnx.queue_depth() == 0


def test_engine_auto_decodes_with_onnx_on_a_cpu_and_torch_for_gpt2(tiny_smollm2_dir, tiny_bert_dir, tiny_gpt2_dir,
                                                                   exported, monkeypatch):
    monkeypatch.setenv("FINASSIST_CACHE", str(exported[1]))
    engine = Engine(generator=tiny_smollm2_dir, encoder=tiny_bert_dir, device="cpu",
                    batch_settings=BatchSettings(onnx_precision="fp32"))
    try:
        assert "chosen on first use" in engine.backend_name
        assert isinstance(engine.batcher(), OnnxBatcher) and engine.backend_name.startswith("onnx (fp32")
        assert engine.generate(chat(PROMPTS[0]), SamplingParams(max_new_tokens=4)).completion_tokens >= 1
        # ONNX decodes from its export: the torch weights were never read, and load when something asks.
        gen = engine.generator
        assert not gen.weights_loaded
        assert gen.parameters == sum(p.numel() for p in gen.model.parameters()) and gen.weights_loaded
    finally:
        engine.batcher().close()
    gpt2 = Engine(generator=tiny_gpt2_dir, encoder=tiny_bert_dir, device="cpu")
    try:
        assert gpt2.batcher().name.startswith("torch")  # GenAI's builder does not export GPT-2: no attempt
    finally:
        gpt2.batcher().close()


def test_a_broken_export_falls_back_to_torch_with_a_notice(tiny_smollm2_dir, tiny_bert_dir, exported, monkeypatch,
                                                          caplog, tmp_path):
    import shutil

    cache = tmp_path / "cache"
    shutil.copytree(exported[1], cache)
    for model in (cache / "onnx").glob("*/model.onnx"):
        model.write_bytes(b"not an onnx graph")
    monkeypatch.setenv("FINASSIST_CACHE", str(cache))
    engine = Engine(generator=tiny_smollm2_dir, encoder=tiny_bert_dir, device="cpu",
                    batch_settings=BatchSettings(backend="onnx", onnx_precision="fp32"))
    with caplog.at_level(logging.WARNING, logger="assistant.engine"):
        backend = engine.batcher()
    try:
        assert backend.name.startswith("torch")
        assert engine.generator.weights_loaded  # torch decodes after all: its weights load now, not on a request
        notices = [r.getMessage() for r in caplog.records if "fast CPU backend cannot load" in r.getMessage()]
        assert len(notices) == 1 and "decoding with torch" in notices[0]
        assert engine.generate(chat(PROMPTS[0]), SamplingParams(max_new_tokens=3)).completion_tokens >= 1
    finally:
        backend.close()


def test_the_summary_rewriter_decodes_its_merged_lora_with_onnx(tiny_smollm2_dir, tiny_bert_dir, exported,
                                                                monkeypatch, tmp_path):
    """A LoRA adapter of the tiny Llama (random, non-zero B so the merge changes the weights): the
    engine's rewriter exports the merged model once and decodes it with ONNX, token for token as torch
    decodes the same merge."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_smollm2_dir)
    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    for name, param in peft.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.5)
    adapter = tmp_path / "adapter"
    peft.save_pretrained(adapter)
    monkeypatch.setenv("FINASSIST_CACHE", str(exported[1]))

    def rewriter(backend: str):
        engine = Engine(generator=tiny_smollm2_dir, encoder=tiny_bert_dir, device="cpu",
                        batch_settings=BatchSettings(backend=backend, onnx_precision="fp32"))
        engine.rewriter_adapter = adapter
        return engine.rewriter()

    fast, tuned = rewriter("auto")
    slow, _ = rewriter("dynamic")
    again = Engine(generator=tiny_smollm2_dir, encoder=tiny_bert_dir, device="cpu",
                   batch_settings=BatchSettings(onnx_precision="fp32"))
    again.rewriter_adapter = adapter
    assert again.rewriter()[0].model_dir == fast.model_dir
    assert not again.loaded("rewriter").weights_loaded  # the merge is exported already: no torch weights read
    again.rewriter()[0].close()
    try:
        assert tuned and isinstance(fast, OnnxBatcher) and not isinstance(slow, OnnxBatcher)
        assert "+adapter" in fast.model_dir.name
        params = SamplingParams(max_new_tokens=10)
        for p in PROMPTS[:2]:
            a, b = fast.submit(chat(p), params), slow.submit(chat(p), params)
            list(a), list(b)
            assert a.new_ids == b.new_ids
        base = next(d for d in (exported[1] / "onnx").iterdir() if d.is_dir() and "+" not in d.name)
        assert fast.model_dir != base  # the merge was exported, not the base model
    finally:
        fast.close()
        slow.close()


def test_serving_on_onnx_never_imports_torch(tiny_smollm2_dir, tiny_bert_dir, exported):
    """The fast CPU path end to end in a fresh interpreter: the service's modules, the engine, the
    tokenizer and a generation, with torch never imported (a second of every server start:
    ``assistant/lazy.py``)."""
    import os
    import subprocess
    import sys

    code = f"""
import sys
import assistant.cli, assistant.server
from assistant.api import Assistant
from assistant.engine import Engine
from assistant.settings import BatchSettings
from assistant.types import SamplingParams
engine = Engine(generator={str(tiny_smollm2_dir)!r}, encoder={str(tiny_bert_dir)!r},
                batch_settings=BatchSettings(onnx_precision="fp32"))
Assistant(engine=engine, documents=False, audit=False)
out = engine.generate([{{"role": "user", "content": "What is EBITDA?"}}], SamplingParams(max_new_tokens=4))
print(engine.backend_name.split()[0], out.completion_tokens, "torch" in sys.modules, "onnxruntime_genai" in sys.modules)
"""
    env = dict(os.environ, FINASSIST_CACHE=str(exported[1]), HF_HUB_OFFLINE="1")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    backend, tokens, torch_imported, genai_imported = run.stdout.split()[-4:]
    assert backend == "onnx" and int(tokens) >= 1 and torch_imported == "False"
    assert genai_imported == "False"  # the model decodes in a process of its own (genai_worker.py)


def test_a_decoding_process_that_died_is_started_again(torch_engine, exported):
    b = OnnxBatcher(torch_engine.chat, exported[0], BatchSettings(), precision="fp32")
    try:
        first = b.submit(chat(PROMPTS[0]), SamplingParams(max_new_tokens=4)).wait()
        b.worker._process.kill()
        b.worker._process.wait(timeout=10)
        again = b.submit(chat(PROMPTS[0]), SamplingParams(max_new_tokens=4)).wait()
        assert b.worker.alive and again.text == first.text  # greedy: the same answer from the new process
    finally:
        b.close()
    assert not b.worker.alive
