"""The generation-backend contract, exercised with no Engine: a backend built from a loaded model
alone streams, stops at stop strings, cancels, and refuses what does not fit."""

from __future__ import annotations

import pytest

from assistant.batching import Batcher
from assistant.chat import ChatModel
from assistant.continuous import ContinuousBatcher
from assistant.device import resolve_runtime
from assistant.errors import InputTooLongError
from assistant.generation import GenerationBackend, GenerationRequest, cut_at_stop, partial_stop_suffix
from assistant.models import GENERATOR, load_model, resolve_model
from assistant.settings import BatchSettings
from assistant.types import SamplingParams

QUESTION = [{"role": "user", "content": "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn."}]


@pytest.fixture(scope="module")
def chat_model(tiny_gpt2_dir) -> ChatModel:
    loaded = load_model(resolve_model(str(tiny_gpt2_dir), GENERATOR), resolve_runtime("cpu", None))
    return ChatModel(lambda: loaded)


@pytest.fixture(params=[Batcher, ContinuousBatcher], ids=["dynamic", "continuous"])
def backend(request, chat_model):
    b = request.param(chat_model, BatchSettings(max_batch_size=4, max_queue=4))
    yield b
    b.close()


def test_a_backend_built_without_an_engine_streams_and_counts(backend, chat_model):
    assert isinstance(backend, GenerationBackend)
    handle = backend.submit(QUESTION, SamplingParams(max_new_tokens=6))
    assert isinstance(handle, GenerationRequest)
    pieces = list(handle)
    assert handle.result.completion_tokens == 6 and handle.result.finish_reason == "length"
    assert "".join(pieces).strip() == handle.result.text
    assert handle.result.prompt_tokens == chat_model.prompt_ids(QUESTION).shape[1]


def test_a_stop_string_ends_the_text_there(backend):
    free = backend.submit(QUESTION, SamplingParams(max_new_tokens=12))
    text = "".join(free)
    stop = text.strip()[2:5]
    assert len(stop) == 3, f"the tiny model wrote too little to pick a stop string from: {text!r}"
    stopped = backend.submit(QUESTION, SamplingParams(max_new_tokens=12, stop=(stop,)))
    "".join(stopped)
    assert stopped.result.finish_reason == "stop" and stop not in stopped.result.text
    assert text.strip().startswith(stopped.result.text)


def test_cancel_ends_the_request_as_cancelled(backend):
    handle = backend.submit(QUESTION, SamplingParams(max_new_tokens=200))
    for _ in handle:
        handle.cancel()
    assert handle.result.finish_reason == "cancelled"
    assert handle.result.completion_tokens < 200


def test_prompt_over_the_window_is_refused_at_submit(backend, chat_model):
    with pytest.raises(InputTooLongError, match="context window"):
        backend.submit(QUESTION, SamplingParams(max_new_tokens=chat_model.context_window))


def test_stop_string_helpers():
    assert cut_at_stop("profit rose\nUser:", ["\nUser:"]) == ("profit rose", True)
    assert cut_at_stop("profit rose", ["\nUser:"]) == ("profit rose", False)
    assert partial_stop_suffix("profit rose\nUs", ["\nUser:"]) == 3
    assert partial_stop_suffix("profit rose", ["\nUser:"]) == 0
