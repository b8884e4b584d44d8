"""Text out of the files people upload: plain text, Markdown, PDF and CSV columns.

Shared by the UI and the CLI, so a file reads the same way everywhere. Problems
are ``InvalidInputError``s that say what is wrong with the file.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

from .errors import EmptyInputError, InputTooLongError, InvalidInputError, NotTextError
from .inputs import MAX_INPUT_CHARS, ensure_text
from .settings import MAX_UPLOAD_BYTES

#: File types the summariser accepts.
DOCUMENT_TYPES = (".txt", ".md", ".pdf")
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


def _check_size(path: Path, max_bytes: int) -> None:
    size = path.stat().st_size
    if size > max_bytes:
        raise InputTooLongError(f"{path.name} is {size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB")
    if size == 0:
        raise EmptyInputError(f"{path.name} is empty")


def read_document(path: str | Path, max_bytes: int = MAX_UPLOAD_BYTES) -> str:
    """The text of a ``.txt``, ``.md`` or ``.pdf`` file (PDF: the text layer of every page, via pypdf)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in DOCUMENT_TYPES:
        raise UnsupportedFileError(
            f"{path.name}: unsupported file type {suffix or '(none)'}; use one of {', '.join(DOCUMENT_TYPES)}"
        )
    _check_size(path, max_bytes)
    if suffix == ".pdf":
        return ensure_text(_pdf_text(path), name=path.name)
    return ensure_text(path.read_bytes(), name=path.name)


def _pdf_text(path: Path, max_chars: int = MAX_INPUT_CHARS, max_pages: int = MAX_PDF_PAGES,
              max_content_bytes: int = MAX_PDF_CONTENT_BYTES, time_limit_s: float = PDF_TIME_LIMIT_S) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    started = time.monotonic()
    parsed = chars = 0
    pages: list[str] = []
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
            text = (page.extract_text() or "").strip()
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
                pages.append(text)
    except (PdfReadError, ValueError, KeyError, OSError, TypeError, AttributeError, RecursionError) as exc:
        # pypdf's ways of saying "not a PDF I can read" (malformed objects surface as the generic ones)
        raise NotTextError(f"{path.name} is not a readable PDF ({type(exc).__name__})") from exc
    text = "\n\n".join(pages)
    if not text:
        raise EmptyInputError(f"{path.name} has no text layer (a scanned PDF needs OCR first)")
    return text


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
        try:
            rows = list(csv.reader(io.StringIO(content)))
        except csv.Error as exc:  # a field over csv.field_size_limit(), a stray NUL, a broken quote
            raise InvalidInputError(f"{path.name} is not a CSV file this assistant can read: {exc}") from None
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
