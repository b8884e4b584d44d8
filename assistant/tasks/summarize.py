"""Summarisation: extract the key sentences, then rewrite each into a bullet (the default), or
chunk-then-combine through the generator (``method="chunked"``, for any generator).

**extract** (after ECT-BPS, the ECTSum paper's system): the text is split into sentences (any
length: sentences are scored independently, so there is no context-window limit); the shipped
scorer (a head over the encoder's embeddings, ``finetune/summary_data.py`` says how it was
labelled) scores each as a key fact, or, for an encoder it was not trained on, the sentences
closest to the document's centre with figures first; the best are picked, near-duplicates
skipped, and kept in document order. Each is rewritten into one short bullet by the shipped
rewriter (the default generator with a LoRA fine-tuned on ECTSum) or, for another generator,
from the prompt alone. A bullet whose figures its source does not state (``assistant.figures``)
is never shown: its source sentence, shortened, takes its place. Every bullet keeps its source
sentences and their spans in the text.

**chunked**: a text that fits in one chunk is summarised directly. A longer one is split at
paragraph and sentence boundaries into chunks; each chunk is turned into notes (map) and the
notes are summarised in the requested style (reduce), repeating the map step while the notes are
still too long. Nothing is silently cut. Its bullets have no sources.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from ..types import Generation, SamplingParams
from ..errors import InputTooLongError
from ..figures import extract_numbers, figures_of, numeric_precision, stated_share
from ..inputs import ensure_choice, ensure_int, ensure_text
from ..prompts import load_prompt
from ..sentences import Sentence, sentence_spans
from .base import Pipeline

STYLES = ("bullets", "headline", "paragraph")
#: How a summary is made: extract-then-rewrite (the default, ``prompts/summarize.toml``) or the
#: generator's chunk-and-combine.
METHODS = ("extract", "chunked")
#: The word budgets a summary may ask for (the HTTP schema and the UI take their bounds from here).
MAX_WORDS_RANGE = (3, 1000)
_BULLET = re.compile(r"^\s*(?:[-*•–·]|\d+[.)])\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
#: Openings of spoken sentences that carry no fact ("So, ...", "And I'm pleased to report that ...").
_FILLER = re.compile(
    r"^(?:(?:and|so|now|also|well|ok(?:ay)?|yes|first|second|finally|overall|again|as (?:a result|you know|"
    r"mentioned)|in addition|turning to [^,]{1,40}|moving (?:on )?to [^,]{1,40})\s*,?\s+)+"
    r"|^(?:i'?m|we'?re|i am|we are) (?:very |really )?(?:pleased|happy|proud|excited) to (?:report|say|share|"
    r"announce) (?:that )?",
    re.IGNORECASE)


@dataclass
class Bullet:
    """One fact of a summary and the sentence(s) of the source it was written from."""

    text: str
    sources: list[Sentence] = field(default_factory=list)
    #: "rewritten": the rewriter's bullet, its figures checked against the sources; "source": the
    #: source sentence shortened (the rewrite stated a figure its source does not, or was empty);
    #: "generated": written by the chunked path (no sources).
    origin: str = "rewritten"

    def to_dict(self) -> dict:
        return {"text": self.text, "origin": self.origin, "sources": [asdict(s) for s in self.sources]}

    def __str__(self) -> str:
        return self.text


@dataclass
class Summary:
    text: str
    style: str
    bullets: list[Bullet] = field(default_factory=list)
    #: How many chunks the source was split into (1 = summarised in one pass; always 1 for "extract").
    chunks: int = 1
    #: The source's length in tokens of the model that read all of it: the generator ("chunked"),
    #: the encoder ("extract").
    source_tokens: int = 0
    seconds: float = 0.0
    method: str = "extract"
    #: Sources of a headline or paragraph (those of the bullets they were made from).
    sources: list[Sentence] = field(default_factory=list)

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in ("text", "style", "chunks", "source_tokens", "seconds", "method")}
        out["bullets"] = [b.to_dict() for b in self.bullets]
        out["sources"] = [asdict(s) for s in self.sources]
        return out

    def __str__(self) -> str:
        return self.text


@dataclass
class SummaryRequest:
    text: str
    style: str
    max_words: int
    started: float
    #: Called as ``progress(done, total, what)`` while long texts are worked through (UI progress bars).
    progress: Callable[[int, int, str], None] | None = None
    method: str = "extract"


@dataclass
class _Chunked:
    """What the chunked path's forward step hands to postprocess."""

    prepared: SummaryRequest
    generation: Generation
    chunks: int
    source_tokens: int


@dataclass
class _Extracted:
    """What the extract path's forward step hands to postprocess."""

    prepared: SummaryRequest
    bullets: list[Bullet]
    source_tokens: int
    #: The headline the generator wrote (headline style), with its sources in ``bullets``.
    headline: Generation | None = None


class SummarizePipeline(Pipeline):
    name = "summarize"

    def __init__(self, engine) -> None:
        super().__init__(engine)
        self.config = load_prompt("summarize")
        #: The rewriter's prompt (what the shipped adapter was trained on).
        self.bullet_config = load_prompt("bullet")
        #: The headliner's prompt (what the shipped headline adapter was trained on).
        self.headline_config = load_prompt("headline")

    def preprocess(self, inputs, style: str = "bullets", max_words: int | None = None,
                   progress: Callable[[int, int, str], None] | None = None,
                   method: str | None = None) -> SummaryRequest:
        text = ensure_text(inputs)
        style = ensure_choice(style, "style", STYLES)
        method = ensure_choice(method or self.config["method"], "method", METHODS)
        if max_words is None:
            max_words = self.config["styles"][style]["default_max_words"]
        max_words = ensure_int(max_words, "max_words", *MAX_WORDS_RANGE)
        return SummaryRequest(text, style, max_words, time.perf_counter(), progress, method)

    def forward(self, prepared: SummaryRequest) -> _Chunked | _Extracted:
        if prepared.method == "chunked":
            return self._forward_chunked(prepared)
        return self._forward_extract(prepared)

    def postprocess(self, outputs: _Chunked | _Extracted) -> Summary:
        if isinstance(outputs, _Chunked):
            return self._postprocess_chunked(outputs)
        return self._postprocess_extract(outputs)

    # ------------------------------------------------------------ extract: pick

    def ranked(self, text: str, k: int, lead: bool = False) -> tuple[list[Sentence], list[float], int]:
        """The ``k`` best sentences of ``text``, best first, their scores, and the encoder tokens read.

        Scored by the shipped scorer (its key probability) when it fits the encoder, else by closeness
        to the document's mean embedding with sentences stating figures first. Near-duplicates of a
        better sentence (cosine above ``[extract] redundancy``) are skipped: calls state results more
        than once. ``lead``: the first sentence is always one of them (a headline's: news put the story
        in their first sentence, calls name the company and the quarter there)."""
        import torch

        cfg = self.config["extract"]
        sentences = [s for s in sentence_spans(text) if len(s.text.split()) >= cfg["min_words"]]
        if not sentences:  # only fragments: take them as they are
            sentences = sentence_spans(text)
        texts = [s.text for s in sentences]
        scorer = self.engine.summary_scorer
        encoder = scorer.sentence_encoder if scorer is not None else self.engine.sentence_encoder
        embeddings = encoder.encode(texts)
        if scorer is not None:
            scores = scorer.predict_scores(texts, embeddings=embeddings)[:, scorer.labels.index(cfg["key_label"])]
        else:
            centre = torch.nn.functional.normalize(embeddings.mean(dim=0), dim=0)
            figures = torch.tensor([1.0 if extract_numbers(t) else 0.0 for t in texts])
            scores = embeddings @ centre + figures
        if lead:
            scores = scores.clone()
            scores[0] = float("inf")
        picked = select_diverse(scores, embeddings, k, cfg["redundancy"])
        tokens = sum(len(encoder.loaded.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
        return [sentences[i] for i in picked], [float(scores[i]) for i in picked], tokens

    def pick(self, text: str, k: int, lead: bool = False, sure_only: bool = False) -> tuple[list[Sentence], int]:
        """The ``k`` key sentences of ``text`` (``ranked``) in document order, and the encoder tokens read.
        ``sure_only``: beyond the best ``[extract] min_bullets``, only sentences the scorer gives a key
        probability of at least ``min_key_probability``: a call with fewer key facts gets fewer bullets,
        as its reference summary has fewer lines."""
        cfg = self.config["extract"]
        best, scores, tokens = self.ranked(text, k, lead)
        if sure_only and self.engine.summary_scorer is not None:  # best first, so what is kept is the best few
            best = [s for n, (s, p) in enumerate(zip(best, scores))
                    if n < cfg["min_bullets"] or p >= cfg["min_key_probability"]]
        return sorted(best, key=lambda s: s.start), tokens

    # --------------------------------------------------------- extract: rewrite

    def _forward_extract(self, prepared: SummaryRequest) -> _Extracted:
        cfg = self.config["extract"]
        is_headline = prepared.style == "headline"
        if is_headline:
            k = cfg["headline_sentences"]
        else:  # as many facts as the word budget has room for, up to max_bullets
            k = max(1, min(cfg["max_bullets"], prepared.max_words // cfg["words_per_bullet"]))
        self._report(prepared, 0, 2, "finding the key sentences")
        picked, tokens = self.pick(prepared.text, k, lead=is_headline, sure_only=not is_headline)
        self._report(prepared, 1, 2, "writing the summary")
        if is_headline:
            headline = self._headline(picked, prepared.max_words)
            self._report(prepared, 2, 2, "done")
            return _Extracted(prepared, [Bullet("", picked, "source")], tokens, headline)
        bullets = self.rewrite(picked, quarter_of(prepared.text))
        self._report(prepared, 2, 2, "done")
        return _Extracted(prepared, bullets, tokens)

    def rewrite(self, picked: Sequence[Sentence], period: str | None = None) -> list[Bullet]:
        """One bullet for each picked sentence, in their order: written by the rewriter (the shipped
        adapter where it applies) from the sentence cut to ``max_source_words``, and checked against it
        (``checked_bullet``; ``period``: the quarter the whole text is about)."""
        backend, _tuned = self.engine.rewriter()
        limit = self.config["extract"]["max_source_words"]
        generations = self._adapted_all(self.bullet_config, [_cut_words(s.text, limit) for s in picked], backend)
        return [self.checked_bullet(g.text, [s], period) for g, s in zip(generations, picked)]

    def headline_source(self, picked: Sequence[Sentence]) -> str:
        """What a headline is written from: the picked sentences, each cut to ``max_source_words``
        (the shipped headliner was trained on exactly this, ``finetune/summary_data.py``)."""
        limit = self.config["extract"]["max_source_words"]
        return "\n".join(_cut_words(s.text, limit) for s in picked)

    def _headline(self, picked: Sequence[Sentence], max_words: int) -> Generation:
        """The headline of the picked sentences: by the shipped headliner (the generator with the
        headline adapter, trained on Reuters) where it applies, else by the generator from the
        headline style's prompt."""
        source = self.headline_source(picked)
        backend = self.engine.headliner()
        if backend is None:
            instruction = self.config["styles"]["headline"]["instruction"].format(text=source, max_words=max_words)
            return self._complete(instruction, self._final_tokens("headline", max_words))
        return self._adapted_all(self.headline_config, [source], backend)[0]

    def _adapted_all(self, prompt: dict, inputs: Sequence[str], backend) -> list[Generation]:
        """Greedy generations for ``inputs`` in the conversation a shipped adapter was trained on:
        its prompt file's system prompt and ``[finetune]`` instruction (as ``finetune.train_generator``
        words training pairs), ``[generation] max_new_tokens``."""
        params = SamplingParams(max_new_tokens=prompt["generation"]["max_new_tokens"], temperature=0.0)
        requests = [[{"role": "system", "content": prompt["system"]},
                     {"role": "user", "content": prompt["finetune"]["instruction"].replace("{text}", text)}]
                    for text in inputs]
        return self._complete_all(requests, params, lambda done: None, backend=backend)

    def checked_bullet(self, written: str, sources: Sequence[Sentence], period: str | None = None) -> Bullet:
        """The rewriter's bullet when every figure in it is stated by its sources (after
        normalisation: "$1.5bn" = "1.5 billion"); otherwise, or when it is empty, the sources
        shortened. A figure the source does not state is never shown.

        Quarters are checked too: ECTSum's lines start "q1 revenue ...", so the rewriter writes a
        quarter even where its sentence says only "the quarter". A quarter becomes the one the
        sources name, else ``period`` (the quarter the whole text is about, ``quarter_of``), else
        it is dropped. ECTSum's placeholder for the company's name ("compname") is never shown."""
        lines = [_BULLET.sub("", line).strip() for line in written.strip().splitlines() if line.strip()]
        source = " ".join(s.text for s in sources)
        text = _fix_names(_fix_quarters(lines[0], quarter_of(source) or period)) if lines else ""
        if text and numeric_precision(text, source) in (None, 1.0):
            return Bullet(text, list(sources), "rewritten")
        return Bullet(shorten(source, self.config["extract"]["max_source_words"]), list(sources), "source")

    def _postprocess_extract(self, out: _Extracted) -> Summary:
        prepared, budget = out.prepared, out.prepared.max_words
        sources = [s for b in out.bullets for s in b.sources]
        if prepared.style == "headline":
            raw = out.headline.text if out.headline is not None else ""
            first = _headline_of(raw)
            source = " ".join(s.text for s in sources)
            if not first or numeric_precision(first, source) not in (None, 1.0):
                first = shorten(sources[0].text, budget) if sources else ""
            text = _cut_words(first, budget)
            return self._summary(out, text, [], sources)
        bullets: list[Bullet] = []
        seen: set[str] = set()
        for bullet in out.bullets:
            key = bullet.text.lower()
            if key in seen:
                continue
            used = sum(len(b.text.split()) for b in bullets)
            if bullets and used + len(bullet.text.split()) > budget:
                break
            seen.add(key)
            bullets.append(Bullet(_cut_words(bullet.text, budget), bullet.sources, bullet.origin))
        if prepared.style == "paragraph":
            text = " ".join(_as_sentence(b.text) for b in bullets)
            return self._summary(out, _cut_words(text, budget), bullets, sources)
        return self._summary(out, "\n".join(f"- {b.text}" for b in bullets), bullets, [])

    @staticmethod
    def _summary(out: _Extracted, text: str, bullets: list[Bullet], sources: list[Sentence]) -> Summary:
        return Summary(text=text, style=out.prepared.style, bullets=bullets, chunks=1,
                       source_tokens=out.source_tokens,
                       seconds=round(time.perf_counter() - out.prepared.started, 2), method="extract",
                       sources=sources)

    # ------------------------------------------------------------------ forward

    def _request(self, instruction: str, max_new_tokens: int) -> tuple[list[dict], SamplingParams]:
        messages = [
            {"role": "system", "content": self.config["system"]},
            {"role": "user", "content": instruction},
        ]
        params = SamplingParams(
            max_new_tokens=max_new_tokens,
            repetition_penalty=self.config["generation"]["repetition_penalty"],
        )
        return messages, params

    def _complete(self, instruction: str, max_new_tokens: int) -> Generation:
        return self.engine.generate(*self._request(instruction, max_new_tokens))

    def _complete_all(self, conversations: list[list[dict]], params: SamplingParams,
                      report: Callable[[int], None], backend=None) -> list[Generation]:
        """Run the conversations concurrently: they go through the batcher together, so n prompts
        cost about one batched pass, not n sequential ones. At most a batch's worth is in flight,
        so one long text never fills the service's queue. ``backend``: default the engine's."""
        backend = backend or self.engine.batcher()
        window = self.engine.batch_settings.max_batch_size
        results: list[Generation] = []
        for start in range(0, len(conversations), window):
            requests = [backend.submit(messages, params) for messages in conversations[start:start + window]]
            try:
                for request in requests:
                    results.append(request.wait())
                    report(len(results))
            finally:  # an error or an interrupt: free the rows still running
                for request in requests:
                    request.cancel()
        return results

    def _final_tokens(self, style: str, max_words: int) -> int:
        return int(max_words * self.config["generation"]["tokens_per_word"]) + 16

    def chunk_budget(self, max_new_tokens: int) -> int:
        """Tokens of source text per chunk: the configured size, or less if the window is small."""
        overhead = 200  # system prompt, instruction and chat markup
        room = self.engine.context_window - overhead - max_new_tokens
        return max(64, min(self.config["chunking"]["chunk_tokens"], room))

    def split(self, text: str, budget: int) -> list[str]:
        """Split at paragraph, then sentence, then word boundaries into pieces of at most ``budget`` tokens."""
        count = self.engine.count_tokens
        pieces: list[str] = []
        for para in (p.strip() for p in text.split("\n")):
            if not para:
                continue
            if count(para) <= budget:
                pieces.append(para)
                continue
            for sentence in _SENTENCE_END.split(para):
                if count(sentence) <= budget:
                    pieces.append(sentence)
                else:  # one enormous "sentence" (tables, lists without stops): cut by words
                    pieces.extend(self._split_words(sentence, budget))
        chunks: list[str] = []
        current: list[str] = []
        used = 0
        for piece in pieces:
            n = count(piece) + 1
            if current and used + n > budget:
                chunks.append("\n".join(current))
                current, used = [], 0
            current.append(piece)
            used += n
        if current:
            chunks.append("\n".join(current))
        return chunks

    def _split_words(self, sentence: str, budget: int) -> list[str]:
        """Greedy runs of whole words within ``budget`` tokens (figures can cost many tokens a word)."""
        tok = self.engine.generator.tokenizer
        pieces: list[str] = []
        current: list[str] = []
        for word in sentence.split():
            if current and self.engine.count_tokens(" ".join(current + [word])) > budget:
                pieces.append(" ".join(current))
                current = []
            if self.engine.count_tokens(word) > budget:  # one "word" over budget: cut it by tokens
                ids = tok(word, add_special_tokens=False)["input_ids"]
                pieces.extend(tok.decode(ids[i : i + budget]) for i in range(0, len(ids), budget))
                continue
            current.append(word)
        if current:
            pieces.append(" ".join(current))
        return pieces

    def _forward_chunked(self, prepared: SummaryRequest) -> _Chunked:
        style_cfg = self.config["styles"][prepared.style]
        final_tokens = self._final_tokens(prepared.style, prepared.max_words)
        map_cfg = self.config["map"]
        source_tokens = self.engine.count_tokens(prepared.text)
        text, chunks = prepared.text, 1
        budget = self.chunk_budget(max(final_tokens, map_cfg["max_new_tokens"]))
        size = source_tokens
        while size > budget:
            parts = self.split(text, budget)
            chunks = max(chunks, len(parts))
            instructions = [map_cfg["instruction"].format(part=i, parts=len(parts), text=part)
                            for i, part in enumerate(parts, 1)]
            notes = [g.text for g in self._complete_all(
                [self._request(text, map_cfg["max_new_tokens"])[0] for text in instructions],
                self._request("", map_cfg["max_new_tokens"])[1],
                lambda done, total=len(parts): self._report(prepared, done, total + 1, "notes on the text's parts"),
            )]
            text = "\n".join(n for n in notes if n.strip())
            shrunk = self.engine.count_tokens(text)
            if shrunk >= size:  # notes as long as their source: this model's window is too small to summarise
                raise InputTooLongError(
                    f"the text ({source_tokens} tokens) cannot be summarised within this model's context window "
                    f"({self.engine.context_window} tokens): the chunk notes do not get shorter"
                )
            size = shrunk
        instruction = style_cfg["instruction"].format(text=text, max_words=prepared.max_words)
        self._report(prepared, chunks if chunks > 1 else 0, chunks + 1 if chunks > 1 else 1, "writing the summary")
        generation = self._complete(instruction, final_tokens)
        self._report(prepared, 1, 1, "done")
        return _Chunked(prepared, generation, chunks, source_tokens)

    @staticmethod
    def _report(prepared: SummaryRequest, done: int, total: int, what: str) -> None:
        if prepared.progress is not None:
            prepared.progress(done, total, what)

    # -------------------------------------------------------------- postprocess

    def _postprocess_chunked(self, outputs: _Chunked) -> Summary:
        prepared, generation = outputs.prepared, outputs.generation
        chunks, source_tokens = outputs.chunks, outputs.source_tokens
        raw, budget = generation.text, prepared.max_words
        cut_off = generation.finish_reason == "length"  # the last line or sentence may be unfinished
        bullets: list[Bullet] = []
        if prepared.style == "bullets":
            lines = [_BULLET.sub("", line).strip() for line in raw.splitlines()]
            lines = [line for line in lines if line and not line.endswith(":")] or _SENTENCE_END.split(raw.strip())
            # Small models loop: drop repeated bullets, keep the first occurrence.
            lines = list(dict.fromkeys(lines))
            if cut_off and len(lines) > 1:
                lines = lines[:-1]
            for line in lines:
                used = sum(len(b.text.split()) for b in bullets)
                if bullets and used + len(line.split()) > budget:
                    break
                bullets.append(Bullet(_cut_words(line, budget), [], "generated"))
            text = "\n".join(f"- {b.text}" for b in bullets)
        elif prepared.style == "headline":
            text = _cut_words(_headline_of(raw), budget)
        else:
            sentences = _SENTENCE_END.split(" ".join(raw.split()))
            if cut_off and len(sentences) > 1:
                sentences = sentences[:-1]
            text = _cut_sentences(" ".join(sentences), budget)
        return Summary(
            text=text,
            style=prepared.style,
            bullets=bullets,
            chunks=chunks,
            source_tokens=source_tokens,
            seconds=round(time.perf_counter() - prepared.started, 2),
            method="chunked",
        )


def _cut_words(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` words, marked with "…". A figure the cut would part from its scale
    ("109.4" of "109.4 mln") goes too: alone it would state another number."""
    words = text.split()
    if len(words) <= limit:
        return text
    kept, pool = words[:limit], figures_of(text)
    while len(kept) > 1 and stated_share(figures_of(kept[-1]), pool) == 0.0:
        kept.pop()
    return " ".join(kept) + " …"


def _cut_sentences(text: str, limit: int) -> str:
    """Keep whole sentences up to ``limit`` words (at least the first, cut by words if needed)."""
    kept: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        if kept and len(" ".join(kept + [sentence]).split()) > limit:
            break
        kept.append(sentence)
    return _cut_words(" ".join(kept), limit)


def select_diverse(scores, embeddings, k: int, redundancy: float) -> list[int]:
    """Indices of the ``k`` best-scored rows, best first, skipping any whose embedding is closer than
    ``redundancy`` (cosine; embeddings L2-normalised) to one already taken."""
    import torch

    picked: list[int] = []
    for i in torch.argsort(scores, descending=True).tolist():
        if len(picked) >= k:
            break
        if picked and float((embeddings[picked] @ embeddings[i]).max()) > redundancy:
            continue
        picked.append(i)
    return picked


def _headline_of(raw: str) -> str:
    """The headline in a generator's answer: the first line that is not a lead-in such as "The
    headline for the text is:" (when a headline follows it), without a "Headline:" label or quotes."""
    lines = [line for line in raw.splitlines() if line.strip()]
    first = next((line for line in lines if not line.rstrip().endswith(":")), lines[0] if lines else raw)
    return re.sub(r"^\s*(headline|title)\s*:\s*", "", first, flags=re.IGNORECASE).strip().strip("\"'*# ")


def shorten(sentence: str, limit: int) -> str:
    """A source sentence as a bullet: spoken filler at its start dropped ("So, I'm pleased to
    report that ..."), its first letter capitalised, cut to ``limit`` words."""
    text = _FILLER.sub("", sentence.strip()) or sentence.strip()
    return _cut_words(text[:1].upper() + text[1:], limit)


_QUARTER_WORDS = {"first": "q1", "second": "q2", "third": "q3", "fourth": "q4"}
_QUARTER = re.compile(r"\b(?:(first|second|third|fourth)[- ]quarter|q([1-4])|([1-4])q)\b", re.IGNORECASE)
_QUARTER_TOKEN = re.compile(r"\bq[1-4]\b", re.IGNORECASE)


def quarter_of(text: str) -> str | None:
    """The quarter ``text`` names most often ("q1".."q4"), None when it names none."""
    from collections import Counter

    found = Counter()
    for m in _QUARTER.finditer(text):
        found[_QUARTER_WORDS[m[1].lower()] if m[1] else f"q{m[2] or m[3]}"] += 1
    return found.most_common(1)[0][0] if found else None


def _fix_quarters(text: str, quarter: str | None) -> str:
    """Every "qN" in a bullet made the given quarter, or removed when there is none."""
    fixed = _QUARTER_TOKEN.sub(quarter or "", text)
    return " ".join(fixed.split()).replace(" .", ".").replace(" ,", ",") or text


def _fix_names(text: str) -> str:
    text = re.sub(r"^compname (?:reports|says|sees|expects|posts|announces)\s+", "", text, flags=re.IGNORECASE)
    return re.sub(r"\bcompname\b", "the company", text, flags=re.IGNORECASE)


def _as_sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    text = text[:1].upper() + text[1:]
    return text if text[-1] in ".!?…" else text + "."
