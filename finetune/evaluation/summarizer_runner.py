"""``finassist eval summarize``: LEAD-3, the summariser's extractive picks alone, extract-then-rewrite,
the chunk-and-combine path, and (for a fine-tuned generator run) its base model, scored on the same
examples in one run, through the product's own summariser (``Assistant.summarize``: picking,
rewriting, the figure check, prompts, post-processing), so the numbers are what a user gets.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Sequence
from pathlib import Path

from assistant.errors import InvalidParameterError
from assistant.models import DEFAULT_GENERATOR, GENERATOR
from assistant.settings import BATCHING_BACKENDS, BatchSettings

from ..data import ORIGIN, load_records, text_of
from .summarization import SummarizationEvaluator, SummarizationReport, lead_n, save_reports

log = logging.getLogger(__name__)


def _generator_run(model: str | Path | None):
    """The ``RunInfo`` of a fine-tuned generator run directory, None for any other model spec."""
    from assistant.runs import is_run, read_run

    if not model or not is_run(model):
        return None
    info = read_run(model)
    if info.kind != "generator":
        raise InvalidParameterError(f"{model} is a {info.kind} run, not a generator: it cannot summarise")
    return info


def _base_of(info) -> str:
    """The model a run was fine-tuned from, as given; or where it was found at training time
    when that spec is a path that no longer resolves from here (a relative path)."""
    location = info.config.get("base_model_location")
    if location and not Path(info.base_model).expanduser().exists() and Path(location).exists():
        from assistant.models import PRESETS

        if info.base_model.lower() not in PRESETS:
            return str(location)
    return info.base_model


def _summarize_all(generator: str, sources: Sequence[str], style: str, max_words: int | None, device: str | None,
                   desc: str, method: str, backend: str = "auto",
                   adapters: bool = True) -> tuple[list[str], list[str], dict]:
    """Summaries of ``sources`` by the product's summariser with ``generator`` and ``method``, and the
    source sentences the bullets were written from (one per line: the extractive picks before
    rewriting; empty for "chunked"). ``adapters=False``: the generator's shipped summary adapters
    (rewriter, headliner) are left out, so the plain generator writes from the same picks. An example
    that fails (a user-fixable AssistantError) scores as an empty summary and is counted."""
    from tqdm.auto import tqdm

    from assistant import Assistant
    from assistant.errors import AssistantError

    assistant = Assistant(generator=generator, device=None if device in (None, "", "auto") else device,
                          batch_settings=BatchSettings(backend=backend))
    if not adapters:
        assistant.engine.rewriter_adapter = assistant.engine.headliner_adapter = None
    predictions: list[str] = []
    picks: list[str] = []
    failures: list[str] = []
    rewritten = checked = 0
    started = time.perf_counter()
    try:
        for source in tqdm(sources, desc=desc, unit="doc"):
            try:
                summary = assistant.summarize(source, style=style, max_words=max_words, method=method)
            except AssistantError as exc:
                predictions.append("")
                picks.append("")
                failures.append(str(exc))
                continue
            predictions.append(summary.text)
            used = {s.index: s.text for b in summary.bullets for s in b.sources} or \
                {s.index: s.text for s in summary.sources}
            picks.append("\n".join(used[i] for i in sorted(used)))
            rewritten += sum(b.origin == "rewritten" for b in summary.bullets)
            checked += len(summary.bullets)
        seconds = time.perf_counter() - started
        gen = assistant.engine.loaded(GENERATOR) or assistant.engine.loaded("rewriter")
        info = {"generator": generator, "method": method, "origin": gen.resolved.origin if gen else None,
                "fine_tuned_rewriter": assistant.engine.rewriter_adapter is not None and method == "extract",
                "fine_tuned_headliner": assistant.engine.headliner_adapter is not None and method == "extract"
                and style == "headline",
                "scorer": str(assistant.engine.summary_scorer.path) if assistant.engine.summary_scorer else None,
                "bullets_rewritten_share": round(rewritten / checked, 4) if checked else None,
                "device": str(assistant.engine.runtime.device), "dtype": assistant.engine.runtime.dtype_name,
                "backend": getattr(assistant.engine.rewriter()[0], "name", backend) if method == "extract"
                else assistant.engine.backend_name,
                "seconds": round(seconds, 1), "seconds_per_example": round(seconds / max(len(sources), 1), 2),
                "failures": len(failures), "first_failure": failures[0] if failures else None}
    finally:
        del assistant  # free the model before the next system loads its own
        gc.collect()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return predictions, picks, info


def _names(option: str, value: str, allowed: Sequence[str]) -> list[str]:
    """A comma-separated option's names, each one of ``allowed`` (at least one)."""
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names or any(n not in allowed for n in names):
        raise InvalidParameterError(f"{option} must name some of {', '.join(allowed)}, got {value!r}")
    return names


def evaluate_summarizer(model: str | None, data: str, input_field: str = "transcript", target_field: str = "summary",
                        out: str | None = None, limit: int | None = None, baselines: bool = True,
                        max_words: int | None = None, style: str = "bullets", device: str | None = None,
                        split: str = "validation", methods: str = "extract,chunked",
                        chunked_limit: int | None = 10, backends: str = "auto",
                        without_adapters: bool = False) -> list[SummarizationReport]:
    """Score summarisers on ``data`` with ROUGE and numeric precision, side by side.

    Systems, in order: LEAD-3 (the first three sentences); for each of ``methods`` (comma-separated:
    "extract", "chunked") ``model`` through ``Assistant.summarize`` (``style``, ``max_words``); with
    "extract", also its extractive picks alone (the source sentences, before rewriting); with
    ``baselines`` and a fine-tuned run as ``model``, that run's base model too. ``model``: a run,
    preset, hub id or path; ``None``: the default generator. ``limit``: the first N records only;
    ``chunked_limit``: the chunked path (a minute or two a transcript on a CPU) on the first N of
    those only, its report naming how many. ``backends``: comma-separated generation backends (auto,
    onnx, dynamic, ...): each method runs once with each, in this run (the quality check of a faster
    backend); with more than one, each system's name ends with its backend.
    ``without_adapters``: each "extract" system also runs with the generator's shipped adapters
    (rewriter, headliner) left out, the plain generator writing from the same picks (what they add).
    With ``out``, ``save_reports`` writes
    ``summarization.json``/``.md``/``.png`` there. Returns one ``SummarizationReport`` per system.
    """
    from assistant.tasks.summarize import METHODS

    if limit is not None and limit < 1:
        raise InvalidParameterError(f"limit must be at least 1, got {limit}")
    if chunked_limit is not None and chunked_limit < 1:
        raise InvalidParameterError(f"chunked_limit must be at least 1, got {chunked_limit}")
    chosen = _names("methods", methods, METHODS)
    chosen_backends = _names("backends", backends, BATCHING_BACKENDS)  # checked before any data is read
    records = load_records(data, split=split, required=(input_field, target_field))
    if limit is not None:
        records = records[:limit]
    sources = [text_of(r, input_field) for r in records]
    references = [text_of(r, target_field) for r in records]
    ids = [str(r.get("id", r.get(ORIGIN, i))) for i, r in enumerate(records)]

    info = _generator_run(model)
    name = str(model or DEFAULT_GENERATOR)
    generators = [(f"fine-tuned {name}" if info is not None else name, name)]
    if info is not None and baselines:
        generators.insert(0, (f"zero-shot {_base_of(info)}", _base_of(info)))

    evaluator = SummarizationEvaluator(rouge_types=("rouge1", "rouge2", "rougeL", "rougeLsum"))
    common = {"data": str(data), "input_field": input_field, "target_field": target_field, "limit": limit}
    reports = []

    def score(system: str, predictions: list[str], n: int, **extra) -> None:
        report = evaluator(predictions, references[:n], sources=sources[:n], ids=ids[:n], system=system, **common,
                           **extra)
        for row, prediction in zip(report.per_example, predictions):
            row["prediction"] = prediction
        reports.append(report)
        log.info("%s: ROUGE-1 %.4f ROUGE-2 %.4f ROUGE-L %.4f", system, report.rouge1 or 0, report.rouge2 or 0,
                 report.rougeL or 0)

    score("LEAD-3", [lead_n(s, 3) for s in sources], len(sources), baseline="first 3 sentences")
    for label, generator in generators:
        for method in chosen:
            for backend in chosen_backends:
                n = min(len(sources), chunked_limit) if method == "chunked" and chunked_limit else len(sources)
                system = f"{method} {label}" + (f" (first {n})" if n < len(sources) else "")
                system += f" [{backend}]" if len(chosen_backends) > 1 else ""
                predictions, picks, extra = _summarize_all(generator, sources[:n], style, max_words, device, system,
                                                           method, backend)
                if method == "extract" and generator == name and backend == chosen_backends[0]:
                    score("extractive picks (no rewrite)", picks, n, baseline="the summariser's source sentences")
                score(system, predictions, n, style=style, max_words=max_words, **extra)
                if method == "extract" and without_adapters:
                    plain = f"{system} without adapters"
                    predictions, _, extra = _summarize_all(generator, sources[:n], style, max_words, device, plain,
                                                           method, backend, adapters=False)
                    score(plain, predictions, n, style=style, max_words=max_words, **extra)
    if out:
        save_reports(reports, Path(out).expanduser(), "summarization")
    return reports
