"""Hostile files: PDF bombs and CSV files the readers must refuse quickly with a clear error."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from assistant.documents import _pdf_text, read_document, read_texts_csv
from assistant.errors import AssistantError, InputTooLongError, InvalidInputError

from pdfs import pdf_bomb

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("text", [True, False])
def test_pdf_bomb_is_refused_quickly(tmp_path, text):
    bomb = pdf_bomb(tmp_path / "bomb.pdf", text=text)
    assert bomb.stat().st_size < 100_000
    started = time.monotonic()
    with pytest.raises(InputTooLongError) as caught:
        read_document(bomb)
    assert time.monotonic() - started < 20  # all its pages would take minutes
    assert "bomb.pdf" in str(caught.value)


def test_pdf_page_count_and_time_are_capped(tmp_path):
    bomb = pdf_bomb(tmp_path / "pages.pdf", pages=50, repeat=10)
    with pytest.raises(InputTooLongError, match="pages"):
        _pdf_text(bomb, max_pages=20)
    with pytest.raises(InputTooLongError, match="took longer"):
        _pdf_text(bomb, time_limit_s=0.0)
    assert "Revenue rose" in _pdf_text(bomb)


def test_garbage_pdf_is_a_user_error(tmp_path):
    for name, data in (("trunc.pdf", b"%PDF-1.4\n1 0 obj <<"), ("junk.pdf", b"not a pdf at all" * 100)):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(AssistantError):
            read_document(path)


def test_csv_field_over_the_csv_limit_is_a_clear_error(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text('text\n"' + "x" * 200_000 + '"\n', encoding="utf-8")
    with pytest.raises(InvalidInputError, match="big.csv"):
        read_texts_csv(path)


def test_text_files_with_lone_surrogate_escapes_stay_text(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes("Revenue \\ud800 rose\x07".encode())  # the escape as characters, a control character
    assert read_document(path) == "Revenue \\ud800 rose"
