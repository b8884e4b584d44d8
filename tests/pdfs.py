"""PDFs built for the tests with pypdf: a real text layer, and a decompression bomb."""

from __future__ import annotations

import zlib
from pathlib import Path


def text_pdf(path: Path, pages: list[str]) -> Path:
    """A PDF with one line of text per page, in a real text layer (Helvetica)."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    font = writer._add_object(_helvetica())
    for line in pages:
        escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = DecodedStreamObject()
        stream.set_data(f"BT /F1 12 Tf 72 712 Td ({escaped}) Tj ET\n".encode("latin-1"))
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Contents")] = writer._add_object(stream)
        page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})})
    with path.open("wb") as fh:
        writer.write(fh)
    return path


def table_pdf(path: Path, before: str, rows: list[list[str]], after: str, columns=(72, 260, 360, 460)) -> Path:
    """A one-page PDF with a line of text, a table whose cells are placed in columns (each cell drawn at
    its column's x, as a typesetter places them: no separator in the text layer), and a line after."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    def shown(text: str) -> str:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    ops, y = [f"BT /F1 11 Tf 72 740 Td ({shown(before)}) Tj ET"], 700
    for row in rows:
        ops += [f"BT /F1 11 Tf {x} {y} Td ({shown(cell)}) Tj ET" for x, cell in zip(columns, row) if cell]
        y -= 18
    ops.append(f"BT /F1 11 Tf 72 {y - 20} Td ({shown(after)}) Tj ET")
    writer = PdfWriter()
    stream = DecodedStreamObject()
    stream.set_data("\n".join(ops).encode("latin-1"))
    page = writer.add_blank_page(612, 792)
    page[NameObject("/Contents")] = writer._add_object(stream)
    page[NameObject("/Resources")] = DictionaryObject(
        {NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(_helvetica())})})
    with path.open("wb") as fh:
        writer.write(fh)
    return path


def _helvetica():
    from pypdf.generic import DictionaryObject, NameObject

    return DictionaryObject({
        NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
        NameObject("/BaseFont"): NameObject("/Helvetica"),
    })


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
    font = writer._add_object(_helvetica())
    for _ in range(pages):
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Contents")] = content
        page[NameObject("/Resources")] = DictionaryObject({
            NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})
        })
    with path.open("wb") as fh:
        writer.write(fh)
    return path
