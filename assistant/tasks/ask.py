"""The advisory chat turn: a system prompt that keeps answers factual, and a
not-investment-advice notice appended where the question asks for advice.

Grounded in the user's documents when the caller brings passages from the document library
(``assistant.library``): the question is answered from those passages only, framed as quoted,
numbered data, and the answer carries them as citations; when even the best passage is far from the
question, the answer is a fixed sentence saying the documents do not contain it, with no generation.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

from ..calculator import Computation, InvalidExpressionError, compute, format_figure
from ..figures import unstated
from ..types import Generation, Message, SamplingParams
from ..errors import InvalidParameterError
from ..inputs import ensure_text
from ..library import Passage
from ..prompts import load_prompt
from ..table_reader import read_all as read_tables
from .base import Pipeline

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Citation:
    """A passage an answer was written from, numbered as the answer cites it ([1], [2], ...)."""

    number: int
    document: str
    page: int
    #: The passage's character span on its page.
    start: int
    end: int
    passage: str

    @classmethod
    def of(cls, number: int, passage: Passage) -> Citation:
        return cls(number, passage.document, passage.page, passage.start, passage.end, passage.text)

    def to_dict(self) -> dict:
        return {"number": self.number, "document": self.document, "page": self.page, "start": self.start,
                "end": self.end, "passage": self.passage}

    def __str__(self) -> str:
        """One line: the citation as the CLI prints it and the audit log stores it."""
        return f"[{self.number}] {self.document}, page {self.page}: {' '.join(self.passage.split())}"


@dataclass(frozen=True)
class ShortAnswer:
    """What the grounded answerer wrote (prompts/answer.toml), parsed: text copied from the passages
    (``kind`` "answer": its ``parts``), a calculation over figures copied from them ("compute": its
    ``expression``), or "not_found"; the ``scale`` its figures are counted in and the passages it
    names as its ``sources``."""

    kind: str
    parts: tuple[str, ...] = ()
    expression: str | None = None
    scale: str = ""
    sources: tuple[int, ...] = ()

    @classmethod
    def parse(cls, text: str) -> ShortAnswer | None:
        """The answerer's text parsed; None when it is not in the answerer's form."""
        lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
        if not lines:
            return None
        head, _, value = lines[0].partition(":")
        head = head.strip().lower()
        if lines[0].lower().rstrip(".") == "not found":
            return cls("not_found")
        fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        scale = fields.get("scale", "").lower()
        scale = scale if scale in ("thousand", "million", "billion", "percent") else ""
        sources = tuple(int(n) for n in re.findall(r"\[(\d+)\]", fields.get("sources", "")))
        if head == "answer" and value.strip():
            return cls("answer", tuple(p.strip() for p in value.split(" | ") if p.strip()), None, scale, sources)
        if head == "compute" and value.strip():
            return cls("compute", (), value.strip(), scale, sources)
        return None

    def to_dict(self) -> dict:
        return {"kind": self.kind, "parts": list(self.parts), "expression": self.expression, "scale": self.scale,
                "sources": list(self.sources)}


@dataclass
class Answer:
    text: str
    #: Whether the not-investment-advice notice was appended.
    advice_notice: bool
    generation: Generation
    #: The passages of the user's documents the answer was written from (none when not grounded).
    citations: list[Citation] = field(default_factory=list)
    #: Whether the documents were found not to hold the answer (the text then says so).
    declined: bool = False
    #: The grounded answerer's own answer, its copied parts snapped to the passages' words (``snapped``);
    #: None when the answer was written freely or declined unasked.
    short: ShortAnswer | None = None
    #: For a computed answer: the expression, its figures, the result (``assistant.calculator``).
    computation: Computation | None = None
    #: The numbers of the citations the answerer's answer comes from, checked against their text (``sourced``).
    sources: list[int] = field(default_factory=list)
    #: Read from a table row the question names (``assistant.table_reader``), not written by the answerer.
    read_from_table: bool = False
    #: Other documents whose tables answer the question as well, with other figures (a question that names
    #: no report, "net income in 2019", in a library of several): asking of one document settles it.
    also_answered_by: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        g = self.generation
        return {
            "text": self.text,
            "advice_notice": self.advice_notice,
            "finish_reason": g.finish_reason,
            "usage": {"prompt_tokens": g.prompt_tokens, "completion_tokens": g.completion_tokens},
            "citations": [c.to_dict() for c in self.citations],
            "declined": self.declined,
            "computation": self.computation.to_dict() if self.computation else None,
            "sources": list(self.sources),
            "read_from_table": self.read_from_table,
            "also_answered_by": list(self.also_answered_by),
        }

    def __str__(self) -> str:
        return self.text


@dataclass
class AskTurn:
    """One chat turn as the ask task sends it: the conversation (system prompt first), how to sample,
    whether the not-investment-advice notice is due, and, when grounded in the user's documents, the
    passages it cites or whether it is declined for want of them."""

    messages: list[Message]
    params: SamplingParams
    advice: bool
    citations: list[Citation] = field(default_factory=list)
    #: The documents do not hold the answer: the turn's answer is the fixed sentence, not a generation.
    declined: bool = False
    #: Answered by the grounded answerer (the shipped adapter) in its short form, then written out here
    #: (``ground`` declines a turn before it chooses the answerer, so a turn it declined has this False).
    answerer: bool = False
    #: The answer read from a table (``assistant.table_reader``) in the answerer's form: the answerer
    #: is not asked.
    reading: str | None = None
    #: Other documents whose tables the question reads as well, with other figures (``Answer.also_answered_by``).
    also_in: tuple[str, ...] = ()


#: Figures a calculation may use that no passage states: the whole numbers an average divides by (2
#: years ... 12 months), 100 (a percentage) and 1,000 (thousands to millions).
_CONSTANTS = frozenset({*range(1, 13), 100, 1000})


def _is_constant(figure: str) -> bool:
    digits = figure.strip().replace(",", "")
    return digits.isdigit() and int(digits) in _CONSTANTS


def normalise_history(history: object) -> list[Message]:
    """Accept [{"role", "content"}, ...] or [(user, assistant), ...] (Gradio's old tuple format)."""
    if history is None:
        return []
    if isinstance(history, (str, bytes)) or not isinstance(history, Sequence):
        raise InvalidParameterError("history must be a list of {role, content} messages or (user, assistant) pairs")
    messages: list[Message] = []
    for i, turn in enumerate(history):
        if isinstance(turn, dict):
            role, content = turn.get("role"), turn.get("content")
            if role not in ROLES:
                raise InvalidParameterError(f"history[{i}] has role {role!r}; use one of {', '.join(ROLES)}")
            messages.append({"role": role, "content": ensure_text(content, f"history[{i}].content")})
        elif isinstance(turn, (list, tuple)) and len(turn) == 2:
            user, assistant = turn
            if user:
                messages.append({"role": "user", "content": ensure_text(user, f"history[{i}][0]")})
            if assistant:
                messages.append({"role": "assistant", "content": ensure_text(assistant, f"history[{i}][1]")})
        else:
            raise InvalidParameterError(f"history[{i}] is neither a {{role, content}} message nor a (user, assistant) pair")
    return messages


def framed_question(grounding: dict, question: str, passages: Sequence[Passage],
                    redact: Callable[[str], str] | None = None) -> str:
    """The user's message of a grounded turn: the preamble, each passage quoted and numbered, the
    question (``grounding``: prompts/ask.toml ``[grounding]``). A passage's own triple quotes are
    broken up so that it cannot close its quotation. The answerer adapter is trained on messages
    written by this function (finetune/answer_data.py)."""
    quoted = [
        grounding["passage"].format(number=n, document=p.document, page=p.page,
                                    text=(redact(p.text) if redact else p.text).replace('"""', '"\u200b""'))
        for n, p in enumerate(passages, 1)
    ]
    return "\n\n".join([grounding["preamble"], *quoted, grounding["question"].format(question=question)])


def _squeezed(text: str) -> str:
    return re.sub(r"[\s,$€£¥]", "", text.lower())


def sourced(named: Sequence[int], citations: Sequence[Citation], items: Sequence[str],
            holds: Callable[[str, str], bool]) -> list[int]:
    """The citations an answer's ``items`` (copied parts, or a calculation's figures) come from: for
    each, the ones the answerer ``named`` that hold it (``holds(passage, item)``), else the first
    passage that does, else those it named. The answerer names passages by number as it read them,
    and a 135M model often names the wrong one for a figure it copied right: the text settles it."""
    out: set[int] = set()
    for item in items:
        held = [n for n in named if holds(citations[n - 1].passage, item)]
        first = next((c.number for c in citations if holds(c.passage, item)), None)
        out.update(held or ([first] if first is not None else named))
    return sorted(out) or list(named)


def _holds_text(passage: str, part: str) -> bool:
    """Whether a passage holds a copied part: its text, case, spaces, thousands commas and currency
    signs aside ("$ 1,452.4" and "$1452.4")."""
    return _squeezed(part) in _squeezed(passage)


#: A copied part is snapped to a passage's wording when at least this share of its words are found
#: there in order, within a stretch of the passage at most SNAP_STRETCH times its length (+2 words).
SNAP_SHARE = 0.6
SNAP_STRETCH = 1.3
_WORD = re.compile(r"\S+")


def _word_key(word: str) -> str:
    return re.sub(r"[^\w%.$-]", "", word.lower()).strip(".")


def snapped(part: str, passages: Sequence[str], others: Sequence[str] = ()) -> str:
    """A copied part of three words or more that no passage holds as written, replaced by the
    stretch of a passage it was copied from: the 135M answerer drops or swaps a word or stops a word
    early when copying a sentence ("the company expects to record expense" for the passage's "the
    Company expects to record the expense"), and an answer judged by its exact words is then wrong.
    The stretch runs from the first to the last word the part shares with the passage (difflib's
    longest matching blocks, in order), if they hold SNAP_SHARE of the part's words; the passage with
    the largest share wins, among ``passages`` first, then ``others``. Anything less like a passage is
    kept as the answerer wrote it."""
    words = [_word_key(w) for w in part.split()]
    if len(words) < 3 or any(_holds_text(passage, part) for passage in [*passages, *others]):
        return part
    best = _best_stretch(words, part, passages) or _best_stretch(words, part, others)
    return best or part


def _best_stretch(words: list[str], part: str, passages: Sequence[str]) -> str | None:
    """``snapped``'s stretch of the passage most like ``part`` (its ``words``), or None."""
    best: tuple[tuple[float, int], str] | None = None
    for passage in passages:
        spans = [(m.start(), m.end()) for m in _WORD.finditer(passage)]
        matcher = difflib.SequenceMatcher(None, words, [_word_key(passage[s:e]) for s, e in spans], autojunk=False)
        blocks = [b for b in matcher.get_matching_blocks() if b.size]
        share = sum(b.size for b in blocks) / len(words)
        if not blocks or share < SNAP_SHARE:
            continue
        first, last = blocks[0].b, blocks[-1].b + blocks[-1].size
        if last - first > SNAP_STRETCH * len(words) + 2:
            continue
        text = passage[spans[first][0]:spans[last - 1][1]]
        if not part.rstrip().endswith((".", ",")):
            text = text.rstrip(".,;")
        if best is None or (share, first - last) > best[0]:
            best = ((share, first - last), text)
    return best[1] if best else None


def _holds_figure(passage: str, figure: str) -> bool:
    return not unstated([figure], passage)


def _cited(numbers: Sequence[int]) -> str:
    return " ".join(f"[{n}]" for n in numbers)


def _with_scale(part: str, scale: str) -> str:
    """A copied figure with the scale the answerer gave it ("$1,496.5" in millions: "$1,496.5 million")."""
    if not scale or not re.search(r"\d", part) or re.search(r"(%|thousand|million|billion)\s*$", part, re.I):
        return part
    return part + "%" if scale == "percent" else f"{part} {scale}"


class AskPipeline(Pipeline):
    name = "ask"

    def __init__(self, engine) -> None:
        super().__init__(engine)
        self.config = load_prompt("ask")
        #: The grounded answerer's prompt, sampling and wording (prompts/answer.toml).
        self.answerer = load_prompt("answer")

    @cached_property
    def _advice_patterns(self) -> list[re.Pattern]:
        return [re.compile(p, re.IGNORECASE) for p in self.config["advice_patterns"]]

    def asks_for_advice(self, question: str) -> bool:
        return any(p.search(question) for p in self._advice_patterns)

    def sampling(self, overrides: dict) -> SamplingParams:
        """The chat defaults from prompts/ask.toml, overridden by the caller's arguments."""
        try:
            return SamplingParams(**{**self.config["generation"], **overrides})
        except TypeError as exc:  # an unknown keyword argument
            raise InvalidParameterError(f"unknown sampling parameter: {exc}") from exc

    @property
    def grounding(self) -> dict:
        """How answers are grounded in documents (prompts/ask.toml ``[grounding]``): ``passages`` to
        retrieve, ``min_similarity`` and ``min_coverage``, and the wording."""
        return self.config["grounding"]

    def preprocess(self, inputs, history=None, evidence: Sequence[Passage] | None = None,
                   redact: Callable[[str], str] | None = None, answerer: bool = True, **sampling) -> AskTurn:
        question = ensure_text(inputs, "question")
        messages = normalise_history(history)
        messages.append({"role": "user", "content": question})
        return self.conversation(messages, evidence=evidence, redact=redact, answerer=answerer, **sampling)

    def conversation(self, messages: Sequence[Message], evidence: Sequence[Passage] | None = None,
                     redact: Callable[[str], str] | None = None, answerer: bool = True, **sampling) -> AskTurn:
        """A whole conversation (OpenAI-style messages, the question last) as a turn of this task: the
        ask system prompt first unless the conversation brings its own (an OpenAI client's system
        message is kept), the ask sampling defaults under ``sampling``, and the notice due when the
        last user message asks for advice. Every front door (Python, CLI, web chat, HTTP chat) goes
        through here, so the same question gets the same kind of answer everywhere.

        ``evidence``: passages of the user's documents found for the question (None: not grounded; see
        ``ground``). ``redact``: what the passages go through before the model sees them.
        ``answerer``: False writes a grounded answer freely even where the answerer adapter serves."""
        # An empty message (an OpenAI client's placeholder turn) says nothing: it is left out.
        messages = normalise_history([m for m in messages if not (isinstance(m, dict) and isinstance(
            m.get("content"), str) and not m["content"].strip())])
        if not any(m["role"] == "user" for m in messages):
            raise InvalidParameterError("the conversation has no user message to answer")
        own_system = messages[0]["role"] == "system"
        if not own_system:
            system = self.config["system"] if evidence is None else self.grounding["system"]
            messages.insert(0, {"role": "system", "content": system})
        question = next(m["content"] for m in reversed(messages) if m["role"] == "user")
        turn = AskTurn(messages, self.sampling(sampling), self.asks_for_advice(question))
        if evidence is None:
            return turn
        # A client's own system prompt asks for its own kind of answer: written freely from the passages.
        return self.ground(turn, evidence, redact, answerer=answerer and not own_system)

    def answerable(self, evidence: Sequence[Passage]) -> bool:
        """Whether ``evidence`` may hold the answer: some passage is as close to the question as
        ``min_similarity`` (embeddings) and some passage holds ``min_coverage`` of its subject words
        (``Passage.coverage``). Otherwise the documents are taken not to hold it, and the question
        is declined without asking the model."""
        return bool(evidence) and (max(p.similarity for p in evidence) >= self.grounding["min_similarity"]
                                   and max(p.coverage for p in evidence) >= self.grounding["min_coverage"])

    def ground(self, turn: AskTurn, evidence: Sequence[Passage], redact: Callable[[str], str] | None = None,
               answerer: bool = True) -> AskTurn:
        """The turn answered from ``evidence`` (best first): declined unless ``answerable``; else its
        last user message becomes the passages, quoted and numbered under a preamble that calls them
        data, then the question.

        With ``answerer`` and the engine's answerer adapter (the default generator's), the question alone
        (no history) and the first ``passages`` of prompts/answer.toml go to the answerer, which copies
        or computes the answer (``written``); a question about a table row that a passage found holds,
        in a form the table reader knows, is read from the table instead (``read_tables``), and the
        passages cited run to the one it was read from. Otherwise the answer is written freely from the passages;
        those that would not leave room in the window for the answer are left out, the last first (at
        least one is kept: a window too small even for it is the engine's error to report)."""
        if not self.answerable(evidence):
            return replace(turn, declined=True)
        last = max(i for i, m in enumerate(turn.messages) if m["role"] == "user")
        question = turn.messages[last]["content"]
        if answerer and self.engine.answerer_adapter is not None:
            passages = list(evidence)[:self.answerer["passages"]]
            messages = [{"role": "system", "content": self.answerer["system"]},
                        {"role": "user", "content": self.framed(question, passages, redact)}]
            params = replace(turn.params, **self.answerer["generation"])
            reading, also_in = None, ()
            if self.answerer["read_tables"]:
                # The reader reads every passage found, not only the answerer's first few (a table row
                # the question names is worth reading even fifth), but only those that hold the
                # question's subject as the gate asks (``min_coverage``): another company's table with
                # a row of that name is not read (TAT-QA dev, tune half: docs/results.md).
                readable = [(n, p) for n, p in enumerate(evidence, 1) if p.coverage >= self.grounding["min_coverage"]]
                readings = read_tables(question, [(redact(p.text) if redact else p.text, p.unit) for _, p in readable])
                if readings:
                    (found, claim), others = readings[0], readings[1:]
                    source, document = readable[found.source - 1][0], readable[found.source - 1][1].document
                    reading = replace(found, source=source).as_answerer_text()
                    passages = list(evidence)[:max(len(passages), source)]
                    # As good a reading of another document, of another figure: the question does not say
                    # which report it is about (most wrong readings on TAT-QA dev are of this kind).
                    also_in = tuple(dict.fromkeys(
                        other_document for other, other_claim in others
                        if other_claim == claim and other.answer() != found.answer()
                        and (other_document := readable[other.source - 1][1].document) != document))
            return replace(turn, messages=messages, params=params, answerer=True, reading=reading, also_in=also_in,
                           citations=[Citation.of(n, p) for n, p in enumerate(passages, 1)])
        passages = list(evidence)
        while True:
            messages = list(turn.messages)
            messages[last] = {"role": "user", "content": self.framed(question, passages, redact)}
            fits = self.engine.prompt_ids(messages).shape[1] + turn.params.max_new_tokens <= self.engine.context_window
            if fits or len(passages) == 1:
                break
            passages.pop()
        citations = [Citation.of(n, p) for n, p in enumerate(passages, 1)]
        return replace(turn, messages=messages, citations=citations)

    def framed(self, question: str, passages: Sequence[Passage], redact: Callable[[str], str] | None = None) -> str:
        """The user's message of a grounded turn (``framed_question`` with this task's wording)."""
        return framed_question(self.grounding, question, passages, redact)

    def declined(self) -> Generation:
        """The answer of a declined turn: the fixed sentence, nothing generated."""
        return Generation(self.grounding["not_found"], prompt_tokens=0, completion_tokens=0, finish_reason="stop")

    def forward(self, prepared: AskTurn) -> tuple[AskTurn, Generation]:
        if prepared.declined:
            return prepared, self.declined()
        if prepared.reading is not None:
            return prepared, Generation(prepared.reading, prompt_tokens=0, completion_tokens=0, finish_reason="stop")
        if prepared.answerer:
            return prepared, self.engine.answerer().submit(prepared.messages, prepared.params).wait()
        return prepared, self.engine.generate(prepared.messages, prepared.params)

    def written(self, prepared: AskTurn, generation: Generation) -> Answer:
        """The grounded answerer's answer written out: copied text or the computed result with the
        passages it came from, and for a calculation the expression and its figures; the fixed
        sentence when it found the answer not in the passages; its raw text when not in its form."""
        short = ShortAnswer.parse(generation.text)
        citations = prepared.citations
        if short is None:
            return Answer(generation.text.strip(), False, generation, citations)
        if short.kind == "not_found":
            return Answer(self.grounding["not_found"], False, generation, [], declined=True, short=short)
        wording = self.answerer["written"]
        named = [n for n in short.sources if 1 <= n <= len(citations)] or [1]
        if short.kind == "answer":
            # Snapped to the passages the answerer named first: a stretch of another passage worded alike
            # would move the citation to a document it did not read the answer from.
            own = [citations[n - 1].passage for n in named]
            others = [c.passage for c in citations if c.number not in named]
            short = replace(short, parts=tuple(snapped(part, own, others) for part in short.parts))
            numbers = sourced(named, citations, short.parts, _holds_text)
            text = "; ".join(_with_scale(part, short.scale) for part in short.parts)
            return Answer(wording["copied"].format(text=text, sources=_cited(numbers)), False, generation, citations,
                          short=short, sources=numbers)
        try:
            computation = compute(short.expression or "", short.scale)
        except InvalidExpressionError as exc:
            return Answer(wording["not_computable"].format(error=exc, sources=_cited(named)), False, generation,
                          citations, short=short, sources=named)
        figures = [op for op in computation.operands if not _is_constant(op)]
        if unstated(figures, " ".join(c.passage for c in citations)):
            # A figure the passages do not state is a guess (the model mixing two cells: "6,778" from
            # 6,639 and 5,778): declined like an answer not found, never shown as computed.
            return Answer(self.grounding["not_found"], False, generation, [], declined=True, short=short)
        numbers = sourced(named, citations, figures, _holds_figure)
        text = wording["computed"].format(result=format_figure(computation.value, short.scale),
                                          sources=_cited(numbers), expression=computation.expression,
                                          value=format_figure(computation.value))
        return Answer(text, False, generation, citations, short=short, computation=computation, sources=numbers)

    def notice_for(self, prepared: AskTurn, text: str) -> str:
        """The notice to append (with its separator), or "" when none is due."""
        notice = self.config["notice"]
        if not prepared.advice or notice.lower() in text.lower():
            return ""
        return ("\n\n" if text.strip() else "") + notice

    def postprocess(self, outputs: tuple[AskTurn, Generation]) -> Answer:
        prepared, generation = outputs
        if prepared.answerer:
            answer = self.written(prepared, generation)
            answer.read_from_table = prepared.reading is not None
            if prepared.also_in and not answer.declined:
                answer.also_answered_by = list(prepared.also_in)
                answer.text += "\n\n" + self.answerer["written"]["also_in"].format(
                    documents=", ".join(prepared.also_in))
            notice = self.notice_for(prepared, answer.text)
            answer.text, answer.advice_notice = answer.text + notice, bool(notice)
            return answer
        notice = self.notice_for(prepared, generation.text)
        return Answer(generation.text + notice, bool(notice), generation, prepared.citations, prepared.declined)

    def pieces(self, prepared: AskTurn) -> Iterator[str]:
        """Yield the turn's answer piece by piece as it is generated; the notice (if due) comes last.
        The answerer's short form is written out whole, once it is complete."""
        if prepared.answerer:
            answer = self.postprocess(self.forward(prepared))
            prepared.citations = answer.citations  # none when it found the answer not in the passages
            yield answer.text
            return
        stream = [self.declined().text] if prepared.declined else self.engine.stream(prepared.messages, prepared.params)
        text = ""
        for piece in stream:
            text += piece
            yield piece
        notice = self.notice_for(prepared, text)
        if notice:
            yield notice

    async def apieces(self, prepared: AskTurn) -> AsyncIterator[str]:
        """``pieces`` for event loops (the UI, the server): waiting holds no thread, and closing the
        iterator (a Stop button, a client gone) cancels the generation at the next token."""
        text = ""
        if prepared.reading is not None:
            answer = self.postprocess(self.forward(prepared))
            prepared.citations = answer.citations
            yield answer.text
            return
        if prepared.answerer:
            request = self.engine.answerer().submit(prepared.messages, prepared.params)
            async for _ in request:
                pass
            answer = self.postprocess((prepared, request.result))
            prepared.citations = answer.citations  # none when it found the answer not in the passages
            yield answer.text
            return
        if prepared.declined:
            text = self.declined().text
            yield text
        else:
            async for piece in self.engine.stream(prepared.messages, prepared.params):
                text += piece
                yield piece
        notice = self.notice_for(prepared, text)
        if notice:
            yield notice

    def stream(self, inputs, history=None, **params) -> Iterator[str]:
        """Yield the answer piece by piece (``preprocess``'s arguments); the notice (if due) comes last."""
        return self.pieces(self.preprocess(inputs, history, **params))

    def astream(self, inputs, history=None, **params) -> AsyncIterator[str]:
        """``stream`` for event loops."""
        return self.apieces(self.preprocess(inputs, history, **params))
