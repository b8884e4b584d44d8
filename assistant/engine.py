"""The engine: owns the loaded models and does every generation and encoding.

The Python API, the CLI, the HTTP service and the web UI all call one
``Engine``; none of them touches a model directly. Models load lazily on first
use, so a chat never loads the encoder and a classification never loads the
generator.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .lazy import torch

from .device import resolve_runtime
from .errors import ModelLoadError, ModelNotFoundError
from .models import DEFAULT_ENCODER, DEFAULT_GENERATOR, ENCODER, GENERATOR, resolve_model
from .chat import ChatModel, render_chat  # noqa: F401  (render_chat: assistant.engine.render_chat is public)
from .generation import GenerationBackend, GenerationRequest
from .encoder import SentenceEncoder
from .models import LoadedModel, folder_fingerprint, load_model, local_dir, read_config  # noqa: F401  (LoadedModel: public here too)
from .settings import BatchSettings
from .types import Generation, Message, SamplingParams

if TYPE_CHECKING:
    import numpy as np

    from .classifiers import FineTunedClassifier

log = logging.getLogger(__name__)

#: The loaded-model keys of the generator with a shipped adapter merged: the summary rewriter, the
#: headliner and the grounded answerer.
REWRITER = "rewriter"
HEADLINER = "headliner"
ANSWERER = "answerer"

def _save_merged(gen: LoadedModel, out: Path) -> None:
    """Write a loaded model (a LoRA merged into it) as a Hugging Face directory, for the ONNX export."""
    gen.model.save_pretrained(out)
    gen.tokenizer.save_pretrained(out)


class Engine:
    """Loads models lazily and runs generation and encoding on the chosen device."""

    def __init__(
        self,
        generator: str | Path | None = None,
        encoder: str | Path | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        upstream: str | None = None,
        upstream_api_key: str | None = None,
        upstream_model: str | None = None,
        classifiers: Mapping[str, str | Path] | Sequence[str | Path] | None = None,
        shipped_classifiers: bool = True,
        batch_settings: BatchSettings | None = None,
    ) -> None:
        self.upstream = None
        if upstream:  # chat completions go to an OpenAI-compatible server (assistant/upstream.py)
            from .upstream import UpstreamClient

            self.upstream = UpstreamClient(upstream, api_key=upstream_api_key, model=upstream_model)
        self.generator_spec = str(generator or DEFAULT_GENERATOR)
        self.encoder_spec = str(encoder or DEFAULT_ENCODER)
        self.runtime = resolve_runtime(device, dtype)
        self._models: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()
        self._batcher: GenerationBackend | None = None
        #: Backends of the generator with a shipped adapter merged (REWRITER, HEADLINER, ANSWERER), built on
        #: first use.
        self._adapted: dict[str, GenerationBackend] = {}
        #: How concurrent chat requests are batched (``Engine.batcher()``); fixed for the engine's life.
        self.batch_settings = batch_settings or BatchSettings()
        #: The generator as the batching backends use it, the encoder as the classifiers use it
        #: (both load on first use).
        self.chat = ChatModel(lambda: self.generator)
        self.sentence_encoder = SentenceEncoder(lambda: self.encoder)
        #: Fine-tuned classifiers (run directories) by the task they serve; they load on first use.
        #: The package's shipped ones serve their tasks unless ``shipped_classifiers`` is False or a
        #: run given in ``classifiers`` replaces one. They are fine-tunes of the default encoder, so
        #: they serve when the engine's encoder is that model: naming another encoder classifies
        #: zero-shot with it (a user's explicit choice is not overridden).
        self.classifiers: dict[str, FineTunedClassifier] = {}
        #: Shipped classifiers whose run file cannot be read: the error is raised when their task is
        #: used (never a silent fall-back to zero-shot), while the other tasks keep working.
        self.broken_classifiers: dict[str, ModelLoadError] = {}
        if shipped_classifiers:
            from .shipped import shipped_runs

            for task, run in shipped_runs(self.encoder_spec).items():
                try:
                    self.add_classifier(run, task=task)
                except (ModelLoadError, ModelNotFoundError) as exc:
                    self.broken_classifiers[task] = ModelLoadError(f"the shipped {task} classifier is broken: {exc}")
        #: The summariser's shipped models, where they fit this engine's models: the key-sentence
        #: scorer (a head over the default encoder) and the rewriter's LoRA adapter (of the default
        #: generator, run here: not with an upstream server). None: the summariser ranks sentences
        #: without the scorer / rewrites from the prompt alone (``tasks/summarize.py``).
        self.summary_scorer: FineTunedClassifier | None = None
        self.rewriter_adapter: Path | None = None
        #: The headliner's LoRA adapter (of the default generator, run here), or None: headlines are then
        #: written from the headline style's prompt alone.
        self.headliner_adapter: Path | None = None
        #: The grounded answerer's LoRA adapter (of the default generator, run here), or None: grounded
        #: answers are then written from the grounding prompt alone (``tasks/ask.py``).
        self.answerer_adapter: Path | None = None
        if shipped_classifiers:
            from .classifiers import FineTunedClassifier
            from .shipped import (ASK_ANSWERER, ASK_DIR, SUMMARY_HEADLINER, SUMMARY_REWRITER, SUMMARY_SCORER,
                                  shipped_model, shipped_summary_model)

            scorer = shipped_summary_model(SUMMARY_SCORER, self.encoder_spec)
            if scorer is not None:
                self.summary_scorer = FineTunedClassifier(scorer, runtime=self.runtime,
                                                          shared_encoder=self.sentence_encoder)
            if self.upstream is None:
                self.rewriter_adapter = shipped_summary_model(SUMMARY_REWRITER, self.generator_spec)
                self.headliner_adapter = shipped_summary_model(SUMMARY_HEADLINER, self.generator_spec)
                self.answerer_adapter = shipped_model(ASK_DIR / ASK_ANSWERER, self.generator_spec)
        items = classifiers.items() if isinstance(classifiers, Mapping) else ((None, c) for c in classifiers or ())
        for task, run in items:
            self.add_classifier(run, task=task)

    # ------------------------------------------------------------------ loading

    @property
    def generator(self) -> LoadedModel:
        return self._load(GENERATOR)

    @property
    def encoder(self) -> LoadedModel:
        return self._load(ENCODER)

    def loaded(self, role: str) -> LoadedModel | None:
        return self._models.get(role)

    def add_classifier(self, run: str | Path, task: str | None = None) -> FineTunedClassifier:
        """Serve ``task`` (default: the run's own task) with a fine-tuned run directory. The run
        file is read now (a missing or corrupt run fails here); the weights load on first use."""
        from .classifiers import FineTunedClassifier

        classifier = FineTunedClassifier(run, runtime=self.runtime, shared_encoder=self.sentence_encoder)
        name = str(task or classifier.task)
        self.classifiers[name] = classifier
        self.broken_classifiers.pop(name, None)
        return classifier

    def classifier(self, task: str) -> FineTunedClassifier | None:
        """The fine-tuned classifier serving ``task``, if any (a broken shipped one raises its error)."""
        if task in self.broken_classifiers:
            raise self.broken_classifiers[task]
        return self.classifiers.get(task)

    def _load(self, role: str) -> LoadedModel:
        if role in self._models:
            return self._models[role]
        with self._lock:
            if role not in self._models:
                spec = self.generator_spec if role == GENERATOR else self.encoder_spec
                # Where the ONNX backend is to decode, the torch weights load only if something needs them.
                lazy = role == GENERATOR and self._onnx_mismatch() is None
                self._models[role] = load_model(resolve_model(spec, role), self.runtime, lazy_weights=lazy)
        return self._models[role]

    # ----------------------------------------------------------------- generation

    def render_chat(self, messages: Sequence[Message]) -> str:
        """The prompt text for a conversation: the model's chat template, or a plain one."""
        return self.chat.render(messages)

    def plain_stop_strings(self) -> tuple[str, ...]:
        """Stop strings for models without a chat template (they would write the next turn)."""
        return self.chat.plain_stop_strings()

    def count_tokens(self, text: str, role: str = GENERATOR) -> int:
        tok = self._load(role).tokenizer
        return len(tok(text, add_special_tokens=False)["input_ids"])

    @property
    def context_window(self) -> int:
        return self.generator.context_window

    def prompt_ids(self, messages: Sequence[Message]) -> np.ndarray:
        """The conversation's prompt as token ids, shape (1, n)."""
        return self.chat.prompt_ids(messages)

    def generate(self, messages: Sequence[Message], params: SamplingParams | None = None) -> Generation:
        """Run one chat completion to the end, through the batching backend like a stream (concurrent
        callers share batches, and the backend's admission limit applies to every caller)."""
        return self.stream(messages, params).wait()

    def stream(self, messages: Sequence[Message], params: SamplingParams | None = None) -> GenerationRequest:
        """Start a chat completion; iterate the returned ``GenerationRequest`` for its text as it is
        generated (``cancel()`` or leaving the loop stops it; ``result`` holds the counts at the end)."""
        return self.batcher().submit(messages, params or SamplingParams())

    def batcher(self) -> GenerationBackend:
        """The generation backend for chat requests (created on first use, one per engine): the upstream
        server when there is one, else the one ``batch_settings.backend`` names."""
        if self._batcher is None:
            backend = self.batch_settings.backend
            if self.upstream is None:
                # The local backends build from the loaded model: load it now, outside the lock _load takes.
                self._load(GENERATOR)
            with self._lock:
                if self._batcher is None:
                    self._batcher = self._build_backend(backend)
        return self._batcher

    @property
    def backend_name(self) -> str:
        """What decodes chat requests (``finassist models``): the backend's own description once it
        is built, else the one ``batch_settings.backend`` asks for."""
        if self._batcher is not None:
            return getattr(self._batcher, "name", type(self._batcher).__name__)
        if self.upstream is not None:
            return f"upstream {self.upstream.base_url}"
        return f"{self.batch_settings.backend} (chosen on first use)"

    def _build_backend(self, backend: str) -> GenerationBackend:
        if self.upstream is not None:
            from .upstream import UpstreamBatcher

            return UpstreamBatcher(self.chat, self.upstream, self.batch_settings)
        if backend == "continuous":
            from .continuous import ContinuousBatcher

            return ContinuousBatcher(self.chat, self.batch_settings)
        return self._local_backend(self.chat)

    def _local_backend(self, chat: ChatModel, adapter: Path | None = None) -> GenerationBackend:
        """The ONNX backend for ``chat``'s model where ``batch_settings.backend`` asks for it ("onnx" or
        "auto") and it runs here, else the dynamic batcher. ``adapter``: the LoRA merged into that model
        (the summary rewriter), exported merged. Elsewhere than ONNX, "auto" is the dynamic batcher:
        continuous batching has not been measured on a GPU here, and on a CPU it is not clearly faster
        (docs/benchmarks/serve.md)."""
        if self.batch_settings.backend in ("onnx", "auto"):
            fast = self._onnx_backend(chat, adapter)
            if fast is not None:
                return fast
        from .batching import Batcher

        chat.loaded.model  # torch decodes after all: its weights now, not on the first request
        return Batcher(chat, self.batch_settings)

    def _onnx_mismatch(self) -> str | None:
        """Why the ONNX backend is not for this engine (None: it is meant to decode here; it may still
        fail to load, and torch decodes then): not asked for, another device, or ("auto") a precision
        the user chose for torch."""
        backend = self.batch_settings.backend
        if backend not in ("onnx", "auto") or self.upstream is not None:
            return f"the {backend} backend was asked for"
        if self.runtime.device_type != "cpu":
            return f"it runs on the CPU, and the engine runs on {self.runtime.device_name}"
        if backend == "auto" and self.runtime.dtype_name != "float32":
            return f"{self.runtime.dtype_name} was asked for, which torch runs"
        return None

    def _onnx_backend(self, chat: ChatModel, adapter: Path | None) -> GenerationBackend | None:
        """The ONNX Runtime GenAI backend (``assistant/onnx_backend.py``) for ``chat``'s model (loaded
        already: ``batcher`` loads it outside the engine's lock), or None when it cannot run here:
        torch decodes instead, with a one-line notice where the user asked for it ("onnx") or where it
        should have run and could not. "auto" picks it on a CPU in the default precision."""
        from . import onnx_backend

        explicit = self.batch_settings.backend == "onnx"
        gen = chat.loaded

        def notice(why: str) -> None:
            if explicit:
                log.warning("The ONNX backend does not run here (%s): decoding with torch", why)

        mismatch = self._onnx_mismatch()
        if mismatch is not None:
            notice(mismatch)
            return None
        config = read_config(gen.resolved)
        if not onnx_backend.exportable(config):
            notice(f"ONNX Runtime GenAI does not export {(config.get('architectures') or ['?'])[0]}")
            return None
        missing = onnx_backend.onnx_available()
        if missing:
            log.warning("The fast CPU backend is not installed (%s): decoding with torch", missing)
            return None
        try:
            base = local_dir(gen.resolved)
            fingerprint = folder_fingerprint(base) or str(base.resolve())
            if adapter is None:
                source, name = base, base.name
            else:  # the merged weights exist only in memory: written out only if the export runs
                source, name = (lambda out: _save_merged(gen, out)), f"{base.name}+{Path(adapter).name}"
                fingerprint += "|adapter:" + (folder_fingerprint(adapter) or str(Path(adapter).resolve()))
            pad = onnx_backend.padding_id(gen.tokenizer, gen.eos_ids)
            precision = self.batch_settings.onnx_precision
            model_dir = onnx_backend.export_onnx(source, name, fingerprint, precision, pad)
            return onnx_backend.OnnxBatcher(chat, model_dir, self.batch_settings, precision=precision)
        except (ModelLoadError, ModelNotFoundError) as exc:
            log.warning("The fast CPU backend cannot load %s (%s): decoding with torch", gen.resolved.name, exc)
            return None

    # ---------------------------------------------------------------- summaries

    def rewriter(self) -> tuple[GenerationBackend, bool]:
        """The backend that writes summary bullets, and whether it is the fine-tuned rewriter (the
        generator with the shipped summary adapter, ``adapted``) or, where that adapter does not
        apply, the engine's own backend, which rewrites from the prompt alone."""
        if self.rewriter_adapter is None:
            return self.batcher(), False
        return self.adapted(REWRITER, self.rewriter_adapter), True

    def headliner(self) -> GenerationBackend | None:
        """The backend that writes headlines (the generator with the shipped headline adapter,
        ``adapted``), or None where that adapter does not apply (another generator, an upstream)."""
        return None if self.headliner_adapter is None else self.adapted(HEADLINER, self.headliner_adapter)

    def answerer(self) -> GenerationBackend | None:
        """The backend of the grounded answerer (the generator with the shipped answer adapter,
        ``adapted``), or None where that adapter does not apply (another generator, an upstream)."""
        return None if self.answerer_adapter is None else self.adapted(ANSWERER, self.answerer_adapter)

    def adapted(self, key: str, adapter: Path) -> GenerationBackend:
        """The generator with the LoRA ``adapter`` merged (a second copy of the weights under ``key``,
        loaded on first use, batched like chat): for a shipped adapter of this engine's generator."""
        if key not in self._adapted:
            with self._lock:
                if key not in self._models:
                    self._models[key] = load_model(resolve_model(self.generator_spec, GENERATOR), self.runtime,
                                                   adapter=adapter, lazy_weights=self._onnx_mismatch() is None)
                if key not in self._adapted:
                    self._adapted[key] = self._local_backend(ChatModel(lambda: self._models[key]), adapter)
        return self._adapted[key]

    # ------------------------------------------------------------------- encoding

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> torch.Tensor:
        """Sentence embeddings (L2-normalised), one row per text (``SentenceEncoder.encode``)."""
        return self.sentence_encoder.encode(texts, batch_size=batch_size)

    # -------------------------------------------------------------------- report

    def describe(self, load: bool = False) -> list[dict]:
        """Which models resolved, from where, on which device and dtype (``finassist models``)."""
        rows = []
        for role, spec in ((GENERATOR, self.generator_spec), (ENCODER, self.encoder_spec)):
            loaded = self._load(role) if load else self._models.get(role)
            resolved = loaded.resolved if loaded else resolve_model(spec, role)
            row = {
                "role": role,
                "name": resolved.name,
                "origin": resolved.origin,
                "location": resolved.location,
                "device": self.runtime.device_name,
                "dtype": self.runtime.dtype_name,
                "attention": self.runtime.attn_implementation,
                "loaded": loaded is not None,
            }
            if role == GENERATOR:
                if load:
                    self.batcher()
                row["backend"] = self.backend_name
                if self.upstream is not None:
                    row["upstream"] = self.upstream.base_url
            config = read_config(resolved)
            row["architecture"] = (config.get("architectures") or [config.get("model_type", "?")])[0]
            if loaded:
                row["parameters"] = loaded.parameters
                row["context_window"] = loaded.context_window
                row["load_seconds"] = round(loaded.load_seconds, 2)
            rows.append(row)
        for task, classifier in self.classifiers.items():
            if load:
                classifier.load()
            rows.append({**classifier.describe(), "task": task})
        rows += self._summary_rows()
        return rows

    def _summary_rows(self) -> list[dict]:
        """Rows for the summariser's shipped models in use (``finassist models``)."""
        from .runs import read_run

        rows = []
        for role, path, key in (("summary-scorer", self.summary_scorer.path if self.summary_scorer else None, None),
                                ("summary-rewriter", self.rewriter_adapter, REWRITER),
                                ("summary-headliner", self.headliner_adapter, HEADLINER),
                                ("ask-answerer", self.answerer_adapter, ANSWERER)):
            if path is None:
                continue
            try:
                info = read_run(path).describe()
            except (ModelLoadError, ModelNotFoundError) as exc:
                info = {"kind": "?", "task": "?", "base_model": "?", "licence": f"unreadable: {exc}", "metric": None,
                        "size_bytes": 0}
            rows.append({"role": role, "name": Path(path).name, "origin": "shipped with the package",
                         "location": str(path), "configured": True, "shipped": True,
                         "device": self.runtime.device_name, "dtype": self.runtime.dtype_name,
                         "loaded": key in self._models,
                         **info})
        return rows


