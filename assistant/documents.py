"""Text out of the files people upload: plain text, Markdown, PDF, HTML and CSV.

Shared by the UI, the CLI and the document library, so a file reads the same way everywhere.
``read_document`` gives a file's whole text (what the summariser takes); ``read_pages`` gives it
page by page with page numbers (what the library indexes and cites). Problems are
``InvalidInputError``s that say what is wrong with the file.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from .errors import EmptyInputError, InputTooLongError, InvalidInputError, NotTextError
from .inputs import MAX_INPUT_CHARS, ensure_text
from .settings import MAX_UPLOAD_BYTES

#: File types the summariser accepts.
DOCUMENT_TYPES = (".txt", ".md", ".pdf")
#: File types the document library reads (``read_pages``): the summariser's, web pages and tables.
LIBRARY_TYPES = (*DOCUMENT_TYPES, ".html", ".htm", ".csv")
#: A PDF's size says little about the work it costs: pages can share one compressed content stream
#: that inflates many times over and is parsed again for every page. So extraction stops at these
#: limits, checked page by page while it runs, not after.
MAX_PDF_PAGES = 3000
#: Decompressed page content (bytes, all pages together, a shared stream counted on every page that
#: uses it): what the text extractor has to parse. Real reports stay well under it.
MAX_PDF_CONTENT_BYTES = 8_000_000
#: Wall-clock limit on one PDF's text extraction (seconds).
PDF_TIME_LIMIT_S = 10.0


class UnsupportedFileError(InvalidInputError):
    """A file type the assistant does not read."""

    http_status = 415


@dataclass(frozen=True)
class Page:
    """The text of one page of a file: a PDF's page ``number`` (from 1); other files are one page."""

    number: int
    text: str


def _check_size(path: Path, max_bytes: int) -> None:
    size = path.stat().st_size
    if size > max_bytes:
        raise InputTooLongError(f"{path.name} is {size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB")
    if size == 0:
        raise EmptyInputError(f"{path.name} is empty")


def _checked(path: str | Path, types: tuple[str, ...], max_bytes: int) -> tuple[Path, str]:
    """The path and its (lower-case) suffix, once the type is one of ``types`` and the size is within limits."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in types:
        raise UnsupportedFileError(f"{path.name}: unsupported file type {suffix or '(none)'}; use one of {', '.join(types)}")
    _check_size(path, max_bytes)
    return path, suffix


def read_document(path: str | Path, max_bytes: int = MAX_UPLOAD_BYTES) -> str:
    """The text of a ``.txt``, ``.md`` or ``.pdf`` file (PDF: the text layer of every page, via pypdf)."""
    path, suffix = _checked(path, DOCUMENT_TYPES, max_bytes)
    if suffix == ".pdf":
        return ensure_text(_pdf_text(path), name=path.name)
    return ensure_text(path.read_bytes(), name=path.name)


def read_pages(path: str | Path, max_bytes: int = MAX_UPLOAD_BYTES) -> list[Page]:
    """The pages of a file the library reads (``LIBRARY_TYPES``): a PDF's text layer page by page with
    its page numbers (pages without text are left out, the others keep their numbers; a table's rows
    as rows of cells, ``pdf_tables``); a text,
    Markdown, HTML or CSV file as one page. HTML is reduced to its visible text (scripts and styles
    dropped, a table's cells joined with ``|``); a CSV is kept as a table, one row a line."""
    path, suffix = _checked(path, LIBRARY_TYPES, max_bytes)
    if suffix == ".pdf":
        return _pdf_pages(path, tables=True)
    text = ensure_text(path.read_bytes(), name=path.name)
    if suffix in (".html", ".htm"):
        text = ensure_text(html_text(text), name=path.name)
    elif suffix == ".csv":
        text = ensure_text(table_text(_csv_rows(text, path.name)), name=path.name)
    return [Page(1, text)]


def html_text(html: str) -> str:
    """The visible text of an HTML document: blocks on lines of their own, table cells joined by
    `` | `` (a table stays readable as a table), scripts, styles and templates dropped."""
    parser = _TextOfHtml()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line.strip(" |") for line in lines if line.strip(" |"))


class _TextOfHtml(HTMLParser):
    _HIDDEN = {"script", "style", "template", "noscript", "head"}
    _BLOCKS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "table",
               "ul", "ol", "pre", "blockquote", "title", "caption", "dt", "dd", "hr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in self._HIDDEN:
            self._hidden += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append(" | ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden:  # white space in HTML text, line breaks included, is one space
            self.parts.append(" " + " ".join(data.split()) + " ")


def _csv_rows(content: str, name: str) -> list[list[str]]:
    try:
        return list(csv.reader(io.StringIO(content)))
    except csv.Error as exc:  # a field over csv.field_size_limit(), a stray NUL, a broken quote
        raise InvalidInputError(f"{name} is not a CSV file this assistant can read: {exc}") from None


def table_text(table: Iterable[Iterable[object]]) -> str:
    """A table as text: one row a line, cells joined by `` | `` (white space in a cell folded, empty
    rows left out). How the library keeps a CSV file's rows, and how TAT-QA's tables are written."""
    rows = (" | ".join(" ".join(str(cell).split()) for cell in row) for row in table)
    return "\n".join(row for row in rows if row.strip(" |"))


def _pdf_text(path: Path, **limits) -> str:
    """A PDF's text layer, its pages' texts joined by blank lines (``limits``: those of ``_pdf_pages``)."""
    return "\n\n".join(page.text for page in _pdf_pages(path, **limits))


#: Columns of a table in a PDF's text laid out as on the page: three spaces or more between them.
_COLUMN_GAP = re.compile(r"\s{3,}")
#: A cell that is a figure or a year ("$ 1,452.4", "(134)", "12.5%", "2019", "$—"): what makes a line a table row.
_FIGURE_CELL = re.compile(r"^[($€£¥-]*\s?(?:\d[\d,]*(?:\.\d+)?|[—–-])\s?%?\)?$")


def pdf_tables(laid_out: str) -> tuple[str, int]:
    """A page's text laid out as on the page (pypdf's layout mode: columns kept apart by spaces) with
    its table rows written as rows of cells joined by `` | ``, as the library keeps a CSV file's rows,
    and its other lines with their spaces folded; and how many table rows it found. A line is a table
    row when three or more spaces part it into at least two cells, one of them after the first a
    figure or a year; an indented row's first cell is empty (" | 2019 | 2018", a header). Blank lines
    are left out, as in the plain text, so that a table's rows stay one run of lines."""
    lines, rows = [], 0
    for line in laid_out.splitlines():
        if not line.strip():
            continue
        cells = _COLUMN_GAP.split(line.rstrip())
        if len([c for c in cells if c]) >= 2 and any(_FIGURE_CELL.match(c) for c in cells[1:]):
            lines.append(" | ".join(" ".join(c.split()) for c in cells))
            rows += 1
        else:
            lines.append(" ".join(line.split()))
    return "\n".join(lines), rows


#: Table rows a page needs before its laid-out text replaces its plain text (``pdf_tables``).
_MIN_TABLE_ROWS = 2


def _page_text(page, tables: bool) -> str:
    """A PDF page's text; with ``tables``, its tables' rows as rows of cells when it has a table. A page
    without one keeps pypdf's plain text, which follows the text's own order rather than its place."""
    if tables:
        try:
            text, rows = pdf_tables(page.extract_text(extraction_mode="layout") or "")
            if rows >= _MIN_TABLE_ROWS:
                return text
        except (ValueError, KeyError, TypeError, AttributeError, IndexError, ZeroDivisionError):
            pass  # pypdf's layout mode fails on some fonts and matrices: the plain text still serves
    return page.extract_text() or ""


def _pdf_pages(path: Path, max_chars: int = MAX_INPUT_CHARS, max_pages: int = MAX_PDF_PAGES,
               max_content_bytes: int = MAX_PDF_CONTENT_BYTES, time_limit_s: float = PDF_TIME_LIMIT_S,
               tables: bool = False) -> list[Page]:
    """A PDF's pages of text, within the limits; ``tables``: tables kept as rows of cells (``_page_text``)."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    started = time.monotonic()
    parsed = chars = 0
    pages: list[Page] = []
    try:
        reader = PdfReader(path)
        count = len(reader.pages)
        if count > max_pages:
            raise InputTooLongError(f"{path.name} has {count:,} pages; the limit is {max_pages:,}")
        for number, page in enumerate(reader.pages, 1):
            contents = page.get_contents()
            parsed += len(contents.get_data()) if contents is not None else 0
            if parsed > max_content_bytes:  # checked before the page is parsed, not after
                raise InputTooLongError(
                    f"{path.name}: its pages' content decompresses to more than {max_content_bytes / 1e6:.0f} MB "
                    f"by page {number} (a compressed or shared content stream); it is not read further"
                )
            text = _page_text(page, tables).strip()
            chars += len(text)
            if chars > max_chars:
                raise InputTooLongError(
                    f"{path.name} holds more than {max_chars:,} characters of text (by page {number}); "
                    f"the limit is {max_chars:,}"
                )
            if time.monotonic() - started > time_limit_s:
                raise InputTooLongError(
                    f"{path.name}: reading its text took longer than {time_limit_s:g} s (at page {number} of {count})"
                )
            if text:
                pages.append(Page(number, text))
    except (PdfReadError, ValueError, KeyError, OSError, TypeError, AttributeError, RecursionError) as exc:
        # pypdf's ways of saying "not a PDF I can read" (malformed objects surface as the generic ones)
        raise NotTextError(f"{path.name} is not a readable PDF ({type(exc).__name__})") from exc
    if not pages:
        raise EmptyInputError(f"{path.name} has no text layer (a scanned PDF needs OCR first)")
    return pages


def read_texts_csv(path: str | Path, column: str | None = None, max_rows: int = 10_000,
                   max_bytes: int = MAX_UPLOAD_BYTES) -> list[str]:
    """Texts from one column of a CSV file: ``column``, else a column named ``text``/``sentence``, else the first.

    A ``.txt`` file gives one text per non-empty line.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".txt"):
        raise UnsupportedFileError(f"{path.name}: unsupported file type {suffix or '(none)'}; use .csv or .txt")
    _check_size(path, max_bytes)
    content = ensure_text(path.read_bytes(), name=path.name)
    if suffix == ".txt":
        texts = [line.strip() for line in content.splitlines() if line.strip()]
    else:
        rows = _csv_rows(content, path.name)
        header = [h.strip() for h in rows[0]]
        lowered = [h.lower() for h in header]
        if column is not None:
            if column not in header:
                raise InvalidInputError(f"{path.name} has no column {column!r} (columns: {', '.join(header)})")
            index = header.index(column)
        else:
            index = next((lowered.index(n) for n in ("text", "sentence", "clause") if n in lowered), 0)
        texts = [" ".join(row[index].split()) for row in rows[1:] if len(row) > index and row[index].strip()]
    if not texts:
        raise EmptyInputError(f"{path.name} has no texts")
    if len(texts) > max_rows:
        raise InputTooLongError(f"{path.name} has {len(texts):,} texts; the limit is {max_rows:,}")
    return texts
