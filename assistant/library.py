"""The document library: the user's own files, parsed, cut into passages that remember where they came
from, and indexed twice, so that questions can be answered from them with citations.

``DocumentStore`` is the interface the rest of the assistant uses (add, list, remove, search);
``SQLiteDocumentStore`` keeps a library in one SQLite file (by default in the user's data folder,
``$FINASSIST_LIBRARY`` or a path to move it), so it survives restarts with no server to run. A team's
server-backed store (PostgreSQL with pgvector, say) can replace it by implementing the same methods.

* Files are read by ``assistant.documents.read_pages`` (PDF page by page, text, Markdown, HTML, CSV) and
  cut into passages of about ``CHUNK_CHARS`` characters at line and sentence ends, each with its page
  and character span on that page.
* Every passage is indexed lexically (SQLite FTS5, ranked by BM25) and densely (the encoder's sentence
  embedding, stored as a float32 blob). A search ranks the passages both ways and fuses the two
  rankings by reciprocal rank fusion.
* A file's content hash identifies it: adding the same bytes again adds nothing. A file with the name
  of one already in the library replaces it (a new version of a report).
* Each document is written in one transaction, after it has been read and embedded: a ``docs add``
  killed at any moment leaves the library as it was before that document.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from .documents import LIBRARY_TYPES, Page, read_pages
from .errors import InvalidInputError, InvalidParameterError
from .figures import YEAR, stated_unit
from .inputs import ensure_text

#: Environment variable naming the library file ("off": no library).
LIBRARY_ENV = "FINASSIST_LIBRARY"
#: Settings of ``LIBRARY_ENV`` that turn the library off.
OFF = ("off", "none", "0", "false")
#: Target passage length (characters), about 100-150 encoder tokens. On TAT-QA dev (docs/results.md)
#: 400 found the question's document more often than 800, 1,500 or whole documents, lexically and
#: (more so) by embedding: MiniLM's mean-pooled embedding of a long table blurs its rows.
CHUNK_CHARS = 400
#: Characters a passage shares with the one before, so a line cut at a boundary is whole in one.
CHUNK_OVERLAP = 80
#: Weighted reciprocal rank fusion (Cormack et al. 2009): a passage's fused score is the sum over the
#: rankings of weight / (RRF_K + rank). Chosen on one half of TAT-QA dev's documents and reported on
#: the other (docs/results.md): BM25 finds a question's table more often than MiniLM does (figures
#: and row labels are words to it), so it weighs double, and a small k lets the top ranks count.
RRF_K = 10
LEXICAL_WEIGHT = 2.0
#: How deep each ranking goes before fusion.
CANDIDATES = 50
#: Places a passage loses in the fused ranking when it shows no year a question names ("What was X in
#: 2018?" and a table of 2020 and 2019): it ranks at its place plus these, ahead of the passage whose own
#: place that is. Its table's header counts (the years above a passage cut from a table's middle), though
#: it is not indexed: as a word, a year every table has only blurred BM25. Chosen on the tune half of
#: TAT-QA dev (0, 3, 5, 10, or last of all: recall@5 0.822, 0.836, 0.842, 0.836, 0.835); docs/results.md
#: reports the other half.
MISSING_YEAR_PLACES = 5
#: Words left out of a lexical search: the most common ones (BM25 weighs them little, but an OR query
#: over them matches nearly every passage and costs time), and the words a question uses to ask for
#: arithmetic ("the percentage change between ..."), which say how to compute, not where the figures
#: are: rare in reports, BM25 weighed them heavily and ranked the passages that happen to use them
#: (on the tune half of TAT-QA dev, recall@5 0.818 with them, 0.830 without).
SEARCH_STOPWORDS = frozenset(
    "a an and are as at be by did do does for from had has have how i in is it its of on or that the their "
    "this to was were what when where which who why will with "
    "average between change decrease difference increase many much percentage respectively".split()
)
#: Words of a question that say how it asks (what to compute, which one, why) rather than what it is
#: about; left out of ``query_terms`` with ``SEARCH_STOPWORDS`` and scikit-learn's English stop words: a
#: passage that answers "which component of revenue was the greatest" need not say "component" or
#: "greatest", only "revenue" and its parts. Words of time are among them too: they say when, and
#: documents write a period many ways ("the third quarter": Q3, 3Q). The first lines are question
#: vocabulary and time; the last are the other words of the questions on the tune half of TAT-QA dev
#: that their own document holds less than half the time (``scripts/tune-ask-gate.py``), less two that
#: name a subject ("male", "PPE"); "respective" ("What are the respective X of A and B?") is there as
#: "respectively" is among the search's stop words: in a library of a few documents none may say it, and
#: it weighed most.
_QUESTION_WORDS = frozenset(
    "all also amount any across after among been both calculate calculation company component components compared "
    "during each end ended fiscal greater greatest group higher highest largest larger less lower lowest "
    "more most net one over per percent portion proportion rate ratio reason reasons shown show sum table "
    "than there these those three total two type types under value would year years "
    "quarter quarters quarterly month months monthly half week weeks period "
    "absolute altogether annual calculated caused constitution exceed expensive highlighted made main nominal "
    "often periods primary provide recognised values "
    "respective".split()
)
#: A progress callback: ``progress(done, total, stage)`` (the summariser's signature).
Progress = Callable[[int, int, str], None]
#: Sentence embeddings: texts -> an (n, d) array of L2-normalised rows.
Embed = Callable[[Sequence[str]], np.ndarray]


class DocumentNotFoundError(InvalidInputError):
    """No document in the library has that name or id."""

    http_status = 404


@dataclass(frozen=True)
class DocumentInfo:
    id: int
    name: str
    #: Where it was added from: a path on the machine that added it, or "upload" (HTTP).
    source: str
    sha256: str
    #: Pages with text (a PDF's; other files are one page).
    pages: int
    #: Passages it was cut into.
    chunks: int
    #: ISO 8601 UTC.
    added: str

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "source": self.source, "sha256": self.sha256,
                "pages": self.pages, "chunks": self.chunks, "added": self.added}


@dataclass(frozen=True)
class AddResult:
    """What ``add`` did with one file: ``created`` False when the same content was already there."""

    document: DocumentInfo
    created: bool
    #: The document of the same name this one replaced, if any.
    replaced: DocumentInfo | None = None

    def __str__(self) -> str:
        """One line, as ``finassist docs add`` and the web UI's Documents tab say it."""
        d = self.document
        what = "replaced" if self.replaced else "added" if self.created else "already in the library:"
        return f"{what} {d.name} ({counted(d.pages, 'page')}, {counted(d.chunks, 'passage')})"


def counted(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless one: "1 page", "3 passages"."""
    return f"{n} {noun}{'s' * (n != 1)}"


@dataclass(frozen=True)
class Passage:
    """One retrieved passage: where it is, its text, and how it ranked."""

    document_id: int
    document: str
    page: int
    #: Character span on the page.
    start: int
    end: int
    text: str
    #: Reciprocal-rank-fusion score: comparable between the passages of one search, not across searches.
    score: float
    #: Cosine similarity of the passage and the query embeddings: an absolute measure of how close they are.
    similarity: float
    #: The share of the query's subject words the passage contains, each weighted by its rarity in the
    #: library (``query_terms``; measured by ``SQLiteDocumentStore.search``); 1.0 where a store does not.
    coverage: float = 1.0
    #: The unit the passage's page says its figures are counted in ("thousand", "million", "billion";
    #: ``figures.stated_unit``), often in a caption outside the passage: "(in millions)" above a table.
    unit: str = ""

    def to_dict(self) -> dict:
        return {"document_id": self.document_id, "document": self.document, "page": self.page,
                "start": self.start, "end": self.end, "text": self.text, "score": self.score,
                "similarity": self.similarity, "coverage": self.coverage, "unit": self.unit}


@runtime_checkable
class DocumentStore(Protocol):
    """Where the user's documents live. ``add`` must be all or nothing for each document."""

    def add(self, path: str | Path, *, name: str | None = None, source: str | None = None,
            progress: Progress | None = None) -> AddResult: ...

    def list(self) -> list[DocumentInfo]: ...

    def remove(self, name_or_id: str | int) -> DocumentInfo: ...

    def search(self, query: str, k: int = 5, documents: Sequence[str | int] | None = None) -> list[Passage]: ...

    def count(self) -> int: ...

    def close(self) -> None: ...


def default_library_path() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("finassist", appauthor=False)) / "library.sqlite"


def library_path(path: str | Path | None = None) -> Path | None:
    """The library file ``path`` names, else ``$FINASSIST_LIBRARY``, else the default; None when the
    setting is "off"."""
    where = str(path) if path is not None else os.environ.get(LIBRARY_ENV, "")
    if where.strip().lower() in OFF:
        return None
    return Path(where.strip()).expanduser() if where.strip() else default_library_path()


# ------------------------------------------------------------------ passages


@dataclass(frozen=True)
class Chunk:
    page: int
    start: int
    end: int
    #: The passage's own lines, ``page.text[start:end]`` stripped: what is indexed (BM25 and embedding).
    text: str
    #: The header rows of the table the passage was cut from, repeated above it (``_table_headers``).
    header: str = ""

    @property
    def shown(self) -> str:
        """What the library stores, a search returns and the answerer reads: the header, then the text.
        The header is not indexed: its years and units, the same in every passage of a table, made the
        search find a question's own table less often (TAT-QA dev, docs/results.md)."""
        return f"{self.header}\n{self.text}" if self.header else self.text


_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")


def _segments(text: str, limit: int) -> list[tuple[int, int]]:
    """Spans of the page's non-empty lines; a line longer than ``limit`` is split at sentence ends,
    and a sentence still longer at spaces (a run without any space at ``limit``)."""
    spans: list[tuple[int, int]] = []
    for line in re.finditer(r"[^\n]+", text):
        if not line.group().strip():
            continue
        pieces = [line.span()]
        if line.end() - line.start() > limit:
            cuts = [line.start()] + [m.end() + line.start() for m in _SENTENCE_END.finditer(line.group())] + [line.end()]
            pieces = [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]
        for a, b in pieces:
            while b - a > limit:
                cut = text.rfind(" ", a + 1, a + limit)
                cut = cut if cut > a else a + limit
                spans.append((a, cut))
                a = cut
            spans.append((a, b))
    return spans


#: How ``documents.table_text`` (CSV files, HTML and TAT-QA tables) joins a row's cells.
_CELL = " | "
#: At most this many header rows are repeated above a passage cut from the middle of a table.
_HEADER_ROWS = 3
#: The rule under a Markdown table's header row: |---|:--:|
_MARKDOWN_RULE = re.compile(r"\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?")


def _is_row(line: str) -> bool:
    return _CELL in line or line.lstrip().startswith("|")


def _is_header_row(line: str) -> bool:
    """Whether a table's leading row titles its columns: its first cell is empty ("| 2019 | 2018"), or
    each of its other cells is empty, names a year or holds no figure ("For the year ended December 31: |
    2019 | 2018", "($ in millions) |  |", "(In thousands) | 2019 | Change | 2018"). A body row holds
    figures under those titles instead."""
    if line.startswith("|"):
        return True
    cells = [cell.strip() for cell in line.split(_CELL.strip())[1:]]
    return all(not cell or YEAR.search(cell) or not re.search(r"\d", cell) for cell in cells)


def _table_headers(text: str, spans: Sequence[tuple[int, int]]) -> list[str]:
    """For each span, the header rows of the table it is a body row of ("" for any other span).

    A table is a run of consecutive row lines (cells joined by `` | ``). Its header is its leading
    rows that title its columns (``_is_header_row``: "| 2019 | 2018", "| $'000 | %", "(in millions) |
    2019 | 2018"), or the rows above a Markdown table's ``|---|`` rule, or else its first row (a CSV
    file's column names). A passage cut from the middle of a table shows them: without them its figures
    have no year or unit, for a reader or the answerer (TAT-QA's "What was X in 2019?" names only the
    column)."""
    headers = [""] * len(spans)
    rows = [_is_row(text[a:b]) for a, b in spans]
    i = 0
    while i < len(spans):
        if not rows[i]:
            i += 1
            continue
        end = i
        while end + 1 < len(spans) and rows[end + 1]:
            end += 1
        lines = [text[a:b].strip() for a, b in spans[i:end + 1]]
        rule = next((n for n, line in enumerate(lines[:_HEADER_ROWS + 1]) if _MARKDOWN_RULE.fullmatch(line)), None)
        if rule is not None:  # a Markdown table: its header is the rows above the |---| rule
            top = rule + 1
        else:
            top = 0
            while top < min(len(lines) - 1, _HEADER_ROWS) and _is_header_row(lines[top]):
                top += 1
            top = top or (1 if len(lines) > 1 else 0)
        header = "\n".join(lines[:top])
        for j in range(i + top, end + 1):
            headers[j] = header
        i = end + 1
    return headers


def chunk_pages(pages: Sequence[Page], size: int = CHUNK_CHARS, overlap: int = CHUNK_OVERLAP) -> list[Chunk]:
    """Passages of about ``size`` characters, made of whole lines (or sentences) of one page, each
    starting up to ``overlap`` characters before the previous one ended. A passage that starts inside
    a table's body carries the table's header rows (``Chunk.header``)."""
    chunks: list[Chunk] = []
    for page in pages:
        spans = _segments(page.text, size)
        headers = _table_headers(page.text, spans)
        first = 0
        while first < len(spans):
            header = headers[first]
            budget = max(size - len(header), size // 2)
            last = first
            while last + 1 < len(spans) and spans[last + 1][1] - spans[first][0] <= budget:
                last += 1
            start, end = spans[first][0], spans[last][1]
            chunks.append(Chunk(page.number, start, end, page.text[start:end].strip(), header))
            if last + 1 >= len(spans):
                break
            following = last + 1
            while following - 1 > first and end - spans[following - 1][0] <= overlap:
                following -= 1
            first = following
    return [c for c in chunks if c.text]


def fts_query(text: str) -> str:
    """An FTS5 query that matches any of the words of ``text`` (quoted: a user's words are never FTS
    syntax), common words left out; "" when nothing is left."""
    words = dict.fromkeys(w for w in re.findall(r"\w+", text.lower()) if w not in SEARCH_STOPWORDS)
    return " OR ".join(f'"{w}"' for w in words)


@functools.cache
def _not_subject_words() -> frozenset[str]:
    # Imported on first use: scikit-learn's text module takes about 2 s to import, and only a search needs it.
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return SEARCH_STOPWORDS | _QUESTION_WORDS | ENGLISH_STOP_WORDS


def query_terms(text: str) -> list[str]:
    """The words of a query that name its subject (``coverage`` weighs them): words of letters only
    (figures and years are the answer's, not the subject's), of three letters or more, common and
    question words left out; each once."""
    words = re.findall(r"[^\W\d_]+", text.lower())
    skip = _not_subject_words()
    return list(dict.fromkeys(w for w in words if len(w) > 2 and w not in skip))


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], weights: Sequence[float] | None = None,
                           k: int = RRF_K) -> dict[int, float]:
    """Fused scores of the ids of several rankings (best first): the sum of weight / (k + rank), rank
    from 1 (``weights``: one per ranking, default 1 each)."""
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights or [1.0] * len(rankings)):
        for rank, item in enumerate(ranking, 1):
            fused[item] = fused.get(item, 0.0) + weight / (k + rank)
    return fused


# --------------------------------------------------------------------- store


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    sha256 TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    pages INTEGER NOT NULL,
    added TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    document INTEGER NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    page INTEGER NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    text TEXT NOT NULL,
    embedding BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_document ON chunks (document);
CREATE VIRTUAL TABLE IF NOT EXISTS chunk_words USING fts5 (text, tokenize = 'porter unicode61');
"""


def _years_first(ranked: Sequence[int], texts: dict[int, str], query: str) -> list[int]:
    """``ranked`` (passage ids, best first) with each passage that shows no year ``query`` names ranked
    at its place plus ``MISSING_YEAR_PLACES`` (``texts``: each passage as shown, its table's header above it)."""
    years = set(YEAR.findall(query))
    if not years:
        return list(ranked)
    place = {i: (n + (MISSING_YEAR_PLACES if not years <= set(YEAR.findall(texts.get(i, ""))) else 0), n)
             for n, i in enumerate(ranked)}
    return sorted(ranked, key=place.__getitem__)


class SQLiteDocumentStore:
    """A document library in one SQLite file.

    Args:
        path: the file (created with its folder if missing).
        embed: sentence embeddings of texts (``Engine.encode``): L2-normalised rows.
        encoder: the name of the model behind ``embed``. A library's embeddings only compare with those
            of the model that made them, so the library records it and refuses another one.
    """

    def __init__(self, path: str | Path, embed: Embed, encoder: str) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._embed = embed
        self.encoder = encoder
        self._lock = threading.Lock()
        # One connection shared by the server's threads, each use under the lock; transactions by hand.
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)
        try:
            os.chmod(self.path, 0o600)  # a user's documents are theirs alone
        except OSError:
            pass
        # The dense index in memory: every passage's embedding as one matrix, so a search is one matrix
        # product. A personal library (1,000 reports of ~100 passages: 100k x 384 float32 = 150 MB at the
        # very most, usually far less) is searched this way in milliseconds; an approximate index
        # (HNSW, IVF) pays off only well beyond that, and is what a server-backed store would bring.
        self._matrix: np.ndarray | None = None
        self._matrix_ids: np.ndarray | None = None
        self._matrix_owners: np.ndarray | None = None
        self._matrix_version: tuple[int, int] | None = None
        self._writes = 0

    # ------------------------------------------------------------------ reading

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM documents").fetchone()[0]

    def list(self) -> list[DocumentInfo]:
        with self._lock:
            rows = self._db.execute(
                "SELECT d.id, d.name, d.source, d.sha256, d.pages, COUNT(c.id), d.added FROM documents d "
                "LEFT JOIN chunks c ON c.document = d.id GROUP BY d.id ORDER BY d.name").fetchall()
        return [DocumentInfo(*row) for row in rows]

    def get(self, name_or_id: str | int) -> DocumentInfo:
        """The document of this name, else of this id (an int, or a string of its digits)."""
        return _named(name_or_id, self.list())

    # ------------------------------------------------------------------ writing

    def add(self, path: str | Path, *, name: str | None = None, source: str | None = None,
            progress: Progress | None = None) -> AddResult:
        """Read, cut, embed and index one file, in one transaction. ``name``: how the library names it
        (default: the file's name); ``source``: where it came from (default: its absolute path).
        ``progress(done, total, stage)`` follows the embedding and writing."""
        path = Path(path)
        name = ensure_text(name if name is not None else path.name, "document name")
        pages = read_pages(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        existing = self._by_hash(digest)
        if existing is not None:
            return AddResult(existing, created=False)
        chunks = chunk_pages(pages)
        vectors = self._embedded([c.text for c in chunks], progress)
        added = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                # Checked again under the write lock: another process may have added the same file meanwhile.
                same = self._db.execute("SELECT id FROM documents WHERE sha256 = ?", (digest,)).fetchone()
                if same is not None:
                    self._db.execute("ROLLBACK")
                    return AddResult(self._info(same[0]), created=False)
                self._check_encoder(vectors.shape[1])
                replaced_row = self._db.execute(
                    "SELECT id FROM documents WHERE name = ?", (name,)).fetchone()
                replaced = self._info(replaced_row[0]) if replaced_row else None
                if replaced is not None:
                    self._delete(replaced.id)
                cursor = self._db.execute(
                    "INSERT INTO documents (name, sha256, source, pages, added) VALUES (?, ?, ?, ?, ?)",
                    (name, digest, source or str(path.resolve()), len(pages), added))
                document_id = cursor.lastrowid
                for done, (chunk, vector) in enumerate(zip(chunks, vectors), 1):
                    row = self._db.execute(
                        "INSERT INTO chunks (document, page, start, end, text, embedding) VALUES (?, ?, ?, ?, ?, ?)",
                        (document_id, chunk.page, chunk.start, chunk.end, chunk.shown,
                         np.asarray(vector, dtype=np.float32).tobytes()))
                    self._db.execute("INSERT INTO chunk_words (rowid, text) VALUES (?, ?)", (row.lastrowid, chunk.text))
                    if progress is not None:
                        progress(done, len(chunks), "writing")
                self._db.execute("COMMIT")
            except BaseException:  # Ctrl-C included: the document is not half written
                self._db.execute("ROLLBACK")
                raise
            finally:
                self._writes += 1
            info = self._info(document_id)
        return AddResult(info, created=True, replaced=replaced)

    def remove(self, name_or_id: str | int) -> DocumentInfo:
        """Remove a document (by name, or by id) and its passages; the removed document's description."""
        info = self.get(name_or_id)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._delete(info.id)
                if not self._db.execute("SELECT 1 FROM documents LIMIT 1").fetchone():
                    self._db.execute("DELETE FROM meta WHERE key IN ('encoder', 'dimension')")  # empty: any encoder
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            finally:
                self._writes += 1
        return info

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------ search

    def search(self, query: str, k: int = 5, documents: Sequence[str | int] | None = None) -> list[Passage]:
        """The ``k`` passages that best match ``query``: BM25 (FTS5) and embedding cosine rankings,
        ``CANDIDATES`` deep each, fused by weighted reciprocal rank fusion, a passage that shows no year
        the query names moved down (``MISSING_YEAR_PLACES``); best first. ``documents``: only passages of
        these documents (names or ids, as ``get`` takes them; an unknown one is a ``DocumentNotFoundError``),
        for a question about one report when the library holds many with the same rows."""
        query = ensure_text(query, "query")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InvalidParameterError(f"k must be a positive integer, got {k!r}")
        with self._lock:
            self._check_encoder()
        scope = self._scope(documents)
        ids, matrix, owners = self._dense_index()
        passages = len(ids)  # the library's, for the rarity of words (``_coverage``), scoped or not
        if scope is not None:
            kept = np.isin(owners, list(scope))
            ids, matrix = ids[kept], matrix[kept]
        if len(ids) == 0:
            return []
        vector = np.asarray(self._embed([query]), dtype=np.float32)[0]
        similarities = matrix @ vector
        depth = min(CANDIDATES, len(ids))
        best = np.argpartition(-similarities, depth - 1)[:depth]
        dense = [int(ids[i]) for i in best[np.argsort(-similarities[best], kind="stable")]]
        lexical: list[int] = []
        words = fts_query(query)
        if words:
            within = "" if scope is None else (
                f" AND rowid IN (SELECT id FROM chunks WHERE document IN ({','.join('?' * len(scope))}))")
            with self._lock:
                lexical = [row[0] for row in self._db.execute(
                    f"SELECT rowid FROM chunk_words WHERE chunk_words MATCH ?{within} ORDER BY bm25(chunk_words) LIMIT ?",
                    (words, *(scope or ()), CANDIDATES))]
        fused = reciprocal_rank_fusion([dense, lexical], weights=[1.0, LEXICAL_WEIGHT])
        ranked = sorted(fused, key=lambda i: (-fused[i], i))
        similarity_of = dict(zip(ids.tolist(), similarities.tolist()))
        with self._lock:
            rows = {row[0]: row for row in self._db.execute(
                f"SELECT c.id, c.document, d.name, c.page, c.start, c.end, c.text FROM chunks c "
                f"JOIN documents d ON d.id = c.document WHERE c.id IN ({','.join('?' * len(ranked))})", ranked)}
            top = _years_first(ranked, {i: rows[i][6] for i in ranked if i in rows}, query)[:k]
            coverage = self._coverage(query_terms(query), top, passages=passages)
            units = {page: stated_unit("\n".join(text for (text,) in self._db.execute(
                "SELECT text FROM chunks WHERE document = ? AND page = ? ORDER BY start", page)))
                for page in {(rows[i][1], rows[i][3]) for i in top if i in rows}}
        return [Passage(*rows[i][1:], score=fused[i], similarity=float(similarity_of[i]), coverage=coverage[i],
                        unit=units[rows[i][1], rows[i][3]]) for i in top if i in rows]

    def _scope(self, documents: Sequence[str | int] | None) -> list[int] | None:
        """The ids of ``documents`` (None: the whole library). A string is one name, not a list of them."""
        if documents is None:
            return None
        if isinstance(documents, (str, int)):
            documents = [documents]
        if not documents:
            raise InvalidParameterError("documents must name at least one document of the library (or be left out)")
        listed = self.list()  # once for all the names, as ``get`` reads them
        return list(dict.fromkeys(_named(d, listed).id for d in documents))

    def _coverage(self, terms: Sequence[str], passage_ids: Sequence[int], passages: int) -> dict[int, float]:
        """Each passage's share of ``terms``, a term weighted by its inverse document frequency over the
        library's passages (a word every passage holds says nothing about which one the question is on).
        Both counts come from the FTS5 index, so a term matches as it is searched ("revenues" holds
        "revenue": the same Porter stem); a passage's own lines are what it holds (not its table's
        header, which the index leaves out). ``passages``: how many the library holds. Called under the lock."""
        if not terms:
            return dict.fromkeys(passage_ids, 1.0)
        marks = ",".join("?" * len(passage_ids))
        held = dict.fromkeys(passage_ids, 0.0)
        weights = 0.0
        for term in terms:
            phrase = f'"{term}"'
            frequency = self._db.execute("SELECT count(*) FROM chunk_words WHERE chunk_words MATCH ?",
                                         (phrase,)).fetchone()[0]
            weight = math.log((passages + 1) / (frequency + 1))
            weights += weight
            for (rowid,) in self._db.execute(f"SELECT rowid FROM chunk_words WHERE chunk_words MATCH ? "
                                             f"AND rowid IN ({marks})", (phrase, *passage_ids)):
                held[rowid] += weight
        return {i: (value / weights if weights > 0 else 1.0) for i, value in held.items()}

    # ------------------------------------------------------------------ internals

    def _embedded(self, texts: list[str], progress: Progress | None, batch: int = 32) -> np.ndarray:
        parts = []
        for start in range(0, len(texts), batch):
            parts.append(np.asarray(self._embed(texts[start:start + batch]), dtype=np.float32))
            if progress is not None:
                progress(min(start + batch, len(texts)), len(texts), "embedding")
        return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)

    def _by_hash(self, digest: str) -> DocumentInfo | None:
        with self._lock:
            row = self._db.execute("SELECT id FROM documents WHERE sha256 = ?", (digest,)).fetchone()
            return self._info(row[0]) if row else None

    def _info(self, document_id: int) -> DocumentInfo:
        """(Under the lock.)"""
        row = self._db.execute(
            "SELECT d.id, d.name, d.source, d.sha256, d.pages, "
            "(SELECT COUNT(*) FROM chunks c WHERE c.document = d.id), d.added FROM documents d WHERE d.id = ?",
            (document_id,)).fetchone()
        return DocumentInfo(*row)

    def _delete(self, document_id: int) -> None:
        """(Under the lock, in a transaction.) The FTS table is not covered by the foreign key's cascade."""
        self._db.execute("DELETE FROM chunk_words WHERE rowid IN (SELECT id FROM chunks WHERE document = ?)",
                         (document_id,))
        self._db.execute("DELETE FROM documents WHERE id = ?", (document_id,))

    def _meta(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT key, value FROM meta").fetchall())

    def _encoder_error(self, recorded: str | None) -> InvalidParameterError:
        return InvalidParameterError(
            f"the library {self.path} was indexed with the encoder {recorded!r}; this assistant encodes with "
            f"{self.encoder!r}: use the same --encoder, or another library (${LIBRARY_ENV})")

    def _check_encoder(self, dimension: int | None = None) -> None:
        """Refuse a library indexed with another encoder. Given the ``dimension`` of new embeddings (under
        the lock, in the transaction that writes them), record the encoder at the first document."""
        meta = self._meta()
        if "encoder" not in meta:
            if dimension is not None:
                self._db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                                     [("encoder", self.encoder), ("dimension", str(dimension))])
        elif meta["encoder"] != self.encoder or (dimension is not None and meta.get("dimension") != str(dimension)):
            raise self._encoder_error(meta["encoder"])

    def _dense_index(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every passage's id, embedding and document id, read again only after the file has changed
        (this connection's writes, or another process's: SQLite's data_version)."""
        with self._lock:
            version = (self._db.execute("PRAGMA data_version").fetchone()[0], self._writes)
            if self._matrix is None or version != self._matrix_version:
                rows = self._db.execute("SELECT id, embedding, document FROM chunks ORDER BY id").fetchall()
                self._matrix_ids = np.array([r[0] for r in rows], dtype=np.int64)
                self._matrix_owners = np.array([r[2] for r in rows], dtype=np.int64)
                self._matrix = (np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows]) if rows
                                else np.zeros((0, 0), dtype=np.float32))
                self._matrix_version = version
            return self._matrix_ids, self._matrix, self._matrix_owners


def _named(name_or_id: str | int, documents: Sequence[DocumentInfo]) -> DocumentInfo:
    """Of ``documents``, the one of this name, else of this id (an int, or a string of its digits)."""
    for matches in (lambda d: d.name == name_or_id, lambda d: str(d.id) == str(name_or_id)):
        found = next((d for d in documents if matches(d)), None)
        if found is not None:
            return found
    raise DocumentNotFoundError(f"no document {name_or_id!r} in the library (see `finassist docs list`)")


def files_in(paths: Sequence[str | Path]) -> list[tuple[Path, str]]:
    """The files to add for ``docs add PATH...``, each with its library name: a file by its name; a
    folder's files of the types the library reads (recursively, sorted) by their path from the folder's
    parent (``contracts/a.pdf``), so files of the same name in two folders stay apart."""
    found: list[tuple[Path, str]] = []
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in LIBRARY_TYPES):
                found.append((file, file.relative_to(path.parent).as_posix()))
        elif path.is_file():
            found.append((path, path.name))
        else:
            raise InvalidInputError(f"no such file or folder: {given}")
    return found


__all__ = ["AddResult", "DocumentInfo", "DocumentNotFoundError", "DocumentStore", "LIBRARY_ENV", "Passage",
           "SQLiteDocumentStore", "chunk_pages", "default_library_path", "files_in", "fts_query", "library_path",
           "reciprocal_rank_fusion"]
