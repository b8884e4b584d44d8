"""The engine: owns the loaded models and does every generation and encoding.

The Python API, the CLI, the HTTP service and the web UI all call one
``Engine``; none of them touches a model directly. Models load lazily on first
use, so a chat never loads the encoder and a classification never loads the
generator.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .device import Runtime, quantize_int8, resolve_runtime
from .errors import InputTooLongError, InvalidParameterError, ModelLoadError, ModelNotFoundError
from .models import DEFAULT_ENCODER, DEFAULT_GENERATOR, ENCODER, GENERATOR, ResolvedModel, context_window, resolve_model
from .prompts import load_prompt
from .types import Generation, Message, SamplingParams

if TYPE_CHECKING:
    from .classifiers import FineTunedClassifier

log = logging.getLogger(__name__)

@dataclass
class LoadedModel:
    resolved: ResolvedModel
    runtime: Runtime
    model: torch.nn.Module
    tokenizer: object
    load_seconds: float

    @property
    def context_window(self) -> int:
        return context_window(self.model.config) or 2048  # a config that does not say: a common size

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


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
        self._batcher = None
        #: Settings of the batcher that serves concurrent requests (``Engine.batcher()``).
        #: ``backend``: "dynamic" (``assistant.batching``), "continuous" (``assistant.continuous``: transformers'
        #: continuous batching) or "auto" (dynamic for now, see ``batcher()``).
        self.batch_settings = {"backend": "auto", "max_batch_size": 16, "max_queue": 64, "max_wait_ms": 5.0}
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

        classifier = FineTunedClassifier(run, runtime=self.runtime, shared_encoder=self)
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
                self._models[role] = _load_model(resolve_model(spec, role), self.runtime)
        return self._models[role]

    # ----------------------------------------------------------------- generation

    def render_chat(self, messages: Sequence[Message]) -> str:
        """The prompt text for a conversation: the model's chat template, or a plain one."""
        return render_chat(self.generator.tokenizer, messages)

    def plain_stop_strings(self) -> tuple[str, ...]:
        """Stop strings for models without a chat template (they would write the next turn)."""
        if getattr(self.generator.tokenizer, "chat_template", None):
            return ()
        return tuple(load_prompt("chat")["plain_template"]["stop"])

    def count_tokens(self, text: str, role: str = GENERATOR) -> int:
        tok = self._load(role).tokenizer
        return len(tok(text, add_special_tokens=False)["input_ids"])

    @property
    def context_window(self) -> int:
        return self.generator.context_window

    def prompt_ids(self, messages: Sequence[Message]) -> torch.Tensor:
        """The conversation's prompt as token ids, shape (1, n)."""
        return self.generator.tokenizer(self.render_chat(messages), return_tensors="pt", add_special_tokens=False)[
            "input_ids"
        ]

    def _encode_prompt(
        self, messages: Sequence[Message], params: SamplingParams, ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Prompt token ids (1, n) (``ids`` if the caller already has them); refused when prompt plus
        new tokens exceed the context window."""
        gen = self.generator
        if ids is None:
            ids = self.prompt_ids(messages)
        total = ids.shape[1] + params.max_new_tokens
        if total > gen.context_window:
            raise InputTooLongError(
                f"the prompt is {ids.shape[1]} tokens and {params.max_new_tokens} new tokens were asked for, "
                f"{total} in all, over the model's context window of {gen.context_window} tokens"
            )
        return ids

    def generate(self, messages: Sequence[Message], params: SamplingParams | None = None) -> Generation:
        """Run one chat completion to the end (through the batcher: concurrent callers share batches)."""
        params = params or SamplingParams()
        if self.upstream is not None:
            return self.upstream.complete(messages, params)
        request = self.stream(messages, params)
        for _ in request:
            pass
        return request.result

    def stream(self, messages: Sequence[Message], params: SamplingParams | None = None):
        """Start a chat completion; iterate the returned ``GenerationRequest`` for its text as it is
        generated (``cancel()`` or leaving the loop stops it; ``result`` holds the counts at the end)."""
        return self.batcher().submit(messages, params or SamplingParams())

    def batcher(self):
        """The batcher for concurrent chat requests (created on first use, one per engine), chosen by
        ``batch_settings["backend"]``."""
        settings = dict(self.batch_settings)
        backend = settings.pop("backend", "auto")
        if self._batcher is None:
            if backend == "continuous" and self.upstream is None:
                self._load(GENERATOR)  # it builds its cache from the model: load it now, outside the lock _load takes
            with self._lock:
                if self._batcher is None and self.upstream is not None:
                    from .upstream import UpstreamBatcher

                    self._batcher = UpstreamBatcher(self, self.upstream, **settings)
                elif self._batcher is None and backend == "continuous":
                    from .continuous import ContinuousBatcher

                    self._batcher = ContinuousBatcher(self, **settings)
                elif self._batcher is None and backend in ("auto", "dynamic"):
                    # auto = dynamic on every device for now: continuous batching is unmeasured on a GPU here,
                    # and on a CPU it is not clearly faster than the dynamic batcher (assistant/continuous.py).
                    from .batching import Batcher

                    self._batcher = Batcher(self, **settings)
                elif self._batcher is None:
                    raise InvalidParameterError(f"unknown batching backend {backend!r}: auto, dynamic or continuous")
        return self._batcher

    # ------------------------------------------------------------------- encoding

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> torch.Tensor:
        """Sentence embeddings (L2-normalised), one row per text.

        Texts longer than the encoder's window are not truncated: they are cut
        into overlapping windows whose embeddings are averaged.
        """
        enc = self.encoder
        tok, model = enc.tokenizer, enc.model
        max_len = _encoder_max_length(enc)
        pooled: list[torch.Tensor] = []
        # Batches of similar length (shortest first, the order undone at the end): a batch is padded
        # to its longest text, so mixing a tweet with a contract clause mostly computes padding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        texts = [texts[i] for i in order]
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start : start + batch_size])
            features = tok(
                batch,
                padding=True,
                truncation=True,
                max_length=max_len,
                stride=max_len // 4,
                return_overflowing_tokens=True,
                return_tensors="pt",
            )
            owner = features.pop("overflow_to_sample_mapping")
            features = {k: v for k, v in features.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
            # One long text becomes many windows: they go through the model batch_size at a time, so
            # a request's memory and the length of each forward pass stay bounded whatever its size.
            parts = []
            for first in range(0, len(owner), batch_size):
                part = {k: v[first : first + batch_size].to(enc.runtime.device) for k, v in features.items()}
                with torch.inference_mode():
                    hidden = model(**part).last_hidden_state
                mask = part["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                if getattr(model.config, "finassist_pooling", "mean") == "cls":
                    pooled_windows = hidden[:, 0]
                else:
                    pooled_windows = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                parts.append(pooled_windows.float().cpu())
            windows = torch.cat(parts)
            per_text = torch.zeros(len(batch), windows.shape[1]).index_add_(0, owner, windows)
            counts = torch.bincount(owner, minlength=len(batch)).clamp(min=1).unsqueeze(1)
            pooled.append(torch.nn.functional.normalize(per_text / counts, dim=-1))
        if not pooled:
            return torch.empty(0)
        sorted_rows = torch.cat(pooled)
        out = torch.empty_like(sorted_rows)
        out[torch.tensor(order)] = sorted_rows
        return out

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
                "device": str(self.runtime.device),
                "dtype": self.runtime.dtype_name,
                "attention": self.runtime.attn_implementation,
                "loaded": loaded is not None,
            }
            if role == GENERATOR and self.upstream is not None:
                row["upstream"] = self.upstream.base_url
            config = _read_config(resolved)
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
        return rows


def render_chat(tokenizer, messages: Sequence[Message], add_generation_prompt: bool = True) -> str:
    """A conversation as prompt text: the tokenizer's chat template, or the plain template of
    ``prompts/chat.toml`` for models without one (GPT-2). One function for inference and for
    fine-tuning (``finetune/generate.py``), so a model is trained on exactly the prompts it is
    later asked with. ``add_generation_prompt=False`` renders a finished conversation (the last
    turn included, as a training example ends)."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=add_generation_prompt)
    plain = load_prompt("chat")["plain_template"]
    roles = plain["roles"]
    turns = [plain["turn"].format(role=roles[m["role"]], content=m["content"]) for m in messages]
    if not add_generation_prompt:
        return "".join(turns)
    return "".join(turns) + plain["generation_prompt"].format(role=roles["assistant"])


def _read_config(resolved: ResolvedModel) -> dict:
    path = Path(resolved.location) / "config.json"
    if path.is_file():
        return json.loads(path.read_text())
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(resolved.location, "config.json")
        return json.loads(Path(hit).read_text()) if isinstance(hit, str) else {}
    except Exception:
        return {}


def _encoder_max_length(enc: LoadedModel) -> int:
    # sentence-transformers models record the window they were trained with (256 for MiniLM).
    st_config = Path(enc.resolved.location) / "sentence_bert_config.json"
    if st_config.is_file():
        value = json.loads(st_config.read_text()).get("max_seq_length")
        if value:
            return int(value)
    return min(enc.context_window, 512)


def _load_model(resolved: ResolvedModel, runtime: Runtime) -> LoadedModel:
    import time

    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    started = time.perf_counter()
    auto = AutoModelForCausalLM if resolved.role == GENERATOR else AutoModel
    common = {"local_files_only": resolved.local_files_only, "dtype": runtime.dtype}
    # Loading safetensors takes a second or two: a progress bar would only be noise.
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved.location, local_files_only=resolved.local_files_only)
        try:
            model = auto.from_pretrained(resolved.location, attn_implementation=runtime.attn_implementation, **common)
        except ValueError as exc:  # an architecture without SDPA support: its default attention
            if "attn_implementation" not in str(exc) and "sdpa" not in str(exc).lower():
                raise
            model = auto.from_pretrained(resolved.location, **common)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"could not load {resolved.role} {resolved.spec!r} from {resolved.origin}: {exc}") from exc
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    model.to(runtime.device).eval()
    if runtime.quantization == "int8" and resolved.role == GENERATOR:
        model = quantize_int8(model)
    if resolved.role == ENCODER:
        _record_pooling(model, Path(resolved.location))
    seconds = time.perf_counter() - started
    log.info("loaded %s %s on %s in %.1fs", resolved.role, resolved.name, runtime.describe(), seconds)
    return LoadedModel(resolved, runtime, model, tokenizer, seconds)


def _record_pooling(model, location: Path) -> None:
    """Mean pooling unless a sentence-transformers pooling config asks for CLS."""
    pooling = location / "1_Pooling" / "config.json"
    mode = "mean"
    if pooling.is_file() and json.loads(pooling.read_text()).get("pooling_mode_cls_token"):
        mode = "cls"
    model.config.finassist_pooling = mode
