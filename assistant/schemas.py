"""Request and response bodies of the HTTP service (``assistant/server/``).

The chat endpoints follow the OpenAI Chat Completions API closely enough for the
official ``openai`` client and other OpenAI-compatible tools; ``/v1/summarize``
and ``/v1/classify`` expose the assistant's own tasks. Validation is strict (no
"5" for 5, no "true" for true): a wrong type is a 400 naming the field, never a
silent conversion. Unknown fields are ignored, as OpenAI-compatible servers do.

Only this module and ``assistant/server/`` import pydantic and FastAPI: the engine and
the Python API stay usable without them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .errors import AssistantError
from .inputs import check_characters
from .library import DocumentInfo
from .tasks.ask import Citation
from .tasks.summarize import MAX_WORDS_RANGE, METHODS, STYLES
from .types import REPETITION_PENALTY_RANGE, SEED_RANGE, TEMPERATURE_RANGE, SamplingParams

# The bounds of every field come from the checks the tasks and SamplingParams run (one place each).
SEED_MIN, SEED_MAX = SEED_RANGE
#: Longest stop string: each one is matched against the text at every new token.
MAX_STOP_CHARS = 256
#: Longest free-form name field (model, user, task).
MAX_NAME_CHARS = 256
#: The documents of the library a question is asked of (``documents`` of /v1/ask and /v1/chat/completions).
ScopeDocuments = Annotated[list[Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)]],
                           Field(min_length=1, max_length=100)] | None

# --------------------------------------------------------------------- common


def _clean_strings(value: Any, where: str) -> Any:
    """Every string of a request body, through the one text check (``inputs.check_characters``)."""
    if isinstance(value, str):
        try:
            return check_characters(value, where)
        except AssistantError as exc:
            raise ValueError(str(exc)) from None
    if isinstance(value, list):
        return [_clean_strings(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value  # nested objects are models of their own and clean their own strings


class _Request(BaseModel):
    # strict: JSON types must match (a string is never coerced to a number or a bool);
    # extra fields from newer OpenAI clients (logprobs, tools=None, ...) are ignored.
    model_config = ConfigDict(strict=True, extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _check_text(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: _clean_strings(v, str(k)) if k in cls.model_fields else v for k, v in data.items()}
        return data


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(_Response):
    message: str
    #: "invalid_request_error", "authentication_error", "rate_limit_error", "server_error", "timeout_error".
    type: str
    #: The request field at fault (dotted path), when there is one.
    param: str | None = None
    #: Machine-readable cause, e.g. "model_not_found", "input_too_long", "queue_full".
    code: str | None = None


class ErrorResponse(_Response):
    """OpenAI-style error body: ``{"error": {"message", "type", "param", "code"}}``."""

    error: ErrorDetail


# ----------------------------------------------------------------------- chat


class TextContentPart(_Request):
    type: Literal["text"]
    text: str


class ChatMessage(_Request):
    #: "developer" is OpenAI's newer name for "system" and is treated as one.
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextContentPart] = Field(description="a string, or a list of {type: text, text} parts")

    def as_engine_message(self) -> dict[str, str]:
        """``{"role", "content"}`` with text parts joined, as ``Engine`` takes it."""
        content = self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)
        return {"role": "system" if self.role == "developer" else self.role, "content": content}


class StreamOptions(_Request):
    include_usage: bool = False


class ChatCompletionRequest(_Request):
    """``POST /v1/chat/completions``. ``model`` may be omitted (or ``"default"``): the served generator."""

    model: Annotated[str, Field(max_length=MAX_NAME_CHARS)] | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    #: ``max_completion_tokens`` (OpenAI's current name) wins over ``max_tokens`` when both are given.
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=TEMPERATURE_RANGE[0], le=TEMPERATURE_RANGE[1])] | None = None
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    stop: str | Annotated[list[str], Field(max_length=4)] | None = None
    seed: Annotated[int, Field(ge=SEED_MIN, le=SEED_MAX)] | None = None
    #: Only 1 is supported (one choice per request).
    n: int | None = None
    user: Annotated[str, Field(max_length=MAX_NAME_CHARS)] | None = None
    #: Not in the OpenAI API (vLLM and others accept it): penalise repeated tokens (1 = off).
    repetition_penalty: Annotated[float, Field(ge=REPETITION_PENALTY_RANGE[0], le=REPETITION_PENALTY_RANGE[1])] | None = None
    #: Not in the OpenAI API (an openai client sends it in ``extra_body``): ground the answer in only these
    #: documents of the library (names or ids), as ``Assistant.ask(documents=...)``.
    documents: ScopeDocuments = None

    def to_sampling_params(self, max_new_tokens: int, defaults: SamplingParams) -> SamplingParams:
        """The engine's sampling settings for this request: its own fields, ``defaults`` for those it
        leaves out (the server decides ``max_new_tokens`` within its limits)."""
        return SamplingParams(
            max_new_tokens=max_new_tokens,
            temperature=defaults.temperature if self.temperature is None else self.temperature,
            top_p=defaults.top_p if self.top_p is None else self.top_p,
            stop=defaults.stop if self.stop is None else ((self.stop,) if isinstance(self.stop, str) else tuple(self.stop)),
            repetition_penalty=defaults.repetition_penalty if self.repetition_penalty is None else self.repetition_penalty,
            seed=defaults.seed if self.seed is None else self.seed,
        )

    @field_validator("messages")
    @classmethod
    def _has_content(cls, messages: list[ChatMessage]) -> list[ChatMessage]:
        if not any(m.as_engine_message()["content"].strip() for m in messages):
            raise ValueError("every message is empty")
        return messages

    @field_validator("stop")
    @classmethod
    def _short_stops(cls, stop: str | list[str] | None) -> str | list[str] | None:
        for s in [stop] if isinstance(stop, str) else stop or []:
            if len(s) > MAX_STOP_CHARS:
                raise ValueError(f"a stop string may be at most {MAX_STOP_CHARS} characters, got {len(s):,}")
        return stop

    @field_validator("n")
    @classmethod
    def _one_choice(cls, n: int | None) -> int | None:
        if n is not None and n != 1:
            raise ValueError(f"only n=1 is supported (one choice per request), got {n}")
        return n

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


class ChatCompletionMessage(_Response):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatCompletionChoice(_Response):
    index: int = 0
    message: ChatCompletionMessage
    #: "stop" (end of turn or a stop string) or "length" (max_tokens reached).
    finish_reason: str
    logprobs: None = None


class Usage(_Response):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


#: The description of the ``citations`` extension field of chat completions.
CITATIONS_FIELD = ("finassist extension: the passages of the user's document library the answer was written "
                   "from, numbered as it cites them ([1], [2], ...); null when the library is empty (the answer is "
                   "not grounded) and [] when the documents do not contain the answer")


class ChatCompletion(_Response):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatCompletionChoice]
    usage: Usage
    system_fingerprint: str | None = None
    citations: list[Citation] | None = Field(default=None, description=CITATIONS_FIELD)


class ChoiceDelta(_Response):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatCompletionChunkChoice(_Response):
    index: int = 0
    delta: ChoiceDelta
    finish_reason: str | None = None
    logprobs: None = None


class ChatCompletionChunk(_Response):
    """One Server-Sent Event of a streamed completion (``data: {...}``)."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    #: Empty in the final usage chunk (``stream_options.include_usage``).
    choices: list[ChatCompletionChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None
    #: Sent on the first chunk only (the documents are searched before the answer is written).
    citations: list[Citation] | None = Field(default=None, description=CITATIONS_FIELD + "; on the first chunk")


# --------------------------------------------------------------------- models


class ModelCard(_Response):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "finassist"
    #: "generator" (chat, summarize) or "encoder" (classify).
    role: str
    #: Where the weights came from (installed package, cache, local path).
    origin: str
    loaded: bool


class ModelList(_Response):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# ------------------------------------------------------------------------ ask


class AskRequest(_Request):
    """``POST /v1/ask``: one advisory question (with earlier turns), answered as ``Assistant.ask`` does:
    the ask system prompt, its defaults, and the not-investment-advice notice where due."""

    question: str
    history: list[ChatMessage] | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=TEMPERATURE_RANGE[0], le=TEMPERATURE_RANGE[1])] | None = None
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    seed: Annotated[int, Field(ge=SEED_MIN, le=SEED_MAX)] | None = None
    user: Annotated[str, Field(max_length=MAX_NAME_CHARS)] | None = None
    #: Search only these documents of the library (names or ids; an unknown one is a 404).
    documents: ScopeDocuments = None

    def sampling_overrides(self) -> dict:
        """The sampling arguments of ``Assistant.ask`` this request sets (the others keep ask's defaults)."""
        given = {"max_new_tokens": self.max_tokens, "temperature": self.temperature, "top_p": self.top_p,
                 "seed": self.seed}
        return {k: v for k, v in given.items() if v is not None}

    def history_messages(self) -> list[dict[str, str]]:
        return [m.as_engine_message() for m in self.history or []]


class Computation(_Response):
    """``assistant.calculator.Computation.to_dict()``."""

    expression: str
    operands: list[str]
    value: float
    scale: str
    result: str


class AskUsage(_Response):
    prompt_tokens: int
    completion_tokens: int


class AskResponse(_Response):
    """``Answer.to_dict()`` and the model that wrote it."""

    model: str
    text: str
    #: Whether the not-investment-advice notice was appended to the text.
    advice_notice: bool
    finish_reason: str
    usage: AskUsage
    #: The passages of the user's documents the answer was written from (empty when not grounded).
    citations: list[Citation]
    #: Whether the documents were found not to contain the answer (the text says so).
    declined: bool
    #: A computed answer's calculation: the expression over figures copied from the documents, the
    #: figures, the value and its scale, and the result as written (null when nothing was computed).
    computation: Computation | None = None
    #: The numbers of the citations the answer's text or figures come from (the grounded answerer's
    #: answers: checked against the passages' text; empty for a free-form or declined answer).
    sources: list[int] = []
    #: Whether the answer was read from a table row the question names (``assistant.table_reader``)
    #: rather than written by the answerer.
    read_from_table: bool = False
    #: Other documents whose tables answer the question as well, with other figures: ask about one of them
    #: (``documents``) to choose.
    also_answered_by: list[str] = []


# ------------------------------------------------------------------ documents


class DocumentUpload(_Request):
    """``POST /v1/documents``: one file for the document library, its bytes in base64 (the API takes
    JSON only). ``name`` is how the library names it; its ending says the type (.pdf, .txt, .md,
    .html, .csv); a document of the same name is replaced, the same content is not added twice."""

    name: Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)]
    content_base64: str


class DocumentAdded(_Response):
    """``assistant.library.AddResult``: the document (its ``source`` is "upload"), whether it was added."""

    document: DocumentInfo
    #: False when the same content was already in the library (nothing was added).
    created: bool
    #: The document of the same name this one replaced, if any.
    replaced: DocumentInfo | None = None


class DocumentList(_Response):
    object: Literal["list"] = "list"
    data: list[DocumentInfo]


# ------------------------------------------------------------------ summarize


class SummarizeRequest(_Request):
    """``POST /v1/summarize``: the text, the style and a word budget (default depends on the style)."""

    text: str
    style: Literal[STYLES] = "bullets"  # type: ignore[valid-type]  # the summary task's styles
    max_words: Annotated[int, Field(ge=MAX_WORDS_RANGE[0], le=MAX_WORDS_RANGE[1])] | None = None
    #: "extract" (key sentences rewritten, with sources) or "chunked"; default: the summariser's.
    method: Literal[METHODS] | None = None  # type: ignore[valid-type]


class SourceSentence(BaseModel):
    """A sentence of the request's text that a bullet was written from: ``text[start:end]``."""

    text: str
    start: int
    end: int
    #: Its position among the text's sentences (0 = first).
    index: int


class SummaryBullet(BaseModel):
    text: str
    #: "rewritten" (figures checked against the sources), "source" (the source sentence shortened), or
    #: "generated" (the chunked method: no sources).
    origin: str
    sources: list[SourceSentence]


class SummarizeResponse(_Response):
    """``Summary.to_dict()`` and the model that wrote it."""

    model: str
    text: str
    style: str
    method: str
    bullets: list[SummaryBullet]
    #: The sources of a headline or paragraph.
    sources: list[SourceSentence]
    #: How many chunks the source was split into (1 = summarised in one pass).
    chunks: int
    source_tokens: int
    seconds: float


# ------------------------------------------------------------------- classify


class ClassifyRequest(_Request):
    """``POST /v1/classify``: ``texts`` (a list, batched) or ``text`` (one string); exactly one of them."""

    task: Annotated[str, Field(max_length=MAX_NAME_CHARS)] = "sentiment"
    texts: list[str] | None = None
    text: str | None = None
    #: Multi-label threshold (default: the fine-tuned classifier's tuned ones, or the label set's own).
    threshold: Annotated[float, Field(ge=-1.0, le=1.0)] | None = None
    #: Compare with the task's label descriptions instead of using its fine-tuned classifier.
    zero_shot: bool = False

    @model_validator(mode="after")
    def _one_of_text_or_texts(self) -> ClassifyRequest:
        if (self.texts is None) == (self.text is None):
            raise ValueError("give exactly one of text (a string) or texts (a list of strings)")
        return self

    def inputs(self) -> str | list[str]:
        return self.text if self.text is not None else list(self.texts or [])


class LabelScoreModel(_Response):
    label: str
    score: float


class ClassificationResult(_Response):
    """``Classification.to_dict()``: every label with its score (best first) and the predicted labels."""

    task: str
    multi_label: bool
    labels: list[str]
    scores: list[LabelScoreModel]


class ClassifyResponse(_Response):
    model: str
    task: str
    #: One result per input text, in order (one element for ``text``).
    results: list[ClassificationResult]


# --------------------------------------------------------------------- health


class Health(_Response):
    #: "ok" when the models are loaded; "loading" or "error" (with ``detail``) otherwise (HTTP 503).
    status: Literal["ok", "loading", "error"]
    detail: str | None = None
