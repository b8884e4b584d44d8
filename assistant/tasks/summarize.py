"""Summarisation with the generator, long inputs handled by chunk-then-combine.

A text that fits in one chunk is summarised directly. A longer one is split at
paragraph and sentence boundaries into chunks; each chunk is turned into notes
(map) and the notes are summarised in the requested style (reduce), repeating
the map step while the notes are still too long. Nothing is silently cut.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..types import Generation, SamplingParams
from ..errors import InputTooLongError
from ..inputs import ensure_choice, ensure_int, ensure_text
from ..prompts import load_prompt
from .base import Pipeline

STYLES = ("bullets", "headline", "paragraph")
#: The word budgets a summary may ask for (the HTTP schema and the UI take their bounds from here).
MAX_WORDS_RANGE = (3, 1000)
_BULLET = re.compile(r"^\s*(?:[-*•–·]|\d+[.)])\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass
class Summary:
    text: str
    style: str
    bullets: list[str] = field(default_factory=list)
    #: How many chunks the source was split into (1 = summarised in one pass).
    chunks: int = 1
    source_tokens: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("text", "style", "bullets", "chunks", "source_tokens", "seconds")}

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


class SummarizePipeline(Pipeline):
    name = "summarize"

    def __init__(self, engine) -> None:
        super().__init__(engine)
        self.config = load_prompt("summarize")

    def preprocess(self, inputs, style: str = "bullets", max_words: int | None = None,
                   progress: Callable[[int, int, str], None] | None = None) -> SummaryRequest:
        text = ensure_text(inputs)
        style = ensure_choice(style, "style", STYLES)
        if max_words is None:
            max_words = self.config["styles"][style]["default_max_words"]
        max_words = ensure_int(max_words, "max_words", *MAX_WORDS_RANGE)
        return SummaryRequest(text, style, max_words, time.perf_counter(), progress)

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

    def _complete_all(self, instructions: list[str], max_new_tokens: int,
                      report: Callable[[int], None]) -> list[Generation]:
        """Run the chunk prompts concurrently: they go through the batcher together, so a
        transcript of n chunks costs about one batched pass, not n sequential ones. At most a
        batch's worth is in flight, so one long text never fills the service's queue."""
        window = self.engine.batch_settings.max_batch_size
        results: list[Generation] = []
        for start in range(0, len(instructions), window):
            requests = [self.engine.stream(*self._request(text, max_new_tokens))
                        for text in instructions[start:start + window]]
            try:
                for request in requests:
                    for _ in request:
                        pass
                    results.append(request.result)
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

    def forward(self, prepared: SummaryRequest) -> tuple[SummaryRequest, Generation, int, int]:
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
                instructions, map_cfg["max_new_tokens"],
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
        return prepared, generation, chunks, source_tokens

    @staticmethod
    def _report(prepared: SummaryRequest, done: int, total: int, what: str) -> None:
        if prepared.progress is not None:
            prepared.progress(done, total, what)

    # -------------------------------------------------------------- postprocess

    def postprocess(self, outputs: tuple[SummaryRequest, Generation, int, int]) -> Summary:
        prepared, generation, chunks, source_tokens = outputs
        raw, budget = generation.text, prepared.max_words
        cut_off = generation.finish_reason == "length"  # the last line or sentence may be unfinished
        bullets: list[str] = []
        if prepared.style == "bullets":
            lines = [_BULLET.sub("", line).strip() for line in raw.splitlines()]
            lines = [line for line in lines if line and not line.endswith(":")] or _SENTENCE_END.split(raw.strip())
            # Small models loop: drop repeated bullets, keep the first occurrence.
            lines = list(dict.fromkeys(lines))
            if cut_off and len(lines) > 1:
                lines = lines[:-1]
            for line in lines:
                used = sum(len(b.split()) for b in bullets)
                if bullets and used + len(line.split()) > budget:
                    break
                bullets.append(_cut_words(line, budget))
            text = "\n".join(f"- {b}" for b in bullets)
        elif prepared.style == "headline":
            lines = [line for line in raw.splitlines() if line.strip()]
            # Skip a lead-in such as "The headline for the text is:" when a headline follows it.
            first = next((line for line in lines if not line.rstrip().endswith(":")), lines[0] if lines else raw)
            first = re.sub(r"^\s*(headline|title)\s*:\s*", "", first, flags=re.IGNORECASE).strip().strip("\"'*# ")
            text = _cut_words(first, budget)
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
        )


def _cut_words(text: str, limit: int) -> str:
    words = text.split()
    return text if len(words) <= limit else " ".join(words[:limit]) + " …"


def _cut_sentences(text: str, limit: int) -> str:
    """Keep whole sentences up to ``limit`` words (at least the first, cut by words if needed)."""
    kept: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        if kept and len(" ".join(kept + [sentence]).split()) > limit:
            break
        kept.append(sentence)
    return _cut_words(" ".join(kept), limit)
