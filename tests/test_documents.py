"""Reading uploaded files: text, Markdown, PDF (a real PDF written by matplotlib), CSV columns."""

from __future__ import annotations

import pytest

from assistant.documents import UnsupportedFileError, read_document, read_texts_csv
from assistant.errors import EmptyInputError, InputTooLongError, InvalidInputError, NotTextError


def _pdf(path, lines: list[str]) -> None:
    """A one-page PDF with a real text layer."""
    from matplotlib.backends.backend_pdf import FigureCanvasPdf
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.5, 11))
    FigureCanvasPdf(fig)
    for i, line in enumerate(lines):
        fig.text(0.1, 0.9 - i * 0.05, line, fontsize=12)
    fig.savefig(path, format="pdf")


def test_text_and_markdown(tmp_path, phrasebank):
    sentence = phrasebank[0]["sentence"]
    (tmp_path / "a.txt").write_text(f"  {sentence}\n", encoding="utf-8")
    (tmp_path / "b.md").write_text(f"# Note\n\n{sentence}", encoding="utf-8")
    assert read_document(tmp_path / "a.txt") == sentence
    assert read_document(tmp_path / "b.md").endswith(sentence)


def test_pdf_text_layer(tmp_path):
    path = tmp_path / "call.pdf"
    _pdf(path, ["Revenue rose 12% to $1.5 billion.", "Operating margin was 21.3%."])
    text = read_document(path)
    assert "Revenue rose 12% to $1.5 billion." in text
    assert "Operating margin was 21.3%." in text


def test_pdf_without_text_and_broken_pdf(tmp_path):
    empty = tmp_path / "scan.pdf"
    _pdf(empty, [])
    with pytest.raises(EmptyInputError, match="no text layer"):
        read_document(empty)
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4 this is not a pdf body")
    with pytest.raises((NotTextError, EmptyInputError), match="broken.pdf"):
        read_document(broken)


@pytest.mark.parametrize("name", ["report.docx", "data.xlsx", "noextension"])
def test_unsupported_types_are_named(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"something")
    with pytest.raises(UnsupportedFileError, match="unsupported file type") as info:
        read_document(path)
    assert info.value.http_status == 415


def test_empty_too_large_and_not_utf8(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(EmptyInputError, match="empty.txt is empty"):
        read_document(tmp_path / "empty.txt")
    (tmp_path / "big.txt").write_text("word " * 1000)
    with pytest.raises(InputTooLongError, match="limit"):
        read_document(tmp_path / "big.txt", max_bytes=100)
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 revenue".encode("latin-1"))
    with pytest.raises(NotTextError, match="UTF-8"):
        read_document(tmp_path / "latin1.txt")


def test_csv_column_choice(tmp_path, phrasebank):
    rows = phrasebank[:3]
    path = tmp_path / "s.csv"
    body = "\n".join(f'{r["id"]},"{r["sentence"]}",{r["label"]}' for r in rows)
    path.write_text("id,Sentence,label\n" + body, encoding="utf-8")
    assert read_texts_csv(path) == [" ".join(r["sentence"].split()) for r in rows]  # the 'sentence' column
    assert read_texts_csv(path, column="label") == [r["label"] for r in rows]
    with pytest.raises(InvalidInputError, match="no column 'text'"):
        read_texts_csv(path, column="text")
    with pytest.raises(InputTooLongError, match="3 texts"):
        read_texts_csv(path, max_rows=2)


def test_csv_first_column_multiline_cells_and_txt(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text('clause\n"Line one\nline two"\n"Second"\n', encoding="utf-8")
    assert read_texts_csv(path) == ["Line one line two", "Second"]
    txt = tmp_path / "x.txt"
    txt.write_text("a\n\n b \n", encoding="utf-8")
    assert read_texts_csv(txt) == ["a", "b"]
    (tmp_path / "header.csv").write_text("text\n", encoding="utf-8")
    with pytest.raises(EmptyInputError, match="no texts"):
        read_texts_csv(tmp_path / "header.csv")
    with pytest.raises(UnsupportedFileError):
        read_texts_csv(tmp_path / "x.pdf")


def test_read_pages_keeps_pdf_page_numbers(tmp_path):
    from pdfs import text_pdf

    from assistant.documents import Page, read_pages

    path = text_pdf(tmp_path / "report.pdf", ["Contents", "", "Revenue rose 12% to $1.5 billion."])
    assert read_pages(path) == [Page(1, "Contents"), Page(3, "Revenue rose 12% to $1.5 billion.")]


def test_read_pages_html_is_its_visible_text_with_tables_as_rows(tmp_path):
    from assistant.documents import read_pages

    path = tmp_path / "ir.html"
    path.write_text(
        "<!doctype html><html><head><title>IR</title><style>td {color: red}</style></head><body>"
        "<script>document.write('hidden')</script><h1>Results &amp; outlook</h1><p>Net income\n  rose.</p>"
        "<table><tr><th>Year</th><th>EPS</th></tr><tr><td>2023</td><td>2.41</td></tr></table></body></html>",
        encoding="utf-8")
    (page,) = read_pages(path)
    assert page.number == 1
    assert page.text == "Results & outlook\nNet income rose.\nYear | EPS\n2023 | 2.41"


def test_read_pages_csv_is_a_table_and_other_types_are_named(tmp_path):
    from assistant.documents import read_pages

    path = tmp_path / "kpis.csv"
    path.write_text('metric,2022,2023\n"Free cash flow, adjusted",1.2,1.5\n,,\n', encoding="utf-8")
    assert read_pages(path)[0].text == "metric | 2022 | 2023\nFree cash flow, adjusted | 1.2 | 1.5"
    other = tmp_path / "sheet.xlsx"
    other.write_bytes(b"PK\x03\x04")
    with pytest.raises(UnsupportedFileError, match=r"\.xlsx; use one of .*\.html"):
        read_pages(other)
    (tmp_path / "empty.html").write_text("<html><script>x()</script></html>", encoding="utf-8")
    with pytest.raises(EmptyInputError):
        read_pages(tmp_path / "empty.html")


SALES = [["", "2019", "2018", "2017"], ["Fixed Price", "$ 1,452.4", "$ 1,146.2", "$ 1,036.9"],
         ["Other", "44.1", "56.7", "70.8"], ["Total sales", "$1,496.5", "$1,202.9", "$1,107.7"]]
SALES_ROWS = ["| 2019 | 2018 | 2017", "Fixed Price | $ 1,452.4 | $ 1,146.2 | $ 1,036.9", "Other | 44.1 | 56.7 | 70.8",
              "Total sales | $1,496.5 | $1,202.9 | $1,107.7"]


def test_laid_out_table_lines_become_rows_of_cells_and_prose_stays_prose():
    from assistant.documents import pdf_tables

    laid_out = ("Net sales by contract type (in millions):\n\n"
                "                      2019          2018\n"
                "Fixed Price           $ 1,452.4     $ 1,146.2\n"
                "Other                 (44.1)        56.7\n\n"
                "     Indented prose says revenue was 5 million dollars.\n"
                "Two  spaces  are  not  a  column   gap and no figure")
    text, rows = pdf_tables(laid_out)
    assert rows == 3
    assert text.split("\n") == ["Net sales by contract type (in millions):", " | 2019 | 2018",
                                "Fixed Price | $ 1,452.4 | $ 1,146.2", "Other | (44.1) | 56.7",
                                "Indented prose says revenue was 5 million dollars.",
                                "Two spaces are not a column gap and no figure"]


def test_a_pdf_tables_rows_reach_the_library_as_rows_of_cells(tmp_path):
    from pdfs import table_pdf

    from assistant.documents import read_pages

    before, after = "Sales by contract type (in millions):", "Other contracts are cost plus."
    path = table_pdf(tmp_path / "10k.pdf", before, SALES, after)
    [page] = read_pages(path)
    assert page.number == 1
    assert [line.strip() for line in page.text.split("\n")] == [before, *SALES_ROWS, after]
    # A summary reads the plain text layer, as before (no cell separators in a call's sentences).
    assert " | " not in read_document(path) and "Fixed Price $ 1,452.4" in read_document(path)


def test_a_table_drawn_by_another_pdf_producer_is_kept_too(tmp_path):
    from matplotlib.backends.backend_pdf import FigureCanvasPdf
    from matplotlib.figure import Figure

    from assistant.documents import read_pages

    fig = Figure(figsize=(8.5, 11))
    FigureCanvasPdf(fig)
    fig.text(0.1, 0.9, "Sales by contract type (in millions):", fontsize=11)
    for i, row in enumerate(SALES):
        for x, cell in zip((0.1, 0.4, 0.55, 0.7), row):
            if cell:
                fig.text(x, 0.85 - i * 0.03, cell, fontsize=11)
    path = tmp_path / "matplotlib.pdf"
    fig.savefig(path, format="pdf")
    [page] = read_pages(path)
    rows = [line.strip() for line in page.text.split("\n") if " | " in line]
    assert rows == SALES_ROWS
