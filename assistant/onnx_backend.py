"""The fast CPU generation backend: the generator exported once to ONNX and decoded by ONNX Runtime
GenAI, behind the same ``GenerationBackend`` interface as the torch backends.

Why this library: measured side by side on the 2-core CPU (docs/benchmarks/decode.md), ONNX Runtime
GenAI decodes SmolLM2-135M with int8 weights about 5x faster than ``model.generate`` in fp32 (int4:
faster still, but its greedy output drifts sooner), where CTranslate2 int8 reached 2-3x. It ships
prebuilt wheels and its own model builder (Hugging Face checkpoint -> ONNX with quantised weights).

Export (``export_onnx``): once per model, weights and precision, into the cache
(``$FINASSIST_CACHE/onnx``), atomically and with a progress bar, by the library's model builder in
a subprocess (it holds about 2 GB while it works; the server's process never does). A fine-tuned
model exports the same way once its LoRA is merged. The exported config gets a padding token that
never occurs in a prompt (SmolLM2 pads with its end-of-turn token, which every chat prompt contains;
GenAI masks every padding token, so batched prompts would lose their turn ends).

Scheduling (``OnnxBatcher``): GenAI's own continuous-batching engine needs paged attention, which
it builds only for CUDA; on a CPU it batches statically, so a request that arrives while a batch
runs waits for the whole batch. So this backend schedules at the token level itself: requests that
arrive together form a *cohort* (one batched GenAI generator, prompts right-padded), and the worker
thread steps every running cohort by one token in turn. A new request starts its cohort at the next
step (it waits for one step of each running cohort, tens of milliseconds, not for a generation), and
rows of all cohorts together are limited by ``max_batch_size``. Each request streams its own tokens
through ``GenerationRequest.feed`` (stop strings, cancellation, finish reasons as in the other
backends); a finished or cancelled row costs only its share of its cohort's steps until the cohort
ends. The model and its generators live in a child process (``genai_worker.py``: GenAI holds the GIL
while it computes, which would stop the server's event loop); the worker thread here schedules and
sends it one call per prefill and per step.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .chat import ChatModel
from .errors import AssistantError, GenerationError, ModelLoadError, QueueFullError
from .generation import GenerationRequest, QueuedBackend, notify_listeners
from .models import build_cached, cache_root, is_converted
from .settings import ONNX_PRECISIONS, BatchSettings
from .types import SamplingParams

log = logging.getLogger(__name__)


#: Architectures ONNX Runtime GenAI's model builder exports (its ``create_model`` dispatch; it has
#: no public query). Anything else decodes with torch without trying an export first.
ONNX_ARCHITECTURES = frozenset({
    "LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM", "PhiForCausalLM",
    "Phi3ForCausalLM", "GemmaForCausalLM", "Gemma2ForCausalLM", "GraniteForCausalLM", "OlmoForCausalLM",
    "SmolLM3ForCausalLM", "NemotronForCausalLM", "InternLM2ForCausalLM",
})

#: The packages the export and the decoding need (pip names).
_REQUIRED = {"onnxruntime_genai": "onnxruntime-genai", "onnx": "onnx", "onnx_ir": "onnx-ir"}


def onnx_available() -> str | None:
    """None when the ONNX backend can run here, else why not (a missing package)."""
    missing = [pip for module, pip in _REQUIRED.items() if importlib.util.find_spec(module) is None]
    return f"pip install {' '.join(missing)}" if missing else None


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, else all)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def exportable(config: dict) -> bool:
    """Whether the builder exports a model with this ``config.json``."""
    return bool(set(config.get("architectures") or ()) & ONNX_ARCHITECTURES)


# ------------------------------------------------------------------------------------ export


def onnx_dir_for(name: str, fingerprint: str, precision: str) -> Path:
    """The cache directory of one export: keyed by the weights, the precision and the library's
    version (a new GenAI release may write a different graph); ``name`` only makes it readable."""
    from importlib.metadata import version

    # The installed version from its metadata: the library itself is loaded only in the decoding process.
    key = f"{fingerprint}|{precision}|onnxruntime-genai-{version('onnxruntime-genai')}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_root() / "onnx" / f"{name}-{precision}-{digest}"


def padding_id(tokenizer, eos_ids: set[int]) -> int:
    """A token id to pad batched prompts with: not an end-of-sequence id (GenAI would stop on it)
    and, where the tokenizer offers one, not a token the chat template writes (see the module doc)."""
    template = getattr(tokenizer, "chat_template", None) or ""
    for candidate in (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.bos_token_id, 0):
        if candidate is None or candidate in eos_ids:
            continue
        if tokenizer.convert_ids_to_tokens(candidate) in template:
            continue
        return int(candidate)
    return len(tokenizer) - 1


#: A Hugging Face model to export: its directory, or a function that writes it into a given directory
#: (a model with a LoRA merged exists only in memory; it is written out only when an export is needed).
Source = Path | Callable[[Path], None]


def export_onnx(source: Source, name: str, fingerprint: str, precision: str, pad_id: int) -> Path:
    """Export a Hugging Face model once to ONNX (``precision`` weights, CPU) into the cache, keyed by
    ``fingerprint`` (what identifies its weights); returns the directory GenAI loads. Raises
    ``ModelLoadError`` when it cannot."""
    if precision not in ONNX_PRECISIONS:
        raise ModelLoadError(f"unknown ONNX precision {precision!r}: {', '.join(ONNX_PRECISIONS)}")
    missing = onnx_available()
    if missing:
        raise ModelLoadError(f"the ONNX backend needs its packages: {missing}")
    target = onnx_dir_for(name, fingerprint, precision)
    if is_converted(target, "genai_config.json"):
        return target
    return build_cached(
        target, lambda out: _run_builder(source, out, precision, pad_id), name,
        f"Exporting {name} to ONNX ({precision}) once (about 10 s for a 135M model)",
        required="genai_config.json",
    )


def _run_builder(source: Source, out: Path, precision: str, pad_id: int) -> None:
    """Run GenAI's model builder in a subprocess, its stages as a progress bar."""
    from tqdm.auto import tqdm

    written = None
    if callable(source):
        written = out / "_source"
        written.mkdir()
        source(written)
        source = written
    config = json.loads((source / "config.json").read_text())
    layers = int(config.get("num_hidden_layers") or 0)
    work = out / "_builder-cache"
    cmd = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(source), "-o", str(out),
           "-p", precision, "-e", "cpu", "-c", str(work)]
    tail: deque[str] = deque(maxlen=15)
    with tqdm(total=layers + 2, desc=f"ONNX export ({precision})", unit="stage", leave=False) as bar:
        # Unbuffered: the builder's stage lines reach the bar as they happen, not all at its exit.
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                                env=env)
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line.rstrip())
            if re.match(r"Reading (embedding|layer \d+|final norm)", line) or line.startswith("Saving ONNX model"):
                bar.update(1)
        rc = proc.wait()
    shutil.rmtree(work, ignore_errors=True)
    if written is not None:
        shutil.rmtree(written, ignore_errors=True)
    genai_config = out / "genai_config.json"
    if rc != 0 or not genai_config.is_file():
        raise ModelLoadError(f"the ONNX export of {source} failed (exit {rc}): " + " | ".join(list(tail)[-4:]))
    settings = json.loads(genai_config.read_text())
    settings["model"]["pad_token_id"] = pad_id
    genai_config.write_text(json.dumps(settings, indent=2))


# --------------------------------------------------------------------------------- scheduler


def _sampling_key(params: SamplingParams) -> tuple:
    """Requests share a cohort only when one GenAI generator can honour all their settings."""
    return (params.sampled, params.temperature, params.top_p, params.repetition_penalty, params.seed)


#: Tokens per call to the decoding process while one cohort runs and no request waits.
BURST_TOKENS = 4


class _Cohort:
    """Requests decoded together by one batched GenAI generator."""

    def __init__(self, requests: list[GenerationRequest], generator: int) -> None:
        self.requests = requests
        #: Its generator's id in the decoding process (``genai_worker.py``).
        self.generator = generator
        #: Whether it has had a step (its first token comes alone: the time to the first token).
        self.stepped = False
        self.started = time.perf_counter()

    @property
    def finished(self) -> bool:
        return all(r.done for r in self.requests)


class OnnxBatcher(QueuedBackend):
    """Token-level scheduling of chat completions over ONNX Runtime GenAI (see the module doc)."""

    thread_name = "finassist-onnx"

    def __init__(self, chat: ChatModel, model_dir: Path, settings: BatchSettings | None = None,
                 precision: str | None = None) -> None:
        from .genai_worker import GenAIWorker

        settings = settings or BatchSettings()
        precision = precision or settings.onnx_precision
        self.model_dir = Path(model_dir)
        genai = json.loads((self.model_dir / "genai_config.json").read_text())["model"]
        self.pad_id = int(genai["pad_token_id"])
        self.vocab_size = int(genai["vocab_size"])
        self.eos_ids = chat.loaded.eos_ids
        # The model decodes in a process of its own: GenAI holds the GIL while it computes (genai_worker.py).
        self.worker = GenAIWorker(self.model_dir, usable_cores())
        self.name = (f"onnx ({precision} weights, onnxruntime-genai {self.worker.version}, token-level scheduling, "
                     "decoding in a process of its own)")
        self._cohorts: list[_Cohort] = []
        #: Running estimate of one round (a prefill where a cohort starts, one step of every cohort).
        self._round_s = 0.05
        super().__init__(chat, settings)

    def close(self) -> None:
        super().close()
        self.worker.close()

    def expected_wait_s(self) -> float:
        """How long a request queued now would wait for a row: nothing while rows are free; else until
        enough running cohorts end (a cohort frees its rows when its last request ends: at most its
        longest remaining ``max_new_tokens`` rounds away, a round being one step of every cohort, its
        time measured), plus a whole generation of the waiting requests for every further
        ``max_batch_size`` ahead. An upper bound where requests end early at their end-of-turn token:
        better a request refused with Retry-After than admitted to time out waiting."""
        free = self.max_batch_size - self._rows()
        ahead = len(self._waiting)
        if ahead < free:
            return 0.0
        cohorts = list(self._cohorts)
        ending = sorted((max((r.params.max_new_tokens - len(r.new_ids) for r in c.requests if not r.done), default=0),
                         len(c.requests)) for c in cohorts)
        needed = ahead - free + 1  # rows that must free before this request gets one
        rounds = 0
        for remaining, rows in ending:
            rounds = remaining
            needed -= rows
            if needed <= 0:
                return rounds * self._round_s
        waiting = list(self._waiting)
        generation = max((r.params.max_new_tokens for r in waiting), default=0)
        return (rounds + (1 + (needed - 1) // self.max_batch_size) * generation) * self._round_s

    def expected_run_s(self, params: SamplingParams) -> float:
        """Its ``max_new_tokens`` rounds at the measured time of a round (which grows with the cohorts
        running): an upper bound where it ends early at its end-of-turn token."""
        return params.max_new_tokens * self._round_s

    def active(self) -> int:
        return sum(not r.done for c in self._cohorts for r in c.requests)

    def _decoding(self) -> list[GenerationRequest]:
        return [r for c in list(self._cohorts) for r in c.requests]

    # ------------------------------------------------------------------ worker

    def _rows(self) -> int:
        return sum(len(c.requests) for c in self._cohorts)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._cohorts and not self._closed:
                    self._cond.wait()
                if self._closed:
                    break
                idle = not self._cohorts
            if idle and self.max_wait_s > 0 and len(self._waiting) < self.max_batch_size:
                time.sleep(self.max_wait_s)  # let near-simultaneous requests share a cohort
            started = time.perf_counter()
            self._admit()
            # One cohort and nobody waiting: a few tokens per call to the decoding process, which spares
            # a round trip per token (streamed BURST_TOKENS at a time, ~40 ms); else one, so that every
            # cohort and every new request gets its turn at each token.
            alone = len(self._cohorts) == 1 and not self._waiting
            for cohort in list(self._cohorts):
                self._step(cohort, BURST_TOKENS if alone and cohort.stepped else 1)
            self._round_s = 0.8 * self._round_s + 0.2 * (time.perf_counter() - started)
        for cohort in list(self._cohorts):
            self._end(cohort, "cancelled")
        self._cohorts = []

    def _take(self) -> list[GenerationRequest]:
        """Waiting requests for one new cohort: same sampling settings, within the free rows and the
        context window as a whole (every row runs to the longest prompt plus the most new tokens)."""
        window = self.chat.context_window
        with self._cond:
            free = self.max_batch_size - self._rows()
            taken: list[GenerationRequest] = []
            kept: deque[GenerationRequest] = deque()
            key = None
            longest = most = 0
            solo = False  # the cohort so far holds a prompt with the padding id: nothing joins it
            now = time.perf_counter()
            while self._waiting:
                req = self._waiting.popleft()
                if req.cancelled:
                    req.on_cancel = None
                    req.finish("cancelled")
                    continue
                late = req.deadline is not None and now + self.expected_run_s(req.params) > req.deadline
                if late:  # it waited longer than admission expected: refused now (429), not timed out later (504)
                    req.on_cancel = None
                    req.fail(QueueFullError(
                        "the server is busy: this request waited too long to be finished within this server's "
                        "time limit", retry_after=self.retry_after_s()))
                    continue
                prompt = max(longest, req.prompt_tokens)
                new = max(most, req.params.max_new_tokens)
                # A prompt holding the padding id cannot share a padded batch (its own tokens would be masked).
                alone = bool((req.prompt_ids == self.pad_id).any())
                fits = not taken or (prompt + new <= window and not alone and not solo)
                if len(taken) < free and (key is None or _sampling_key(req.params) == key) and fits:
                    req.on_cancel = None  # leaving the queue: a cancel now frees its row at the next step
                    taken.append(req)
                    key = _sampling_key(req.params)
                    longest, most = prompt, new
                    solo = solo or alone
                else:
                    kept.append(req)
            self._waiting.extendleft(reversed(kept))
            return taken

    def _admit(self) -> None:
        taken = self._take()
        if not taken:
            return
        try:
            generator = self._generator(taken)
        except BaseException as exc:  # noqa: BLE001 - the requests fail, the worker goes on
            log.exception("ONNX Runtime GenAI could not start a batch")
            error = exc if isinstance(exc, AssistantError) else GenerationError(f"generation failed: {exc}")
            for req in taken:
                req.fail(error)
            return
        self._cohorts.append(_Cohort(taken, generator))
        notify_listeners(self.batch_listeners, self._rows())

    def _generator(self, requests: list[GenerationRequest]) -> int:
        """One batched GenAI generator for ``requests``, their prompts right-padded and prefilled: its
        id in the decoding process."""
        params = requests[0].params
        width = max(r.prompt_tokens for r in requests)
        options: dict = {
            "batch_size": len(requests),
            "max_length": width + max(r.params.max_new_tokens for r in requests),
            "do_sample": params.sampled,
        }
        if params.sampled:  # top-k off, as on the torch path
            options.update(temperature=float(params.temperature), top_p=float(params.top_p), top_k=self.vocab_size)
            if params.seed is not None:
                options["random_seed"] = int(params.seed)
        if params.repetition_penalty != 1.0:
            options["repetition_penalty"] = float(params.repetition_penalty)
        tokens = np.full((len(requests), width), self.pad_id, dtype=np.int32)
        for row, req in enumerate(requests):
            tokens[row, : req.prompt_tokens] = req.prompt_ids
        return self.worker.new_generator(options, tokens)

    def _step(self, cohort: _Cohort, tokens: int = 1) -> None:
        """Decode up to ``tokens`` tokens for every row of ``cohort`` (no more than its rows still need);
        end it when every row is done."""
        tokenizer = self.chat.loaded.tokenizer
        for req in cohort.requests:
            if not req.done and req.cancelled:
                req.finish("cancelled")
        if cohort.finished:
            self._end(cohort, "length")
            return
        needed = max((r.params.max_new_tokens - len(r.new_ids) for r in cohort.requests if not r.done), default=1)
        cohort.stepped = True
        try:
            steps, at_end = self.worker.step(cohort.generator, max(1, min(tokens, needed)))
        except BaseException as exc:  # noqa: BLE001 - fail this cohort's requests, keep the others
            log.exception("ONNX Runtime GenAI failed while decoding")
            error = exc if isinstance(exc, AssistantError) else GenerationError(f"generation failed: {exc}")
            for req in cohort.requests:
                if not req.done:
                    req.fail(error)
            self._end(cohort, "length")
            return
        for step in steps.tolist():
            for req, token in zip(cohort.requests, step):
                if not req.done and (reason := req.take(token, tokenizer, self.eos_ids)):
                    req.finish(reason)
        if cohort.finished or at_end:
            self._end(cohort, "length")

    def _end(self, cohort: _Cohort, reason: str) -> None:
        for req in cohort.requests:
            if not req.done:
                req.finish(reason)
        if cohort in self._cohorts:
            self._cohorts.remove(cohort)
            self._estimate_s = 0.7 * self._estimate_s + 0.3 * (time.perf_counter() - cohort.started)
        try:
            self.worker.drop(cohort.generator)  # frees its KV cache now
        except AssistantError:  # the decoding process is gone: nothing left to free
            pass
