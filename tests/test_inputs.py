"""Input checks shared by every task and front door (assistant/inputs.py)."""

from __future__ import annotations

import pytest

from assistant.errors import EmptyInputError, InputTooLongError, InvalidParameterError, NotTextError
from assistant.inputs import MAX_INPUT_CHARS, ensure_choice, ensure_int, ensure_text, ensure_texts


def test_text_is_returned_stripped():
    assert ensure_text("  Net sales rose 5 %.\n") == "Net sales rose 5 %."


def test_utf8_bytes_are_decoded():
    assert ensure_text("Liikevaihto kasvoi 5 % – €".encode()) == "Liikevaihto kasvoi 5 % – €"
    assert ensure_text(bytearray(b"profit")) == "profit"


@pytest.mark.parametrize("data", [b"\xff\xfe\x00a", "caf\u00e9".encode("latin-1"), b"ok then \x80"])
def test_non_utf8_bytes_are_not_text(data):
    with pytest.raises(NotTextError, match="not UTF-8"):
        ensure_text(data)


@pytest.mark.parametrize("value", [None, 42, 3.5, ["a"], {"text": "a"}])
def test_non_strings_are_not_text(value):
    with pytest.raises(NotTextError, match="must be a string"):
        ensure_text(value)


def test_nul_bytes_are_refused_as_binary():
    with pytest.raises(NotTextError, match="NUL"):
        ensure_text("PK\x03\x04\x00\x00binary")


@pytest.mark.parametrize("value", ["", "   ", "\n\t \n", b"", b"  \n"])
def test_empty_or_blank_input_is_empty(value):
    with pytest.raises(EmptyInputError):
        ensure_text(value)


def test_error_messages_name_the_input():
    with pytest.raises(EmptyInputError, match="question"):
        ensure_text("  ", "question")


def test_too_long_input_is_refused_not_cut():
    assert ensure_text("x" * 100, max_chars=100) == "x" * 100
    with pytest.raises(InputTooLongError, match="101"):
        ensure_text("x" * 101, max_chars=100)


def test_default_limit_is_generous_but_finite():
    assert MAX_INPUT_CHARS >= 100_000  # an ECTSum transcript is ~50k characters
    with pytest.raises(InputTooLongError):
        ensure_text("a" * (MAX_INPUT_CHARS + 1))


def test_limit_applies_after_stripping():
    assert ensure_text("  " + "y" * 10 + "  ", max_chars=10) == "y" * 10


def test_ensure_texts_checks_every_item():
    assert ensure_texts([" a ", b"b", "c"]) == ["a", "b", "c"]
    assert ensure_texts(("a", "b")) == ["a", "b"]
    with pytest.raises(EmptyInputError, match=r"texts\[1\]"):
        ensure_texts(["a", "  "])
    with pytest.raises(NotTextError, match=r"texts\[0\]"):
        ensure_texts([None])


@pytest.mark.parametrize("value", ["a single string", b"bytes", 42, None])
def test_ensure_texts_wants_a_list(value):
    with pytest.raises(NotTextError):
        ensure_texts(value)


def test_ensure_texts_refuses_an_empty_list():
    with pytest.raises(EmptyInputError):
        ensure_texts([])


@pytest.mark.parametrize("value", [3, 50, 1000])
def test_ensure_int_accepts_the_range(value):
    assert ensure_int(value, "max_words", 3, 1000) == value


@pytest.mark.parametrize("value", [2, 1001, -5, "10", 10.0, True, None])
def test_ensure_int_refuses_out_of_range_and_non_integers(value):
    with pytest.raises(InvalidParameterError, match="max_words"):
        ensure_int(value, "max_words", 3, 1000)


def test_ensure_choice():
    assert ensure_choice("bullets", "style", ("bullets", "headline")) == "bullets"
    with pytest.raises(InvalidParameterError, match="bullets, headline"):
        ensure_choice("poem", "style", ("bullets", "headline"))
    with pytest.raises(InvalidParameterError):
        ensure_choice(None, "style", ("bullets",))
