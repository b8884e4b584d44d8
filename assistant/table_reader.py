"""Questions about a table's cells answered by reading the table: "What was the X in 2019?" (or in
2019 and 2018, or their total), the change, percentage change or average of a row between years,
computed from its cells, "Which year was X higher?", "Which years does the table show?", "In which
years was X less than N?" (or how many), "Which country had the highest X in 2019?" (a row's label), and
two rows of one year combined: "the percentage of A in total B", "A as a percentage of B", "the ratio of A
to B", "the proportion of A over B", "the sum of A and B", "the X of A and B" (both cells), "the difference
between A and B" (a difference is how far apart two figures are; a change has a sign). A row is named by
its label, by its label under its section's title ("Product" under "Revenue:"), or by its label without
what brackets add ("Net income (loss)"); an unlabelled line under the rows is their total; a table whose
rows are years ("2021 | $138 | $6") is read turned on its side; "F19" and "FY 2018" are the years 2019 and 2018.

Many questions asked of a financial table have one of these forms (TAT-QA dev, the tune half: 446 of its
828 questions are read, 389 of them exactly right, given the question's own table: docs/results.md). The
135M answerer, reading the table as ``cell | cell`` rows, often copies a figure of the wrong row or
column; here the row is the one whose label the question names, word for word (each of two rows in its
own part of the question), and the columns are the ones headed by the years it names, so the figures
are the table's own. A question of another form, or one whose row or columns are not found
unambiguously, is left to the answerer (``read`` returns None).

Written here because no offline package reads tables this way: TAPAS and TagOp are trained models with
weights to download; this is a few rules over the library's own table passages (rows of cells joined by
`` | ``, their header rows repeated above them: ``assistant.library``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from .calculator import InvalidExpressionError, compute
from .figures import YEAR as _YEAR
from .figures import stated_unit
#: Words that say how a question asks, not what about: left out when matching a row's label.
_ASKING_WORDS = frozenset(
    "what was is were are the of in for and to a an from between by how much did does do change changes "
    "percentage percent average year on as at during difference increase decrease its their company "
    "group s".split())
#: Questions a single row's forms do not answer: reasons, several values at once, sums and shares of
#: other rows (``_TWO_ROWS`` reads some of those first).
_NOT_A_CELL = re.compile(
    r"^\s*(how did|how does|what (are|were) the (primary |main )?(factors|reasons))|\bwhy\b"
    r"|^\s*how (is|are|was|were)\b.*\b(calculated|determined|computed|measured|derived|defined)\b"
    r"|^\s*(in )?which (?!(of the )?(fiscal )?years?\b)"  # "Which country had the highest X?": a label, not a figure
    r"|\breasons?\b|\bdue to\W*$|\bwhat caused\b|\bdrivers?\b|\bdriven by\b"
    r"|respective|constitution|\bratio\b|\bproportion\b|percentage of|as a percentage|share of"
    r"|\btotal of\b|\bcombined\b", re.IGNORECASE)
_RESPECTIVE = re.compile(r"\brespective(ly)?\b", re.IGNORECASE)
#: Periods within a year: a quarter's column is headed by its year too.
_PART_OF_A_YEAR = re.compile(r"\bquarter|\bq[1-4]\b|\bhalf\b|\bmonths?\b", re.IGNORECASE)
#: Questions about two rows in one year, each row named in its own part of the question: "the percentage of
#: A in total B" (or its "percentage constitution"), "A as a percentage of B", "the ratio of A to B", "the
#: proportion of A over B" (a ratio: so TAT-QA answers it, 2 of 2 on the tune half; "What proportion of B is
#: made up of A" it answers either way, and is left), "the sum of A and B", "What are the X for A and B?" (both
#: cells), "the difference (in X) between A and B". (name, pattern with groups a and b); the calculation is
#: ``_TWO_ROW_EXPRESSIONS``, the first of them that matches is read.
_TWO_ROWS = (
    ("share", re.compile(r"\bpercentage of (?:the )?(?P<a>.+?) (?:in|out of|among|of|over|to) (?:the )?"
                         r"(?P<b>total\b.+)", re.IGNORECASE)),
    ("share", re.compile(r"^\s*what (?:is|was) (?:the )?(?P<a>.+?) (?:expressed )?as a percentage of (?:the )?"
                         r"(?P<b>.+)", re.IGNORECASE)),
    ("share", re.compile(r"\bpercentage (?:of )?constitution of (?:the )?(?P<a>.+?) (?:in|among|of|to) (?:the )?"
                         r"(?P<b>total\b.+)", re.IGNORECASE)),
    ("ratio", re.compile(r"\bratio of (?:the )?(?P<a>.+?) to (?:the )?(?P<b>.+)", re.IGNORECASE)),
    ("ratio", re.compile(r"\bproportion of (?:the )?(?P<a>.+?) (?:over|to|out of) (?:the )?(?P<b>.+)", re.IGNORECASE)),
    ("sum", re.compile(r"\bsum of (?:the )?(?P<a>.+?) and (?:the )?(?P<b>.+)", re.IGNORECASE)),
    ("both", re.compile(r"^\s*what (?:are|were|was|is) the (?!.*\b(?:total|sum|change|difference|increase|decrease"
                        r"|ratio|proportion|percentage|growth)\b)(?!.*(?<!-)\baverage\b)(?:respective )?(?:[\w-]+ )*?"
                        r"(?:of|for|from) (?:the )?(?P<a>.+?) and (?:the )?(?P<b>.+)", re.IGNORECASE)),
    ("difference", re.compile(r"\bdifference (?:in (?:the )?.+? )?between (?:the )?(?P<a>.+?) and (?:the )?(?P<b>.+)",
                              re.IGNORECASE)),
)
_TWO_ROW_EXPRESSIONS = {"share": "{a} / {b} * 100", "ratio": "{a} / {b}", "sum": "{a} + {b}",
                        "difference": "{a} - {b}"}
_PERCENTAGE_CHANGE = re.compile(
    r"percentage change|% change|percent change|percentage (increase|decrease)|growth rate", re.IGNORECASE)
#: "The absolute percentage change in the risk-free rate": of a rate, the change in percentage points
#: (TAT-QA's answers to it, on the tune half: 2 of 2).
_POINTS = re.compile(r"\babsolute (?:percentage|percent) change\b", re.IGNORECASE)
_AVERAGE = re.compile(r"\baverage\b", re.IGNORECASE)
_CHANGE = re.compile(r"\b(change|difference|increase|decrease)\b", re.IGNORECASE)
#: "The difference between A and B", "the difference in X between 2018 and 2019": how far apart they are,
#: the larger less the smaller (TAT-QA's answers to it are so, on the tune half: 6 of 6), where a change
#: or a net difference has a sign.
_DIFFERENCE = re.compile(r"(?<!\bnet )(?<!\bpercentage )\bdifference\b", re.IGNORECASE)
_SUM = re.compile(r"\bsum\b", re.IGNORECASE)
_TOTAL = re.compile(rf"\btotal\b|\baltogether\b|{_SUM.pattern}", re.IGNORECASE)
#: "Which years does the table provide information for X?", "In which years was X calculated?", "What are
#: the years included in the table?": the years its columns show.
_YEARS_SHOWN = re.compile(r"^\s*((in|for) )?(which|what) years?( \(s\)|\(s\))?\b"
                          r"|^\s*what are the years (included|shown|presented|covered|provided|listed)\b",
                          re.IGNORECASE)
#: "Which country had the highest X?", "In which segment was X the largest?": a row's label (not "second highest").
_WHICH_ROW = re.compile(r"^\s*(in )?which (?!(of the )?(fiscal )?(years?|period|quarter)\b)(?!.*\bsecond\b)"
                        r".*\b(highest|largest|greatest|biggest|most|lowest|smallest|least)\b", re.IGNORECASE)
_MORE = re.compile(r"\b(higher|larger|greater|more|highest|largest|greatest|most|bigger|biggest)\b", re.IGNORECASE)
_LESS = re.compile(r"\b(lower|smaller|less|fewer|lowest|smallest|least)\b", re.IGNORECASE)
#: "less than 600,000", "exceed $1,500", "greater than 2.0%": a threshold the question compares a row's cells
#: with (its number as the table writes it: TAT-QA's questions use the table's own unit).
_THRESHOLD = re.compile(
    r"\b(?:(?P<below>less than|lower than|smaller than|fewer than|below|under)"
    r"|(?:more than|greater than|higher than|larger than|above|over|exceed(?:s|ed|ing)?))"
    r"\s+\$?\s*(?P<number>-?\d[\d,]*(?:\.\d+)?)", re.IGNORECASE)
#: "How many years did X exceed N?": a count of years; "In which year(s) was X less than N?", "Which of the
#: years had X greater than N?": the years (and with no threshold, "Which year was X higher?": one year).
_HOW_MANY_YEARS = re.compile(r"^\s*how many (fiscal )?years\b", re.IGNORECASE)
_WHICH_YEARS = re.compile(r"\b(which|what) (of the )?(fiscal )?years?\b", re.IGNORECASE)
#: "2 0 1 8": a year some PDF text layers space out; "(1)": a footnote's mark after a heading.
_SPACED_YEAR = re.compile(r"\b([12]) ([09]) (\d) (\d)\b")
_FOOTNOTE = re.compile(r"\(\w\)")
#: "F19", "FY19", "FY 2019", "FY'19": a fiscal year as reports abbreviate it (Australian and British reports
#: head their columns "F19 | F18"), read as the year it ends in.
_FISCAL_YEAR = re.compile(r"\bF(?:Y ?'?)?((?:19|20)?\d\d)\b")


def _fiscal_years(text: str) -> str:
    """``text`` with each abbreviated fiscal year written as its year ("F19" -> "2019", "FY 2018" -> "2018")."""
    return _FISCAL_YEAR.sub(lambda m: m.group(1) if len(m.group(1)) == 4 else f"20{m.group(1)}", text)


#: "2017 to 2019", "2019 - 2017", "2017 through fiscal 2019": a range of years.
_YEAR_RANGE = re.compile(r"\b((?:19|20)\d\d) ?(?:to|through|-|\u2013) ?(?:fiscal )?(?:years? )?((?:19|20)\d\d)\b",
                         re.IGNORECASE)
_BRACKETS = re.compile(r"\([^)]*\)")
_PER_SHARE = re.compile(r"\bper (?:common |ordinary )?share\b|\bcents\b", re.IGNORECASE)
_FIGURE = re.compile(r"^\(?-?\(?[$€£¥]?\s*\(?-?\d[\d,]*(?:\.\d+)?\)?\s*%?\)?$")


@dataclass(frozen=True)
class Reading:
    """An answer read from a table, in the grounded answerer's short form (prompts/answer.toml):
    ``kind`` "answer" with the cell as ``parts``, or "compute" with an ``expression`` over cells; the
    ``scale`` of its figures and the number of the passage (1-based) it was read from."""

    kind: str
    parts: tuple[str, ...]
    expression: str | None
    scale: str
    source: int

    def answer(self) -> tuple[str, ...]:
        """What the reading answers: its cells as copied, or its calculation's value to 2 decimals (an
        expression the calculator refuses, such as a division by zero, stands as written)."""
        if self.kind == "answer":
            return self.parts
        try:
            return (str(round(compute(self.expression or "").value, 2)),)
        except InvalidExpressionError:
            return (self.expression or "",)

    def as_answerer_text(self) -> str:
        """The reading as the answerer would write it (what ``ShortAnswer.parse`` reads)."""
        head = f"answer: {' | '.join(self.parts)}" if self.kind == "answer" else f"compute: {self.expression}"
        scale = f"\nscale: {self.scale}" if self.scale else ""
        return f"{head}{scale}\nsources: [{self.source}]"


def _words(text: str) -> list[str]:
    """A label's or question's content words, lower case, a plural's final s dropped."""
    out = []
    for word in re.findall(r"[a-z]+", text.lower().replace("\u2019", "'")):
        if word in _ASKING_WORDS:
            continue
        out.append(word[:-1] if word.endswith("s") and len(word) > 3 else word)
    return out


def _year_heading(cell: str) -> str | None:
    """The year a header cell names ("2019", "2019 (1)", "2 0 1 8", "Fiscal 2019"); None for a cell naming
    none or two ("2019 vs. 2018": a comparison) or holding a figure beside it."""
    cell = _fiscal_years(_SPACED_YEAR.sub(lambda year: "".join(year.groups()), cell))
    if re.search(r"\d/\d", cell):  # a date ("30/7/2021") heads no year's column
        return None
    years = _YEAR.findall(cell)
    return years[0] if len(years) == 1 and _figure(_FOOTNOTE.sub("", _YEAR.sub("", cell))) is None else None


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in re.split(r"\s*\|\s*", line.strip())]


def _figure(cell: str) -> tuple[str, bool] | None:
    """A cell's figure as a calculation writes it ("$ 1,452.4" -> "1,452.4", "(134)" -> "-134") and
    whether it is a percentage; None when the cell is not a single figure."""
    text = cell.strip()
    if not text or not _FIGURE.match(text):
        return None
    percent = "%" in text
    negative = "(" in text and ")" in text or "-" in text
    digits = re.search(r"\d[\d,]*(?:\.\d+)?", text).group(0)
    return ("-" + digits if negative else digits), percent


@dataclass
class _Table:
    #: year -> the column it heads (the first, when it heads several).
    years: dict[str, int]
    #: column -> its header text, all header rows joined (for a "%" heading).
    headings: dict[int, str]
    rows: list[list[str]]
    #: the rows labelled "Total" here, their own label empty (the weakest claim to a question's "total")
    totals: list[int] = field(default_factory=list)
    #: row -> the title of the section it is in (a row with a label and no cells: "Revenue:")
    sections: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # each row (the list itself: two rows may hold equal cells) -> its number, for ``title_of``
        self._number = {id(row): number for number, row in enumerate(self.rows)}

    def title_of(self, row: list[str]) -> str:
        """The title of the section ``row`` (one of ``rows``) is in; "" when none."""
        return self.sections.get(self._number.get(id(row), -1), "")


def _table(text: str) -> _Table | None:
    """The table rows of a passage, its year columns and its body rows (those with a label)."""
    years: dict[str, int] = {}
    headings: dict[int, str] = {}
    rows = []
    totals: list[int] = []
    sections: dict[int, str] = {}
    title = ""
    for line in text.splitlines():
        if "|" not in line:
            continue
        cells = _cells(line)
        # a cell naming one year heads that year's column ("2019", "2019 (1)" with its footnote, "2 0 1 8" as
        # some PDFs space it); "2019 vs. 2018" heads a comparison of two
        in_header = [(i, year) for i, c in enumerate(cells) if i > 0 and (year := _year_heading(c))]
        # A header row names years and holds no figure ("$ million | 2019 | 2018 | Change (%)"); a row
        # with an empty first cell is a header row too ("| Years Ended September 30,").
        named = {i for i, _ in in_header}
        header = bool(in_header) and not any(_figure(c) for i, c in enumerate(cells) if i > 0 and i not in named)
        if header:
            for i, year in in_header:
                years.setdefault(year, i)
        if not cells[0] and rows and not header and any(_figure(c) for c in cells[1:]):
            # figures with no label under a table's body rows: the total of the rows above
            # ("Other | 504 | 564" then " | $3,571 | $3,416"), as a typeset total line is not labelled
            cells[0] = "Total"
            totals.append(len(rows))
        if not cells[0] or header:
            for i, c in enumerate(cells):
                headings[i] = f"{headings.get(i, '')} {c}".strip()
            continue
        if not any(cells[1:]):
            title = cells[0]
        elif title:
            sections[len(rows)] = title
        rows.append(cells)
    if not years:
        return _by_year_rows(headings, rows)
    return _Table(years, headings, rows, totals, sections) if rows else None


def _by_year_rows(headings: dict[int, str], rows: list[list[str]]) -> _Table | None:
    """A table whose rows are years ("2021 | $138 | $6" under "| Operating Leases | Finance Leases"), turned
    so that each column is a row labelled by its heading and each year a column; None when fewer than two
    rows are labelled by a year."""
    by_year = [row for row in rows if _YEAR.fullmatch(row[0].strip())]
    if len(by_year) < 2:
        return None
    width = max(len(row) for row in by_year)
    turned = [[headings.get(i, ""), *(row[i] if i < len(row) else "" for row in by_year)] for i in range(1, width)]
    turned = [row for row in turned if row[0]]
    years = {row[0].strip(): i for i, row in enumerate(by_year, 1)}
    return _Table(years, {}, turned) if turned and len(years) == len(by_year) else None


def _row(question: str, table: _Table) -> list[str] | None:
    """The row whose label's every word the question holds, the longest such label; None when there is
    none, or two rows tie (which of them is meant is not said). Of two labels as long, a row with cells
    goes before a section's title ("Revenue: |  |" above "Service | 12,899 | 12,621")."""
    asked = set(_words(_YEAR.sub(" ", question)))
    best, best_score, tied = None, 0.0, False
    for number, row in enumerate(table.rows):
        label = _words(row[0])
        # "Product" under "Revenue:" is "product revenue" to a question that says so; "Net income (loss)" is
        # "net income" to one that leaves out what the brackets add
        # (a weaker claim than a label's own: "Free cash flow" goes before "Free cash flow (pre-spectrum)")
        variants = ((label + [word for word in _words(table.sections.get(number, "")) if word not in label], 0.0),
                    (label, 0.0), (_words(_BRACKETS.sub(" ", row[0])), 0.25))
        label, weaker = next(((words, less) for words, less in variants
                              if words and all(word in asked for word in words)), (None, 0.0))
        if label is None:
            continue
        score = (len(label) - weaker + (0.5 if any(row[1:]) else 0.0)
                 - (0.75 if number in table.totals else 0.0))
        if score > best_score:
            best, best_score, tied = row, score, False
        elif score == best_score and row[0].lower() != best[0].lower():
            tied = True
    return None if tied else best


def _without_label(question: str, label: str) -> str:
    """The question with the row's label left out: its own words ("Weighted-average", "Total") ask nothing."""
    return re.sub(re.escape(label), " ", question, flags=re.IGNORECASE)


def _threshold(text: str) -> re.Match | None:
    """The threshold a question compares with ("exceed $1,500"), not a year ("over 2019")."""
    found = _THRESHOLD.search(text)
    return None if found is None or _YEAR.fullmatch(found.group("number")) else found


def _operation(question: str, label: str) -> str | None:
    """What the question asks of its row: "cell", "change", "difference", "percentage change", "average",
    or the year of its "highest year" or "lowest year" (None: a form not read here). The row's own label is
    left out first: "Weighted-average shares" asks no average."""
    several_years = len(set(_YEAR.findall(question))) > 1
    # "What was X in 2019 and 2018 respectively?": each year's cell (the word asks for no other form)
    if _NOT_A_CELL.search(_RESPECTIVE.sub(" ", question) if several_years else question) \
            or _PART_OF_A_YEAR.search(question):
        return None
    rest = _without_label(question, label)
    threshold = _threshold(rest)
    if threshold:
        side = "below" if threshold.group("below") else "above"
        if _HOW_MANY_YEARS.search(rest):
            return f"count {side}"
        return f"years {side}" if _WHICH_YEARS.search(rest) else None
    if _WHICH_YEARS.search(rest):
        # "Which year was X higher?"; not "In which years was X less than 600,000?" (a threshold)
        if re.search(r"\d", _YEAR.sub(" ", rest)) or bool(_MORE.search(rest)) == bool(_LESS.search(rest)):
            return None
        return "highest year" if _MORE.search(rest) else "lowest year"
    if _PERCENTAGE_CHANGE.search(rest):
        return "change" if _POINTS.search(rest) else "percentage change"
    if _AVERAGE.search(rest):
        # "the change between the 2018 and 2019 averages": two averages, not read here
        return None if _CHANGE.search(rest) else "average"
    if _CHANGE.search(rest):
        return "difference" if _DIFFERENCE.search(rest) else "change"
    return "cell"


def _highest_row(question: str, table: _Table, source: int) -> tuple[Reading, int] | None:
    """"Which country had the highest revenue in 2019?": the label of the row with the highest (or lowest)
    figure in the year's column (the year named, else the only one shown), of the rows that are neither a
    total nor named by the question; None when fewer than two rows have a figure there, they mix amounts
    and percentages, or two share the highest."""
    years = set(_YEAR.findall(question)) or set(table.years)
    if len(years) != 1 or (year := years.pop()) not in table.years:
        return None
    column = table.years[year]
    asked = set(_words(question))
    values, percent = {}, set()
    for number, row in enumerate(table.rows):
        figure = _figure(row[column]) if column < len(row) else None
        label = _words(row[0])
        # a total, or a row the question names ("revenue" in "the highest revenue"), is no candidate
        if figure is None or number in table.totals or "total" in label or all(w in asked for w in label):
            continue
        values[row[0]] = _value(figure)
        percent.add(figure[1])
    if len(values) < 2 or len(percent) > 1:  # amounts and percentages are not compared
        return None
    pick = _extreme(values, lowest=bool(_LESS.search(question)))
    return None if pick is None else (Reading("answer", (pick,), None, "", source), 0)


def _years_shown(question: str) -> bool:
    """Whether the question asks which years a table (or a row of it) shows: "which years" with no
    comparison ("which year was X higher") and no threshold ("which years did X exceed 0.5")."""
    compared = (_MORE.search(question) or _LESS.search(question)
                or re.search(r"\bexceed|\babove|\bbelow", question, re.IGNORECASE))
    return bool(_YEARS_SHOWN.search(question)) and not compared and not re.search(r"\d", _YEAR.sub(" ", question))


def _scale(figures: Sequence[tuple[str, bool]], headed: str, unit: str) -> str:
    """The scale of figures read from cells: percent when a cell or the titles over them (``headed``)
    say "%", else the unit the document states."""
    if any(p for _, p in figures) or "%" in headed:
        return "percent"
    # a per-share figure is not counted in the document's millions ("Basic earnings per share (cents)")
    return "" if _PER_SHARE.search(headed) else unit


def _two_rows(question: str, table: _Table, unit: str, source: int) -> tuple[Reading, list] | None:
    """A question about two rows in one year (``_TWO_ROWS``), each row the one its part of the question
    names, and those rows; None when it is not of that form, or a row, the year or a cell is not found."""
    years = sorted(set(_YEAR.findall(question)))
    if len(years) != 1 or years[0] not in table.years or _PART_OF_A_YEAR.search(question):
        return None
    for name, pattern in _TWO_ROWS:
        found = pattern.search(question)
        if found is None:
            continue
        rows = [_row(found.group(part), table) for part in ("a", "b")]
        if any(row is None for row in rows) or rows[0] is rows[1]:
            return None
        column = table.years[years[0]]
        figures = [_figure(row[column]) if column < len(row) else None for row in rows]
        if any(f is None for f in figures):
            return None
        if name in ("share", "ratio") and _value(figures[1]) == 0:
            return None
        if name == "both":
            return Reading("answer", tuple(row[column] for row in rows), None,
                           _scale(figures, table.headings.get(column, ""), unit), source), rows
        if name == "difference":
            figures = list(_apart(*figures))
        expression = _TWO_ROW_EXPRESSIONS[name].format(a=_operand(figures[0]), b=_operand(figures[1]))
        if name in ("share", "ratio"):  # a share is a percentage; a ratio of two amounts has no unit
            scale = "percent" if name == "share" else ""
        else:  # a sum or difference of two cells is in their unit
            scale = _scale(figures, table.headings.get(column, ""), unit)
        return Reading("compute", (), expression, scale, source), rows
    return None


def _claim(question: str, table: _Table, rows: Sequence[list[str]]) -> int:
    """How many of the question's words the labels (and section titles) of the rows read say."""
    said = {word for row in rows for word in _words(f"{row[0]} {table.title_of(row)}")}
    return len(said & set(_words(_YEAR.sub(" ", question))))


def _read_one(question: str, text: str, unit: str, source: int) -> tuple[Reading, int] | None:
    """The reading of one passage and its claim (``_claim``); None when it reads nothing."""
    table = _table(text)
    if table is None:
        return None
    two = _two_rows(question, table, unit, source)
    if two is not None:
        return two[0], _claim(question, table, two[1])
    if _years_shown(question):
        if len(table.years) < 2:
            return None
        return Reading("answer", tuple(sorted(table.years, reverse=True)), None, "", source), 0
    if _WHICH_ROW.search(question):
        return _highest_row(question, table, source)
    row = _row(question, table)
    if row is None:
        return None
    reading = _read_row(question, table, row, unit, source)
    return None if reading is None else (reading, _claim(question, table, [row]))


def _read_row(question: str, table: _Table, row: list[str], unit: str, source: int) -> Reading | None:
    """What the question asks of ``row`` (``_operation``), read from its cells; None when a year or cell is
    missing or the form is not read here."""
    operation = _operation(question, row[0])
    asked = sorted(set(_YEAR.findall(question)), reverse=True)
    if operation and operation.split()[0] in ("count", "years"):
        asked = sorted(table.years, reverse=True)  # "In which years was X less than N?": among every year shown
    if operation in ("average", "highest year", "lowest year") and not asked:
        asked = sorted(table.years, reverse=True)  # "the average X", "which year was X higher": every year shown
    if operation in ("change", "difference", "percentage change") and not asked and len(table.years) == 2:
        asked = sorted(table.years, reverse=True)  # "What was the change in closing cash?": between the two shown
    in_order = list(dict.fromkeys(_YEAR.findall(question)))
    if operation == "cell" and (span := _YEAR_RANGE.search(question)):
        # "X from 2017 to 2019", "for fiscal years 2019 to 2017 respectively": every year of the range
        first, last = int(span.group(1)), int(span.group(2))
        in_order = [str(year) for year in range(first, last + (1 if last > first else -1), 1 if last > first else -1)]
        asked = sorted(in_order, reverse=True)
    if operation is None or not asked or any(year not in table.years for year in asked):
        return None

    def figure(year: str) -> tuple[str, bool] | None:
        column = table.years[year]
        return _figure(row[column]) if column < len(row) else None

    def scale(figures: Sequence[tuple[str, bool]]) -> str:
        headed = " ".join([*(table.headings.get(table.years[y], "") for y in asked), table.title_of(row), row[0]])
        return _scale(figures, headed, unit)

    if operation == "cell":
        found = [figure(year) for year in asked]
        if any(f is None for f in found):
            return None
        if len(asked) == 1:
            if _SUM.search(question):  # "the sum of A and B in 2019", A or B not found
                return None
            return Reading("answer", (row[table.years[asked[0]]],), None, scale(found), source)
        if _TOTAL.search(_without_label(question, row[0])):  # "the total X in 2018 and 2019": their sum
            return Reading("compute", (), " + ".join(_operand(f) for f in found), scale(found), source)
        # "What was X in 2019 and 2018?": each year's cell, in the order the question names the years
        return Reading("answer", tuple(row[table.years[year]] for year in in_order), None, scale(found), source)
    if operation.split()[0] in ("count", "years"):
        figures = {year: figure(year) for year in asked}
        if len(figures) < 2 or any(f is None for f in figures.values()):
            return None
        limit = float(_threshold(_without_label(question, row[0])).group("number").replace(",", ""))
        values = {year: _value(f) for year, f in figures.items()}
        chosen = [y for y, v in values.items() if (v < limit if operation.endswith("below") else v > limit)]
        if not chosen:  # none: more likely a misread threshold than an answer of "no year"
            return None
        parts = (str(len(chosen)),) if operation.startswith("count") else tuple(chosen)
        return Reading("answer", parts, None, "", source)
    if operation in ("highest year", "lowest year"):
        figures = {year: figure(year) for year in asked}
        if len(figures) < 2 or any(f is None for f in figures.values()):
            return None
        values = {year: _value(f) for year, f in figures.items()}
        pick = _extreme(values, lowest=operation == "lowest year")
        return None if pick is None else Reading("answer", (pick,), None, "", source)
    if operation == "average":
        if len(asked) == 1:  # "the 2019 average X": of the year's and the year before's balances
            asked = [asked[0], str(int(asked[0]) - 1)]
        else:  # "from 2017 to 2019": every year between
            asked = [str(y) for y in range(int(asked[-1]), int(asked[0]) + 1)][::-1]
        figures = [figure(y) if y in table.years else None for y in asked]
        if len(figures) < 2 or any(f is None for f in figures):
            return None
        expression = f"({' + '.join(_operand(f) for f in figures)}) / {len(figures)}"
        return Reading("compute", (), expression, scale(figures), source)
    if len(asked) != 2:
        return None
    later, earlier = figure(asked[0]), figure(asked[1])
    if later is None or earlier is None:
        return None
    if operation in ("change", "difference"):
        first, second = _apart(later, earlier) if operation == "difference" else (later, earlier)
        return Reading("compute", (), f"{_operand(first)} - {_operand(second)}", scale([later, earlier]), source)
    if _value(earlier) == 0:
        return None
    expression = f"({_operand(later)} - {_operand(earlier)}) / {_operand(earlier)} * 100"
    return Reading("compute", (), expression, "percent", source)


def _apart(a: tuple[str, bool], b: tuple[str, bool]) -> tuple[tuple[str, bool], tuple[str, bool]]:
    """Two figures, the larger first (a difference says how far apart they are)."""
    return (a, b) if _value(a) >= _value(b) else (b, a)


def _extreme(values: dict[str, float], lowest: bool) -> str | None:
    """The key of the highest (or lowest) of ``values``; None when two share it (which one is meant?)."""
    pick = (min if lowest else max)(values, key=values.get)
    return None if list(values.values()).count(values[pick]) > 1 else pick


def _value(figure: tuple[str, bool]) -> float:
    """A cell's figure (``_figure``) as a number."""
    return float(figure[0].replace(",", ""))


def _operand(figure: tuple[str, bool]) -> str:
    digits, _ = figure
    return f"({digits})" if digits.startswith("-") else digits


def read(question: str, passages: Sequence[tuple[str, str]]) -> Reading | None:
    """The answer to ``question`` read from ``passages`` (each its text and the unit its document states
    for its figures, ``figures.stated_unit``; best first): from the passage whose rows read name most of
    the question's words, the first of those; None when none holds a row it names or the question is of
    another form. (A search ranks a passage by all its words; the row read is what the answer stands on:
    "Basic net income per common share" read from the third passage goes before "Net income" from the first.)"""
    readings = read_all(question, passages)
    return readings[0][0] if readings else None


def read_all(question: str, passages: Sequence[tuple[str, str]]) -> list[tuple[Reading, int]]:
    """Each passage's reading with its claim (how many of the question's words the rows read name), best
    first: the most claim, and of equal claims the earlier passage (``read`` takes the first)."""
    question = _fiscal_years(question)
    readings = [found for number, (text, unit) in enumerate(passages, 1)
                if (found := _read_one(question, text, stated_unit(text) or unit, number)) is not None]
    return sorted(readings, key=lambda found: -found[1])
