"""The document library (assistant/library.py) on real files and the real MiniLM encoder: parsing with
locations, the two indexes and their fusion, re-adding, an interrupted add, persistence, removal."""

from __future__ import annotations

import sqlite3

import pytest
from pdfs import text_pdf

from assistant import Assistant
from assistant.documents import Page
from assistant.errors import InvalidInputError, InvalidParameterError
from assistant.library import (
    CHUNK_CHARS,
    DocumentNotFoundError,
    DocumentStore,
    SQLiteDocumentStore,
    _is_header_row,
    _years_first,
    chunk_pages,
    files_in,
    fts_query,
    library_path,
    query_terms,
    reciprocal_rank_fusion,
)

CAPEX = "Capital expenditure in 2023 was 4.2 billion dollars, up from 3.9 billion dollars in 2022."
MARGIN = "Gross margin fell to 38 percent in 2023 as input costs rose."


@pytest.fixture
def store(tmp_path, retrieval_engine):
    s = SQLiteDocumentStore(tmp_path / "library.sqlite", embed=lambda t: retrieval_engine.encode(list(t)).numpy(),
                            encoder=retrieval_engine.encoder_spec)
    yield s
    s.close()


@pytest.fixture
def files(tmp_path):
    folder = tmp_path / "files"
    folder.mkdir()
    text_pdf(folder / "annual-report.pdf", ["Chairman's letter: a year of steady progress.", CAPEX])
    (folder / "call.txt").write_text(f"Operator: welcome to the call.\n\n{MARGIN}\n", encoding="utf-8")
    (folder / "page.html").write_text(
        "<html><head><style>p {color: red}</style><script>alert('x')</script></head><body>"
        "<p>Dividend policy</p><table><tr><th>Year</th><th>Dividend per share</th></tr>"
        "<tr><td>2023</td><td>1.10</td></tr></table></body></html>", encoding="utf-8")
    (folder / "segments.csv").write_text("segment,revenue\nCloud,120\nDevices,80\n", encoding="utf-8")
    return folder


def counts(store: SQLiteDocumentStore) -> tuple[int, int, int]:
    """Documents, passages, and rows of the lexical index, read from the file itself."""
    with sqlite3.connect(store.path) as db:
        return tuple(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                     for table in ("documents", "chunks", "chunk_words"))


def test_the_store_is_a_document_store(store):
    assert isinstance(store, DocumentStore)


def test_real_files_are_added_with_their_pages_and_found_where_they_are(store, files):
    for path, name in files_in([files]):
        assert store.add(path, name=name).created
    listed = {d.name: d for d in store.list()}
    assert set(listed) == {"files/annual-report.pdf", "files/call.txt", "files/page.html", "files/segments.csv"}
    assert listed["files/annual-report.pdf"].pages == 2

    best = store.search("How much was capital expenditure in 2023?", k=3)[0]
    assert (best.document, best.page) == ("files/annual-report.pdf", 2)
    assert best.text == CAPEX
    assert best.end - best.start == len(CAPEX)

    assert store.search("gross margin", k=1)[0].document == "files/call.txt"
    html = store.search("dividend per share", k=1)[0]
    assert html.document == "files/page.html"
    assert "2023 | 1.10" in html.text and "alert" not in html.text and "color" not in html.text
    assert "Cloud | 120" in store.search("revenue of the cloud segment", k=1)[0].text


def test_fusion_ranks_each_list_by_position_and_weight():
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1]], k=60)
    assert fused[1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[3] == pytest.approx(1 / 63 + 1 / 61)
    assert fused[2] == pytest.approx(1 / 62)
    assert max(fused, key=fused.get) == 1
    weighted = reciprocal_rank_fusion([[1, 2, 3], [3, 1]], weights=[1.0, 3.0], k=10)
    assert weighted[3] == pytest.approx(1 / 13 + 3 / 11)
    assert max(weighted, key=weighted.get) == 3


def test_words_of_a_query_are_never_fts_syntax():
    assert fts_query('What is "NEAR(capex)" OR revenue -2023*') == '"near" OR "capex" OR "revenue" OR "2023"'
    assert fts_query("What was the percentage change in revenue between 2018 and 2019?") == '"revenue" OR "2018" OR "2019"'
    assert fts_query("what is the") == ""


def test_a_querys_subject_words_leave_out_common_words_question_words_and_figures():
    assert query_terms("Which component of the cloud segment's revenue was the greatest in 2019?") == [
        "cloud", "segment", "revenue"]
    assert query_terms("What was the percentage change between 2018 and 2019?") == []
    # "respective" asks for a list; in a small library no passage may say it, and a word none says weighs most
    assert query_terms("What are the respective sales of Fixed Price and Other in 2018?") == ["sales", "fixed", "price"]


def test_coverage_weighs_the_subject_words_a_passage_holds_by_their_rarity(store, files):
    for path in sorted(files.iterdir()):
        store.add(path)
    found = {p.document: p for p in store.search("What were the capital expenditures of the devices segment?", k=4)}
    # "capital" and "expenditures" (as "expenditure": the same Porter stem) are in the report's passage,
    # "devices" and "segment" in the CSV's: each holds part of the subject.
    report, csv = found["annual-report.pdf"].coverage, found["segments.csv"].coverage
    assert 0.2 < report < 0.8 and 0.2 < csv < 0.8
    assert found["call.txt"].coverage == 0.0  # none of the words
    assert all(p.coverage == 1.0 for p in store.search("What was the change between 2022 and 2023?", k=3))
    whole = store.search("capital expenditure", k=1)[0]
    assert whole.document == "annual-report.pdf" and whole.coverage == pytest.approx(1.0)


def test_a_passage_made_of_words_only_the_index_knows_is_found_lexically(store, tmp_path):
    (tmp_path / "codes.txt").write_text("Ledger account XQ-7731 holds the escrow balance.", encoding="utf-8")
    (tmp_path / "other.txt").write_text(MARGIN, encoding="utf-8")
    store.add(tmp_path / "codes.txt")
    store.add(tmp_path / "other.txt")
    assert store.search("xq 7731", k=1)[0].document == "codes.txt"


def test_the_same_file_is_not_added_twice(store, files):
    first = store.add(files / "call.txt")
    before = counts(store)
    again = store.add(files / "call.txt")
    copy = files / "copy-of-call.txt"
    copy.write_bytes((files / "call.txt").read_bytes())
    renamed = store.add(copy)
    assert not again.created and not renamed.created
    assert again.document == first.document == renamed.document
    assert counts(store) == before


def test_a_new_version_of_a_document_replaces_the_old_one(store, tmp_path):
    path = tmp_path / "q3.txt"
    path.write_text(CAPEX, encoding="utf-8")
    old = store.add(path).document
    path.write_text(MARGIN, encoding="utf-8")
    result = store.add(path)
    assert result.created and result.replaced == old
    assert [d.name for d in store.list()] == ["q3.txt"]
    assert all(p.text == MARGIN for p in store.search("capital expenditure", k=5))
    assert counts(store) == (1, 1, 1)


def test_an_add_interrupted_while_writing_leaves_the_library_as_it_was(store, files, tmp_path):
    store.add(files / "call.txt")
    before = counts(store)
    listed = store.list()
    long = tmp_path / "long.txt"
    long.write_text("\n".join(f"Note {i}: revenue in region {i} grew by {i} percent." for i in range(200)),
                    encoding="utf-8")

    def interrupt(done: int, total: int, stage: str) -> None:
        if stage == "writing" and done == 3:  # Ctrl-C in the middle of the document's transaction
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.add(long, progress=interrupt)
    assert counts(store) == before
    assert store.list() == listed
    assert {p.document for p in store.search("revenue in region 12", k=5)} == {"call.txt"}
    assert store.add(long).created  # and the library still works
    assert len(store.list()) == 2


def test_a_file_that_cannot_be_read_changes_nothing(store, files, tmp_path):
    store.add(files / "call.txt")
    before = counts(store)
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4 not really")
    with pytest.raises(InvalidInputError):
        store.add(broken)
    with pytest.raises(InvalidInputError, match="unsupported file type"):
        store.add(tmp_path / "library.sqlite")
    assert counts(store) == before


def test_the_library_persists_across_a_reopen(store, files, retrieval_engine):
    store.add(files / "annual-report.pdf")
    listed = store.list()
    store.close()
    reopened = SQLiteDocumentStore(store.path, embed=lambda t: retrieval_engine.encode(list(t)).numpy(),
                                   encoder=retrieval_engine.encoder_spec)
    try:
        assert reopened.list() == listed
        assert reopened.search("capital expenditure 2023", k=1)[0].page == 2
    finally:
        reopened.close()


def test_another_process_adding_is_seen_by_the_next_search(store, files, retrieval_engine):
    store.add(files / "call.txt")
    assert store.search("capital expenditure", k=5)[0].document == "call.txt"  # the dense index is cached now
    other = SQLiteDocumentStore(store.path, embed=lambda t: retrieval_engine.encode(list(t)).numpy(),
                                encoder=retrieval_engine.encoder_spec)
    try:
        other.add(files / "annual-report.pdf")
    finally:
        other.close()
    assert store.search("capital expenditure in 2023", k=1)[0].document == "annual-report.pdf"


def test_remove_by_name_or_id(store, files):
    a = store.add(files / "call.txt").document
    b = store.add(files / "segments.csv").document
    assert store.remove("call.txt") == a
    assert store.remove(str(b.id)) == b
    assert store.list() == [] and counts(store) == (0, 0, 0)
    with pytest.raises(DocumentNotFoundError, match="no document 'call.txt'"):
        store.remove("call.txt")


def test_a_library_indexed_with_another_encoder_is_refused(store, files):
    store.add(files / "call.txt")
    other = SQLiteDocumentStore(store.path, embed=store._embed, encoder="some-other-encoder")
    try:
        with pytest.raises(InvalidParameterError, match="indexed with the encoder"):
            other.search("margin")
        with pytest.raises(InvalidParameterError, match="indexed with the encoder"):
            other.add(files / "segments.csv")
    finally:
        other.close()
    store.remove("call.txt")  # an empty library takes any encoder
    other = SQLiteDocumentStore(store.path, embed=store._embed, encoder="some-other-encoder")
    try:
        assert other.add(files / "segments.csv").created
    finally:
        other.close()


def test_passages_are_whole_lines_with_exact_spans_and_overlap():
    lines = [f"Line {i}: the segment reported revenue of {i * 10} million dollars for the year." for i in range(40)]
    page = Page(3, "\n".join(lines))
    chunks = chunk_pages([page])
    assert len(chunks) > 1
    for chunk in chunks:
        assert chunk.page == 3
        assert page.text[chunk.start:chunk.end] == chunk.text
        assert len(chunk.text) <= CHUNK_CHARS
        assert chunk.text.split("\n")[0] in lines  # starts at a line
    for before, after in zip(chunks, chunks[1:]):
        assert after.start < before.end  # overlap: the last line of one starts the next
        assert after.start > before.start
    assert chunks[-1].end == len(page.text)


def test_a_long_line_is_cut_at_sentence_ends_and_spaces():
    sentence = "Revenue grew in every region while costs were held flat. "
    text = sentence * 60 + "x" * (CHUNK_CHARS + 100)
    chunks = chunk_pages([Page(1, text)])
    assert all(len(c.text) <= CHUNK_CHARS for c in chunks)
    assert all(c.text.startswith(("Revenue", "x")) for c in chunks)
    assert "".join(c.text for c in chunks).count("x") >= CHUNK_CHARS + 100


def test_a_passage_cut_from_a_table_repeats_the_tables_header_rows(tatqa_dev):
    from assistant.documents import table_text

    record = next(r for r in tatqa_dev if len(table_text(r["table"])) > 3 * CHUNK_CHARS)
    text = table_text(record["table"])
    lines = text.split("\n")
    # two rows with an empty first cell, then "(In millions) | As of August 1, 2019 | Adjustments | As of ..."
    header = [line.strip() for line in lines[:3]]
    assert header[0].startswith("| ") and header[2].startswith("(In millions) |"), lines[:3]
    page = Page(1, text + "\n\nThe table above shows net sales by segment.")
    chunks = chunk_pages([page])
    assert len(chunks) >= 3
    for chunk in chunks[1:]:
        assert chunk.text == page.text[chunk.start:chunk.end].strip()  # what is indexed: its own lines
        if chunk.text.startswith("The table above"):
            assert chunk.shown == chunk.text  # a passage of prose gets no header
            continue
        assert chunk.shown == "\n".join(header + [chunk.text])
        assert len(chunk.shown) <= CHUNK_CHARS
    # The first passage holds the header rows themselves, once.
    assert chunks[0].shown == chunks[0].text


def test_a_csv_files_column_names_head_every_passage_of_it(tmp_path, store):
    from assistant.documents import read_pages

    rows = "\n".join(f"Segment {i},{100 + i},{90 + i}" for i in range(60))
    (tmp_path / "segments.csv").write_text(f"segment,revenue 2023,revenue 2022\n{rows}\n", encoding="utf-8")
    chunks = chunk_pages(read_pages(tmp_path / "segments.csv"))
    assert len(chunks) > 2
    assert all(c.shown.startswith("segment | revenue 2023 | revenue 2022\n") for c in chunks)
    assert sum(c.shown.count("segment | revenue") for c in chunks) == len(chunks)
    store.add(tmp_path / "segments.csv")
    found = [p for p in store.search("Segment 45: 145 and 135", k=5) if "Segment 45 | 145 | 135" in p.text]
    assert found and found[0].text.startswith("segment | revenue 2023 | revenue 2022\nSegment ")


def test_a_markdown_tables_header_is_the_rows_above_its_rule():
    rows = "\n".join(f"| Segment {i} | {100 + i} | {90 + i} |" for i in range(40))
    text = f"Revenue by segment:\n\n| Segment | 2023 | 2022 |\n|:---|---:|---:|\n{rows}\n"
    chunks = chunk_pages([Page(1, text)])
    assert len(chunks) > 2
    for chunk in chunks[1:]:
        assert chunk.header == "| Segment | 2023 | 2022 |\n|:---|---:|---:|"
        assert chunk.text.startswith("| Segment ") and "2023" not in chunk.text


def test_files_in_names_folder_files_by_their_path_and_refuses_missing_paths(files, tmp_path):
    (files / "notes.bin").write_bytes(b"\x00\x01")
    found = files_in([files / "call.txt", files])
    assert found[0] == (files / "call.txt", "call.txt")
    assert [name for _, name in found[1:]] == ["files/annual-report.pdf", "files/call.txt", "files/page.html",
                                               "files/segments.csv"]
    with pytest.raises(InvalidInputError, match="no such file or folder"):
        files_in([tmp_path / "missing.pdf"])


def test_where_the_library_lives(monkeypatch, tmp_path):
    monkeypatch.setenv("FINASSIST_LIBRARY", str(tmp_path / "mine.sqlite"))
    assert library_path() == tmp_path / "mine.sqlite"
    assert library_path(tmp_path / "given.sqlite") == tmp_path / "given.sqlite"
    monkeypatch.setenv("FINASSIST_LIBRARY", "off")
    assert library_path() is None
    assert Assistant(engine=object(), documents=True).documents is None
    monkeypatch.delenv("FINASSIST_LIBRARY")
    assert library_path().name == "library.sqlite"


def test_a_passage_carries_the_unit_its_page_states_outside_it(store, tatqa_file, files):
    path, _ = tatqa_file  # a table of sales, then a paragraph ending "(in millions):"
    store.add(path)
    store.add(files / "call.txt")
    table = next(p for p in store.search("Fixed Price Other Total sales", k=5) if "Fixed Price" in p.text)
    assert "in millions" not in table.text and table.unit == "million"
    assert table.to_dict()["unit"] == "million"
    margin = store.search(MARGIN, k=1)[0]
    assert margin.document == "call.txt" and margin.unit == ""  # a page that states no unit


def test_a_year_row_with_a_title_in_its_first_cell_is_part_of_the_header(tatqa_dev):
    from assistant.documents import table_text

    def year_row_titled(text: str) -> bool:  # "($ in millions) |  |" then "For the year ended ...: | 2019 | 2018"
        first, second = text.split("\n")[:2]
        return (not first.startswith(" |") and not first.split("|", 1)[1].strip(" |")
                and not second.startswith(" |") and "2019" in second)

    record = next(r for r in tatqa_dev if len(table_text(r["table"])) > 2 * CHUNK_CHARS
                  and year_row_titled(table_text(r["table"])))
    text = table_text(record["table"])
    chunks = chunk_pages([Page(1, text)])
    assert len(chunks) >= 2
    header = "\n".join(line.strip() for line in text.split("\n")[:2])
    assert all(chunk.header == header for chunk in chunks[1:]), (header, chunks[1].header)
    # A body row below it (figures under the years) is not header.
    assert _is_header_row("For the year ended December 31: | 2019 | 2018") and _is_header_row("($ in millions) |  |")
    assert not _is_header_row("Nonvested as of December 31, 2018 | 5,974 | $6.51 |")
    # column titles that are not years ("Change") beside the years: a header row still
    assert _is_header_row("(In thousands) | 2019 | Change increase (decrease) | 2018 | Change | 2017")
    assert not _is_header_row("Americas | $132,426 | $(19,045) | $151,471")


def test_a_passage_showing_no_year_the_question_names_moves_down():
    ranked = [11, 12, 13, 14, 15, 16, 17, 18]
    texts = {i: "| 2019 | 2018\nRevenue | 5 | 4" for i in ranked}
    texts[11] = "| 2020 | 2019\nRevenue | 6 | 5"  # the best by its words, but it shows no 2018
    # 11 ranks at its place (0) plus 5, ahead of the passage whose own place 5 is
    assert _years_first(ranked, texts, "What was revenue in 2018?") == [12, 13, 14, 15, 11, 16, 17, 18]
    assert _years_first(ranked, texts, "What was revenue in 2019?") == ranked  # every passage shows 2019
    assert _years_first(ranked, texts, "What was revenue?") == ranked  # no year named: the fused order


#: A question both goodwill reports of ``goodwill_reports`` answer.
GOODWILL_QUESTION = "How much is the percentage change of total goodwill amount from 2017 to 2018?"


@pytest.fixture
def goodwill_reports(store, tatqa_dev, tmp_path) -> list[str]:
    """Two real annual reports (TAT-QA dev) with a goodwill table each, added to ``store``: their names."""
    from finetune.evaluation.retrieval import tatqa_document

    names = []
    for prefix in ("8749fc7b", "a8559ad7"):
        record = next(r for r in tatqa_dev if r["context_uid"].startswith(prefix))
        (tmp_path / f"{prefix}.txt").write_text(tatqa_document(record), encoding="utf-8")
        names.append(store.add(tmp_path / f"{prefix}.txt").document.name)
    return names


def test_the_table_of_the_years_asked_is_found_before_one_of_other_years(store, goodwill_reports, monkeypatch):
    import assistant.library

    # By their words the second report's table ranks first, but it shows no 2018.
    question = GOODWILL_QUESTION
    found = store.search(question, k=3)
    assert found[0].document == "8749fc7b.txt" and "2017" in found[0].text and "2018" in found[0].text
    monkeypatch.setattr(assistant.library, "MISSING_YEAR_PLACES", 0)  # by the fused ranking alone
    first = store.search(question, k=3)[0]
    assert first.document == "a8559ad7.txt" and "2018" not in first.text


def test_a_search_scoped_to_documents_finds_passages_of_those_alone(store, goodwill_reports):
    question = GOODWILL_QUESTION
    unscoped = store.search(question, k=10)  # both reports answer it
    assert {p.document for p in unscoped} == {"8749fc7b.txt", "a8559ad7.txt"}
    second = store.get("a8559ad7.txt")
    for scope in (["a8559ad7.txt"], [second.id], [str(second.id)]):  # by name or id
        found = store.search(question, k=10, documents=scope)
        assert found and {p.document for p in found} == {"a8559ad7.txt"}
        # a word's rarity is the library's, scoped or not: a passage covers the question as much either way
        coverage = {p.text: p.coverage for p in unscoped}
        assert all(coverage[p.text] == p.coverage for p in found if p.text in coverage)
    both = store.search(question, k=10, documents=["8749fc7b.txt", "a8559ad7.txt"])
    assert [p.text for p in both] == [p.text for p in unscoped]
    with pytest.raises(DocumentNotFoundError, match="no document 'annual-2019.pdf' in the library"):
        store.search(question, documents=["a8559ad7.txt", "annual-2019.pdf"])
    with pytest.raises(InvalidParameterError, match="at least one document"):
        store.search(question, documents=[])
