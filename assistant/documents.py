"""Text out of the files people upload: plain text, Markdown, PDF and CSV columns.

Shared by the UI and the CLI, so a file reads the same way everywhere. Problems
are ``InvalidInputError``s that say what is wrong with the file.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from .errors import EmptyInputError, InputTooLongError, InvalidInputError, NotTextError
from .inputs import ensure_text

#: File types the summariser accepts.
DOCUMENT_TYPES = (".txt", ".md", ".pdf")
#: Largest file read (bytes): a long PDF annual report is a few MB.
MAX_FILE_BYTES = 20_000_000


class UnsupportedFileError(InvalidInputError):
    """A file type the assistant does not read."""

    http_status = 415


def _check_size(path: Path, max_bytes: int) -> None:
    size = path.stat().st_size
    if size > max_bytes:
        raise InputTooLongError(f"{path.name} is {size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB")
    if size == 0:
        raise EmptyInputError(f"{path.name} is empty")


def read_document(path: str | Path, max_bytes: int = MAX_FILE_BYTES) -> str:
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


def _pdf_text(path: Path) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path)
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, OSError) as exc:  # pypdf's ways of saying "not a PDF I can read"
        raise NotTextError(f"{path.name} is not a readable PDF ({exc})") from exc
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text:
        raise EmptyInputError(f"{path.name} has no text layer (a scanned PDF needs OCR first)")
    return text


def read_texts_csv(path: str | Path, column: str | None = None, max_rows: int = 10_000,
                   max_bytes: int = MAX_FILE_BYTES) -> list[str]:
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
        rows = list(csv.reader(io.StringIO(content)))
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
