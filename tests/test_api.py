"""The Python API (assistant/api.py) over the tiny models: lazy loading per task, the task
table, errors, and that it is one engine shared by every task."""

from __future__ import annotations

import pytest
import torch

from assistant import Assistant
from assistant.errors import DeviceError, InvalidParameterError, ModelNotFoundError, UnknownTaskError
from assistant.models import ENCODER, GENERATOR
from assistant.prompts import available_label_sets
from assistant.tasks import PIPELINES
from assistant.tasks.ask import Answer
from assistant.tasks.classify import Classification
from assistant.tasks.summarize import Summary

TEXT = "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in the corresponding period in 2007."


@pytest.fixture
def fresh(tiny_gpt2_dir, tiny_bert_dir) -> Assistant:
    return Assistant(generator=tiny_gpt2_dir, encoder=tiny_bert_dir, device="cpu")


@pytest.fixture(scope="module")
def shared(tiny_engine) -> Assistant:
    return Assistant(engine=tiny_engine)


def test_nothing_loads_at_construction(fresh):
    assert fresh.engine.loaded(GENERATOR) is None
    assert fresh.engine.loaded(ENCODER) is None


def test_classify_loads_only_the_encoder(fresh):
    result = fresh.classify(TEXT)
    assert isinstance(result, Classification)
    assert fresh.engine.loaded(ENCODER) is not None
    assert fresh.engine.loaded(GENERATOR) is None


def test_ask_loads_only_the_generator(fresh):
    answer = fresh.ask("What is EBITDA?", max_new_tokens=4)
    assert isinstance(answer, Answer)
    assert fresh.engine.loaded(GENERATOR) is not None
    assert fresh.engine.loaded(ENCODER) is None


def test_summarize_reads_with_the_encoder_and_writes_with_the_generator(fresh):
    """Extract-then-rewrite scores sentences with the encoder; the chunked path needs only the generator."""
    summary = fresh.summarize(TEXT, style="headline", max_words=5, method="chunked")
    assert isinstance(summary, Summary)
    assert fresh.engine.loaded(ENCODER) is None
    fresh.summarize(TEXT, max_words=20)
    assert fresh.engine.loaded(ENCODER) is not None and fresh.engine.loaded(GENERATOR) is not None


def test_stream_loads_only_the_generator(fresh):
    pieces = list(fresh.ask_stream("What is EBITDA?", max_new_tokens=8))
    assert pieces
    assert fresh.engine.loaded(ENCODER) is None


def test_models_report_without_loading(fresh, tiny_gpt2_dir, tiny_bert_dir):
    rows = fresh.models()
    assert [r["role"] for r in rows] == [GENERATOR, ENCODER]
    assert [r["location"] for r in rows] == [str(tiny_gpt2_dir), str(tiny_bert_dir)]
    assert not any(r["loaded"] for r in rows)
    assert fresh.engine.loaded(GENERATOR) is None and fresh.engine.loaded(ENCODER) is None


def test_models_with_load(fresh):
    rows = fresh.models(load=True)
    assert all(r["loaded"] and r["parameters"] > 0 for r in rows)
    assert fresh.engine.loaded(GENERATOR) is not None and fresh.engine.loaded(ENCODER) is not None


def test_pipeline_table_and_pipeline_objects(shared):
    assert set(PIPELINES) == {"summarize", "classify", "ask"}
    for name in PIPELINES:
        assert shared.pipeline(name) is shared.pipeline(name)  # one pipeline object per assistant
        assert shared.pipeline(name).engine is shared.engine


@pytest.mark.parametrize("name", ["translate", "", "Summarize", "classify "])
def test_unknown_pipeline_name(shared, name):
    with pytest.raises(UnknownTaskError, match="unknown pipeline .*available: summarize, classify, ask"):
        shared.pipeline(name)


def test_unknown_label_set_fails_before_loading_the_encoder(fresh):
    with pytest.raises(UnknownTaskError, match="sentiment"):
        fresh.classify(TEXT, task="nope")
    assert fresh.engine.loaded(ENCODER) is None


def test_classification_tasks_lists_the_label_sets(shared):
    assert shared.classification_tasks() == available_label_sets()


def test_classify_list_and_single(shared):
    single = shared.classify(TEXT)
    many = shared.classify([TEXT, "The company cut 200 jobs."])
    assert isinstance(single, Classification) and len(many) == 2
    assert many[0].labels == single.labels


def test_ask_accepts_sampling_arguments(shared):
    answer = shared.ask("What is EBITDA?", max_new_tokens=3, temperature=0.8, top_p=0.9, seed=7, stop="\nUser:")
    assert answer.generation.completion_tokens <= 3
    again = shared.ask("What is EBITDA?", max_new_tokens=3, temperature=0.8, top_p=0.9, seed=7, stop="\nUser:")
    assert again.text == answer.text


def test_ask_refuses_bad_sampling(shared):
    with pytest.raises(InvalidParameterError):
        shared.ask("What is EBITDA?", temperature=9)
    with pytest.raises(InvalidParameterError):
        shared.ask("What is EBITDA?", beams=4)


def test_missing_model_fails_on_first_use_not_at_construction(tiny_bert_dir):
    assistant = Assistant(generator="/nonexistent/finassist/generator", encoder=tiny_bert_dir, device="cpu")
    assert isinstance(assistant.classify(TEXT), Classification)  # the encoder side works
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        assistant.ask("What is EBITDA?")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_fails_at_construction(tiny_gpt2_dir):
    with pytest.raises(DeviceError):
        Assistant(generator=tiny_gpt2_dir, device="cuda")


def test_assistants_can_share_an_engine(tiny_engine):
    a, b = Assistant(engine=tiny_engine), Assistant(engine=tiny_engine)
    assert a.engine is b.engine
    assert a.pipeline("classify") is not b.pipeline("classify")
