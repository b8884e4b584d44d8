"""The engine (assistant/engine.py) on tiny random models: generation, streaming, stop strings,
cancellation, context limits, sampling parameters, and sentence encoding with sliding windows."""

from __future__ import annotations

import math
import threading
import time

import pytest
import torch

from assistant.generation import GenerationRequest
from assistant.engine import Engine
from assistant.types import Generation, SamplingParams
from assistant.errors import InputTooLongError, InvalidParameterError
from assistant.models import ENCODER, GENERATOR
from assistant.prompts import load_prompt

QUESTION = [
    {"role": "system", "content": "You are a careful financial assistant."},
    {"role": "user", "content": "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn. What does that mean?"},
]


# ------------------------------------------------------------------ prompts


def test_plain_template_is_used_for_a_model_without_chat_template(tiny_engine):
    assert not getattr(tiny_engine.generator.tokenizer, "chat_template", None)
    plain = load_prompt("chat")["plain_template"]
    roles = plain["roles"]
    expected = (
        plain["turn"].format(role=roles["system"], content=QUESTION[0]["content"])
        + plain["turn"].format(role=roles["user"], content=QUESTION[1]["content"])
        + plain["generation_prompt"].format(role=roles["assistant"])
    )
    assert tiny_engine.render_chat(QUESTION) == expected
    assert tiny_engine.plain_stop_strings() == tuple(plain["stop"])


def test_context_window_comes_from_the_model_config(tiny_engine):
    assert tiny_engine.context_window == 1024 == tiny_engine.generator.model.config.n_positions


def test_count_tokens_uses_the_right_tokenizer(tiny_engine):
    text = "Componenta's net sales doubled to EUR131m from EUR76m."
    gen = tiny_engine.generator.tokenizer
    enc = tiny_engine.encoder.tokenizer
    assert tiny_engine.count_tokens(text) == len(gen(text, add_special_tokens=False)["input_ids"])
    assert tiny_engine.count_tokens(text, ENCODER) == len(enc(text, add_special_tokens=False)["input_ids"])
    assert tiny_engine.count_tokens(text) != tiny_engine.count_tokens(text, ENCODER)  # two different vocabularies


# --------------------------------------------------------------- generation


def _middle_word(text: str) -> str:
    """A stop string taken from the model's own greedy output: a word from its middle whose
    first occurrence is neither at the start nor at the end (so stopping there shortens it)."""
    words = text.split()
    for word in words[len(words) // 2 :] + words[: len(words) // 2]:
        first = text.find(word)
        if len(word) >= 4 and 0 < first < len(text) * 0.8:
            return word
    raise AssertionError(f"precondition: no usable stop word in {text!r}")


@pytest.mark.parametrize("max_new_tokens", [1, 7, 40])
def test_generate_counts_tokens_and_stops_at_the_length_limit(tiny_engine, max_new_tokens):
    result = tiny_engine.generate(QUESTION, SamplingParams(max_new_tokens=max_new_tokens))
    assert isinstance(result, Generation)
    assert result.prompt_tokens == tiny_engine.count_tokens(tiny_engine.render_chat(QUESTION))
    assert 1 <= result.completion_tokens <= max_new_tokens
    assert result.finish_reason in ("length", "stop")
    if result.finish_reason == "length":
        assert result.completion_tokens == max_new_tokens
    assert result.text == result.text.strip()


def test_random_model_without_stop_runs_to_the_length_limit(tiny_engine):
    result = tiny_engine.generate(QUESTION, SamplingParams(max_new_tokens=60))
    # this seeded random model neither writes EOS nor a plain-template stop string in 60 tokens
    assert result.finish_reason == "length"
    assert result.completion_tokens == 60
    assert result.text


def test_greedy_generation_is_deterministic(tiny_engine):
    params = SamplingParams(max_new_tokens=40)
    first = tiny_engine.generate(QUESTION, params)
    second = tiny_engine.generate(QUESTION, params)
    assert first == second


def test_seeded_sampling_is_reproducible_and_depends_on_the_seed(tiny_engine):
    def sample(seed):
        return tiny_engine.generate(QUESTION, SamplingParams(max_new_tokens=30, temperature=1.0, seed=seed)).text

    assert sample(1) == sample(1)
    assert sample(1) != sample(2)
    greedy = tiny_engine.generate(QUESTION, SamplingParams(max_new_tokens=30)).text
    assert sample(1) != greedy


def test_different_prompts_give_different_prompt_counts(tiny_engine):
    short = tiny_engine.generate(QUESTION[1:], SamplingParams(max_new_tokens=2))
    full = tiny_engine.generate(QUESTION, SamplingParams(max_new_tokens=2))
    assert full.prompt_tokens > short.prompt_tokens


def test_stop_string_cuts_the_text_and_finishes_with_stop(tiny_engine):
    params = SamplingParams(max_new_tokens=80)
    full = tiny_engine.generate(QUESTION, params)
    assert full.finish_reason == "length"
    stop = _middle_word(full.text)
    cut = full.text.find(stop)
    stopped = tiny_engine.generate(QUESTION, SamplingParams(max_new_tokens=80, stop=(stop,)))
    assert stopped.finish_reason == "stop"
    assert stop not in stopped.text
    assert stopped.text == full.text[:cut].strip()
    assert stopped.completion_tokens < full.completion_tokens


# ----------------------------------------------------------------- streaming


def test_stream_concatenates_to_the_generate_text(tiny_engine):
    params = SamplingParams(max_new_tokens=60)
    expected = tiny_engine.generate(QUESTION, params)
    stream = tiny_engine.stream(QUESTION, params)
    assert isinstance(stream, GenerationRequest)
    pieces = list(stream)
    assert len(pieces) > 1
    assert all(isinstance(p, str) and p for p in pieces)
    assert "".join(pieces).strip() == expected.text
    assert stream.result == expected


def test_stream_honours_stop_strings_without_leaking_them(tiny_engine):
    full = tiny_engine.generate(QUESTION, SamplingParams(max_new_tokens=80))
    stop = _middle_word(full.text)
    params = SamplingParams(max_new_tokens=80, stop=(stop,))
    expected = tiny_engine.generate(QUESTION, params)
    stream = tiny_engine.stream(QUESTION, params)
    pieces = list(stream)
    joined = "".join(pieces)
    assert stop not in joined  # the held-back partial match is never shown
    assert joined.strip() == expected.text
    assert stream.result.finish_reason == "stop"
    assert stream.result.text == expected.text


def _wait_idle(engine: Engine) -> None:
    deadline = time.monotonic() + 10
    while engine.batcher().active() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.batcher().active() == 0, "the generation is still running"


def test_breaking_out_of_a_stream_stops_the_generation(tiny_engine):
    stream = tiny_engine.stream(QUESTION, SamplingParams(max_new_tokens=900))
    for _piece in stream:
        break
    # leaving the loop closes the iterator, which cancels the request: its batch row is freed
    _wait_idle(tiny_engine)
    assert stream.result.finish_reason == "cancelled"
    assert stream.result.completion_tokens < 900


def test_cancel_ends_the_generation_early(tiny_engine):
    stream = tiny_engine.stream(QUESTION, SamplingParams(max_new_tokens=900))
    pieces = []
    for piece in stream:
        pieces.append(piece)
        if len(pieces) == 1:
            stream.cancel()
    assert stream.result.finish_reason == "cancelled"
    assert 1 <= stream.result.completion_tokens < 900
    assert stream.result.text == "".join(pieces).strip()
    _wait_idle(tiny_engine)


# ------------------------------------------------------------- context limit


def test_prompt_longer_than_the_context_is_refused(tiny_engine):
    long = [{"role": "user", "content": "Net sales rose. " * 600}]
    assert tiny_engine.count_tokens(long[0]["content"]) > tiny_engine.context_window
    with pytest.raises(InputTooLongError, match="context window of 1024"):
        tiny_engine.generate(long, SamplingParams(max_new_tokens=8))
    before = set(threading.enumerate())
    with pytest.raises(InputTooLongError):
        tiny_engine.stream(long, SamplingParams(max_new_tokens=8))
    assert set(threading.enumerate()) <= before  # refused before any thread started


def test_prompt_plus_new_tokens_over_the_context_is_refused(tiny_engine):
    messages = [{"role": "user", "content": "Net sales rose. " * 150}]
    prompt_tokens = tiny_engine.count_tokens(tiny_engine.render_chat(messages))
    assert prompt_tokens < tiny_engine.context_window
    room = tiny_engine.context_window - prompt_tokens
    assert tiny_engine.generate(messages, SamplingParams(max_new_tokens=room)).completion_tokens <= room
    with pytest.raises(InputTooLongError, match=f"{prompt_tokens} tokens"):
        tiny_engine.generate(messages, SamplingParams(max_new_tokens=room + 1))


# ---------------------------------------------------------- sampling params


def test_sampling_defaults_are_greedy():
    params = SamplingParams()
    assert params.temperature == 0 and params.max_new_tokens == 256
    kwargs = params.generate_kwargs()
    assert kwargs["do_sample"] is False and kwargs["max_new_tokens"] == 256
    assert "repetition_penalty" not in kwargs


def test_sampling_with_temperature_samples():
    kwargs = SamplingParams(temperature=0.7, top_p=0.9, repetition_penalty=1.1).generate_kwargs()
    assert kwargs["do_sample"] is True
    assert kwargs["temperature"] == pytest.approx(0.7) and kwargs["top_p"] == pytest.approx(0.9)
    assert kwargs["repetition_penalty"] == pytest.approx(1.1)


def test_empty_stop_strings_are_dropped():
    assert SamplingParams(stop=("", "\n\n", "")).stop == ("\n\n",)
    assert SamplingParams(stop=["END"]).stop == ("END",)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_new_tokens": 0},
        {"max_new_tokens": -1},
        {"max_new_tokens": 32769},
        {"max_new_tokens": 10.0},
        {"max_new_tokens": "10"},
        {"temperature": -0.1},
        {"temperature": 2.5},
        {"temperature": math.nan},
        {"top_p": 0.0},
        {"top_p": 1.01},
        {"repetition_penalty": 0.4},
        {"repetition_penalty": 2.5},
    ],
    ids=lambda k: ",".join(f"{a}={b!r}" for a, b in k.items()),
)
def test_invalid_sampling_params_are_refused(kwargs):
    with pytest.raises(InvalidParameterError, match=next(iter(kwargs))):
        SamplingParams(**kwargs)


def test_max_new_tokens_refuses_booleans():
    """``True`` is an ``int`` in Python; like ``inputs.ensure_int``, a boolean must not pass as a count."""
    with pytest.raises(InvalidParameterError):
        SamplingParams(max_new_tokens=True)


# ------------------------------------------------------------------ encoding


TEXTS = [
    "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in the corresponding period in 2007.",
    "The company's net sales fell by 5 % and it cut 200 jobs.",
    "The annual general meeting will be held in Helsinki on 3 April.",
]


def test_embeddings_have_one_normalised_row_per_text(tiny_engine):
    emb = tiny_engine.encode(TEXTS)
    assert emb.shape == (len(TEXTS), 32)  # the tiny BERT's hidden size
    assert emb.dtype is torch.float32
    assert torch.allclose(emb.norm(dim=-1), torch.ones(len(TEXTS)), atol=1e-5)
    assert not torch.allclose(emb[0], emb[1], atol=1e-3)


def test_batched_and_single_encoding_agree(tiny_engine):
    batched = tiny_engine.encode(TEXTS)
    singles = torch.cat([tiny_engine.encode([t]) for t in TEXTS])
    assert torch.allclose(batched, singles, atol=1e-5)
    assert torch.allclose(tiny_engine.encode(TEXTS, batch_size=1), batched, atol=1e-5)
    assert torch.allclose(tiny_engine.encode(TEXTS, batch_size=2), batched, atol=1e-5)


def _first_window_prefix(engine: Engine, text: str) -> str:
    """The text that fits in the encoder's first window, cut at the tokenizer's own offsets."""
    tok = engine.encoder.tokenizer
    window = engine.encoder.context_window
    enc = tok(text, truncation=True, max_length=window, return_offsets_mapping=True)
    end = max(e for _, e in enc["offset_mapping"])
    return text[:end]


def test_long_text_is_encoded_over_all_its_windows(tiny_engine, phrasebank):
    long = " ".join(r["sentence"] for r in phrasebank[:30])
    window = tiny_engine.encoder.context_window
    assert tiny_engine.count_tokens(long, ENCODER) > 3 * window  # several windows
    emb = tiny_engine.encode([long])
    assert emb.shape == (1, tiny_engine.encoder.model.config.hidden_size)
    assert emb.norm().item() == pytest.approx(1.0, abs=1e-5)
    first = tiny_engine.encode([_first_window_prefix(tiny_engine, long)])
    assert not torch.allclose(emb, first, atol=1e-3), "the long text was truncated to its first window"


def test_texts_differing_only_after_the_first_window_get_different_embeddings(tiny_engine, phrasebank):
    shared = " ".join(r["sentence"] for r in phrasebank[:12])
    assert tiny_engine.count_tokens(shared, ENCODER) > tiny_engine.encoder.context_window
    a = shared + " " + " ".join(r["sentence"] for r in phrasebank[100:110])
    b = shared + " " + " ".join(r["sentence"] for r in phrasebank[200:210])
    emb = tiny_engine.encode([a, b])
    assert not torch.allclose(emb[0], emb[1], atol=1e-3)


def test_long_and_short_texts_batched_together_keep_their_rows(tiny_engine, phrasebank):
    long = " ".join(r["sentence"] for r in phrasebank[:30])
    batched = tiny_engine.encode([TEXTS[0], long, TEXTS[1]])
    assert batched.shape[0] == 3
    assert torch.allclose(batched[0], tiny_engine.encode([TEXTS[0]])[0], atol=1e-5)
    assert torch.allclose(batched[1], tiny_engine.encode([long])[0], atol=1e-5)
    assert torch.allclose(batched[2], tiny_engine.encode([TEXTS[1]])[0], atol=1e-5)


# -------------------------------------------------------------- lazy loading


def test_models_load_lazily_and_once(fresh_engine):
    assert fresh_engine.loaded(GENERATOR) is None and fresh_engine.loaded(ENCODER) is None
    fresh_engine.encode(["Net sales rose."])
    assert fresh_engine.loaded(GENERATOR) is None
    enc = fresh_engine.loaded(ENCODER)
    assert enc is not None and enc.load_seconds > 0
    fresh_engine.encode(["Net sales fell."])
    assert fresh_engine.loaded(ENCODER) is enc


def test_describe_reports_without_loading(fresh_engine, tiny_gpt2_dir, tiny_bert_dir):
    rows = {row["role"]: row for row in fresh_engine.describe()}
    assert set(rows) == {GENERATOR, ENCODER}
    assert rows[GENERATOR]["location"] == str(tiny_gpt2_dir)
    assert rows[ENCODER]["location"] == str(tiny_bert_dir)
    assert rows[GENERATOR]["architecture"] == "GPT2LMHeadModel"
    assert rows[ENCODER]["architecture"] == "BertModel"
    assert all(not row["loaded"] and row["device"] == "cpu" and row["dtype"] == "float32" for row in rows.values())
    assert fresh_engine.loaded(GENERATOR) is None and fresh_engine.loaded(ENCODER) is None


def test_describe_with_load_reports_sizes(fresh_engine):
    rows = {row["role"]: row for row in fresh_engine.describe(load=True)}
    gen = fresh_engine.loaded(GENERATOR)
    assert rows[GENERATOR]["loaded"] and rows[ENCODER]["loaded"]
    assert rows[GENERATOR]["parameters"] == sum(p.numel() for p in gen.model.parameters())
    assert rows[GENERATOR]["context_window"] == 1024
    assert rows[ENCODER]["context_window"] == 128


# ------------------------------------------------------- chat-template models


@pytest.fixture(scope="module")
def tiny_chat_engine(tiny_gpt2_dir, tmp_path_factory):
    """The tiny GPT-2 with a chat template added to its tokenizer (the SmolLM2 path)."""
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("tiny-chat")
    for f in tiny_gpt2_dir.iterdir():
        (out / f.name).write_bytes(f.read_bytes())
    tok = AutoTokenizer.from_pretrained(out)
    tok.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    tok.save_pretrained(out)
    return Engine(generator=out, device="cpu")


def test_chat_template_is_used_when_the_model_has_one(tiny_chat_engine):
    rendered = tiny_chat_engine.render_chat(QUESTION)
    assert rendered == (
        f"<|system|>{QUESTION[0]['content']}\n<|user|>{QUESTION[1]['content']}\n<|assistant|>"
    )
    assert tiny_chat_engine.plain_stop_strings() == ()  # the plain template's stops do not apply
    result = tiny_chat_engine.generate(QUESTION, SamplingParams(max_new_tokens=5))
    assert result.prompt_tokens == tiny_chat_engine.count_tokens(rendered)
    assert result.completion_tokens == 5
