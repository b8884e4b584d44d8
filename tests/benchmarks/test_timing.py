"""benchmarks/timing.py on the tiny GPT-2: plain generate forced to N tokens, the engine's paths, and
the helpers that compare runs."""

from __future__ import annotations

import pytest
import torch

from assistant.engine import Engine
from benchmarks.timing import (
    ENGINE_GENERATE,
    ENGINE_STREAM,
    chat_input_ids,
    engine_generate,
    engine_stream,
    first_difference,
    median,
    plain_generate,
)
from benchmarks.workload import BenchPrompt

PROMPT = BenchPrompt("q", "question", [{"role": "user", "content": "What is EBITDA?"}])


@pytest.fixture(scope="module")
def engine(tiny_gpt2_dir):
    engine = Engine(generator=tiny_gpt2_dir, device="cpu")
    yield engine
    engine.batcher().close()


def test_plain_generate_makes_exactly_n_tokens(engine):
    ids = chat_input_ids(engine.generator, engine, PROMPT.messages)
    new, seconds = plain_generate(engine.generator, ids, 5)
    assert new.shape == (5,) and seconds > 0
    again, _ = plain_generate(engine.generator, ids, 5)
    assert first_difference(new, again) is None  # greedy: the same ids every time


def test_engine_paths_match_plain_greedy_text(engine):
    ids = chat_input_ids(engine.generator, engine, PROMPT.messages)
    plain, _ = plain_generate(engine.generator, ids, 6)
    run, text = engine_generate(engine, PROMPT, 6)
    assert run.path == ENGINE_GENERATE and run.tokens == 6 and run.prompt_tokens == ids.shape[1]
    assert text == engine.generator.tokenizer.decode(plain, skip_special_tokens=True).strip()
    streamed, streamed_text = engine_stream(engine, PROMPT, 6)
    assert streamed.path == ENGINE_STREAM and streamed_text == text
    assert streamed.ttft_s is not None and 0 < streamed.ttft_s <= streamed.wall_s
    assert run.tokens_per_s == pytest.approx(run.tokens / run.wall_s)


def test_first_difference_and_median():
    a = torch.tensor([1, 2, 3, 4])
    assert first_difference(a, torch.tensor([1, 2, 9, 4])) == 2
    assert first_difference(a, torch.tensor([1, 2])) == 2  # a prefix differs where it ends
    assert first_difference(a, a.clone()) is None
    assert median([3.0, None, 1.0, 2.0]) == 2.0
    assert median([None]) is None
