"""Hostile files: PDF bombs and CSV files the readers must refuse quickly with a clear error."""

from __future__ import annotations

import time
import zlib
from pathlib import Path

import pytest

from assistant.documents import _pdf_text, read_document, read_texts_csv
from assistant.errors import AssistantError, InputTooLongError, InvalidInputError

pytestmark = pytest.mark.timeout(120)


def pdf_bomb(path: Path, pages: int = 400, repeat: int = 40_000, text: bool = True) -> Path:
    """A small PDF whose pages all share one compressed content stream that inflates to megabytes
    (``text=False``: drawing operators only, so no text cap is reached)."""
    from pypdf import PdfWriter
    from pypdf.generic import DictionaryObject, EncodedStreamObject, NameObject

    op = b"BT /F1 12 Tf 72 712 Td (Revenue rose) Tj ET\n" if text else b"1 0 0 1 0 0 cm 0 0 m 1 1 l S\n"
    stream = EncodedStreamObject()
    stream._data = zlib.compress(op * repeat, 9)
    stream[NameObject("/Filter")] = NameObject("/FlateDecode")
    writer = PdfWriter()
    content = writer._add_object(stream)
    font = writer._add_object(DictionaryObject({
        NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
        NameObject("/BaseFont"): NameObject("/Helvetica"),
    }))
    for _ in range(pages):
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Contents")] = content
        page[NameObject("/Resources")] = DictionaryObject({
            NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})
        })
    with path.open("wb") as fh:
        writer.write(fh)
    return path


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
