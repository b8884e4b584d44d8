"""``finassist eval summarize``: LEAD-3, the zero-shot base model and a fine-tuned run scored on the
same examples in one run, through the product's own summariser (``Assistant.summarize``:
chunking, prompts, post-processing), so the numbers are what a user gets.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Sequence
from pathlib import Path

from assistant.errors import InvalidParameterError
from assistant.models import DEFAULT_GENERATOR, GENERATOR

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
                   desc: str) -> tuple[list[str], dict]:
    """Summaries of ``sources`` by the product's summariser with ``generator``. An example that
    fails (a user-fixable AssistantError) scores as an empty summary and is counted."""
    from tqdm.auto import tqdm

    from assistant import Assistant
    from assistant.errors import AssistantError

    assistant = Assistant(generator=generator, device=None if device in (None, "", "auto") else device)
    predictions: list[str] = []
    failures: list[str] = []
    started = time.perf_counter()
    try:
        for source in tqdm(sources, desc=desc, unit="doc"):
            try:
                predictions.append(assistant.summarize(source, style=style, max_words=max_words).text)
            except AssistantError as exc:
                predictions.append("")
                failures.append(str(exc))
        seconds = time.perf_counter() - started
        gen = assistant.engine.loaded(GENERATOR)
        info = {"generator": generator, "origin": gen.resolved.origin if gen else None,
                "device": str(assistant.engine.runtime.device), "dtype": assistant.engine.runtime.dtype_name,
                "seconds": round(seconds, 1), "seconds_per_example": round(seconds / max(len(sources), 1), 2),
                "failures": len(failures), "first_failure": failures[0] if failures else None}
    finally:
        del assistant  # free the model before the next system loads its own
        gc.collect()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return predictions, info


def evaluate_summarizer(model: str | None, data: str, input_field: str = "transcript", target_field: str = "summary",
                        out: str | None = None, limit: int | None = None, baselines: bool = True,
                        max_words: int | None = None, style: str = "bullets", device: str | None = None,
                        split: str = "validation") -> list[SummarizationReport]:
    """Score summarisers on ``data`` with ROUGE and numeric precision, side by side.

    Systems, in order: LEAD-3 (the first three sentences); with ``baselines`` and a fine-tuned
    run as ``model``, that run's base model zero-shot; then ``model`` itself (a run, preset, hub
    id or path; ``None``: the default generator, zero-shot). Generators go through
    ``Assistant.summarize`` (``style``, ``max_words``). ``limit``: the first N records only.
    With ``out``, ``save_reports`` writes ``summarization.json``/``.md``/``.png`` there.
    Returns one ``SummarizationReport`` per system.
    """
    if limit is not None and limit < 1:
        raise InvalidParameterError(f"limit must be at least 1, got {limit}")
    records = load_records(data, split=split, required=(input_field, target_field))
    if limit is not None:
        records = records[:limit]
    sources = [text_of(r, input_field) for r in records]
    references = [text_of(r, target_field) for r in records]
    ids = [str(r.get("id", r.get(ORIGIN, i))) for i, r in enumerate(records)]

    info = _generator_run(model)
    systems: list[tuple[str, str | None]] = [("LEAD-3", None)]
    if info is not None and baselines:
        base = _base_of(info)
        systems.append((f"zero-shot {base}", base))
    name = str(model or DEFAULT_GENERATOR)
    systems.append((f"fine-tuned {name}" if info is not None else f"zero-shot {name}", name))

    evaluator = SummarizationEvaluator(rouge_types=("rouge1", "rouge2", "rougeL", "rougeLsum"))
    common = {"data": str(data), "input_field": input_field, "target_field": target_field, "limit": limit}
    reports = []
    for system, generator in systems:
        if generator is None:
            predictions, extra = [lead_n(s, 3) for s in sources], {"baseline": "first 3 sentences"}
        else:
            predictions, extra = _summarize_all(generator, sources, style, max_words, device, system)
            extra.update(style=style, max_words=max_words)
        report = evaluator(predictions, references, sources=sources, ids=ids, system=system, **common, **extra)
        for row, prediction in zip(report.per_example, predictions):
            row["prediction"] = prediction
        reports.append(report)
        log.info("%s: ROUGE-1 %.4f ROUGE-2 %.4f ROUGE-L %.4f", system, report.rouge1 or 0, report.rouge2 or 0,
                 report.rougeL or 0)
    if out:
        save_reports(reports, Path(out).expanduser(), "summarization")
    return reports
