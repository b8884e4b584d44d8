"""Summarisation metrics: ROUGE (rouge-score) plus numeric precision against the source, the
LEAD-n baseline, and side-by-side reports for several systems (LEAD-3, zero-shot, fine-tuned)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from rouge_score import rouge_scorer

from assistant.figures import numeric_precision
from assistant.sentences import split_sentences
from .report import markdown_table, new_figure, save_figure, write_json, write_markdown

def lead_n(text: str, n: int = 3) -> str:
    """The first ``n`` sentences, one per line: the LEAD-n baseline (LEAD-3 for ECTSum), which a
    summariser must beat to be worth running."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return "\n".join(split_sentences(text)[:n])


_ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


@dataclass
class SummarizationReport:
    system: str
    n: int
    #: Mean ROUGE F-measures, 0..1 (None when that ROUGE type was not computed).
    rouge1: float | None
    rouge2: float | None
    rougeL: float | None
    #: Mean over the outputs that contain numbers; None without sources or numbers.
    numeric_precision: float | None
    words_mean: float
    reference_words_mean: float
    per_example: list[dict] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_markdown(self) -> str:
        return f"## Summarization: {self.system}\n\n{compare_markdown([self])}"


class SummarizationEvaluator:
    """ROUGE F-measures (rouge-score, Porter stemming by default) and numeric precision.

    ``rougeL`` is plain sentence-level LCS over the whole text. Ask for ``"rougeLsum"`` instead
    to treat line breaks as sentence boundaries (summary-level LCS, the usual choice for bullet
    references such as ECTSum's); the report's ``rougeL`` field then holds rougeLsum and
    ``extra["rougeL_variant"]`` says so.
    """

    def __init__(self, rouge_types: Sequence[str] = ("rouge1", "rouge2", "rougeL"), use_stemmer: bool = True):
        self.rouge_types = list(rouge_types)
        bad = [t for t in self.rouge_types if t not in _ROUGE_TYPES]
        if bad or not self.rouge_types:
            raise ValueError(f"rouge_types must be a non-empty subset of {_ROUGE_TYPES}, got {self.rouge_types}")
        self.scorer = rouge_scorer.RougeScorer(self.rouge_types, use_stemmer=use_stemmer)
        self.rouge_l = "rougeL" if "rougeL" in self.rouge_types else ("rougeLsum" if "rougeLsum" in self.rouge_types
                                                                     else None)

    def __call__(self, predictions: Sequence[str], references: Sequence[str], sources: Sequence[str] | None = None,
                 ids: Sequence[str] | None = None, system: str = "model", **extra) -> SummarizationReport:
        predictions, references = list(predictions), list(references)
        if len(predictions) != len(references):
            raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
        if not predictions:
            raise ValueError("nothing to evaluate: predictions and references are empty")
        for name, values in (("sources", sources), ("ids", ids)):
            if values is not None and len(values) != len(predictions):
                raise ValueError(f"{name} has {len(values)} items, expected {len(predictions)} (one per prediction)")
        for name, values in (("predictions", predictions), ("references", references), ("sources", sources or [])):
            bad = next((i for i, v in enumerate(values) if not isinstance(v, str)), None)
            if bad is not None:
                raise ValueError(f"{name}[{bad}] must be a string, got {type(values[bad]).__name__}")

        per_example = []
        for i, (pred, ref) in enumerate(zip(predictions, references)):
            scores = self.scorer.score(ref, pred)  # rouge-score takes (target, prediction)
            row = {"id": str(ids[i]) if ids is not None else str(i)}
            row.update({t: float(scores[t].fmeasure) for t in self.rouge_types})
            row["numeric_precision"] = numeric_precision(pred, sources[i]) if sources is not None else None
            row["words"] = len(pred.split())
            row["reference_words"] = len(ref.split())
            per_example.append(row)

        def mean_of(key: str | None) -> float | None:
            return _mean([row[key] for row in per_example]) if key in self.rouge_types else None

        checked = [row["numeric_precision"] for row in per_example if row["numeric_precision"] is not None]
        info = {"rouge_types": list(self.rouge_types), "numeric_outputs": len(checked)}
        if self.rouge_l == "rougeLsum":
            info["rougeL_variant"] = "rougeLsum"
        if "rougeL" in self.rouge_types and "rougeLsum" in self.rouge_types:
            info["rougeLsum"] = mean_of("rougeLsum")
        return SummarizationReport(
            system=system,
            n=len(predictions),
            rouge1=mean_of("rouge1"),
            rouge2=mean_of("rouge2"),
            rougeL=mean_of(self.rouge_l),
            numeric_precision=_mean(checked),
            words_mean=float(np.mean([row["words"] for row in per_example])),
            reference_words_mean=float(np.mean([row["reference_words"] for row in per_example])),
            per_example=per_example,
            extra={**extra, **info},
        )


def compare_markdown(reports: Sequence[SummarizationReport]) -> str:
    """One table row per system, so LEAD-3, zero-shot and fine-tuned read side by side."""
    if not reports:
        raise ValueError("no reports to compare")
    rows = []
    for r in reports:
        checked = r.extra.get("numeric_outputs")
        rows.append([r.system, r.n, r.rouge1, r.rouge2, r.rougeL, r.numeric_precision,
                     f"{checked}/{r.n}" if checked is not None else None,
                     r.words_mean, r.reference_words_mean])
    headers = ["system", "n", "ROUGE-1", "ROUGE-2", "ROUGE-L", "numeric precision", "outputs with numbers",
               "words", "reference words"]
    return markdown_table(headers, rows, digits=[4, 0, 4, 4, 4, 4, 0, 1, 1]) + "\n"


def _rouge_figure(reports: Sequence[SummarizationReport]):
    metrics = [("ROUGE-1", "rouge1"), ("ROUGE-2", "rouge2"), ("ROUGE-L", "rougeL")]
    k = len(reports)
    width = 0.8 / k
    fig = new_figure(max(6.0, 1.2 * k + 4.0), 4.0)
    ax = fig.subplots()
    x = np.arange(len(metrics))
    for i, r in enumerate(reports):
        values = [getattr(r, attr) or 0.0 for _, attr in metrics]
        bars = ax.bar(x - 0.4 + width * (i + 0.5), values, width, label=r.system)
        ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=2)
    ax.set_xticks(x, [name for name, _ in metrics])
    ax.set_ylabel("F-measure")
    top = max([getattr(r, a) or 0.0 for r in reports for _, a in metrics] + [0.1])
    ax.set_ylim(0, min(1.0, top * 1.2 + 0.02))
    sizes = sorted({r.n for r in reports})
    ax.set_title(f"Summarization ROUGE (n={', '.join(map(str, sizes))})")
    ax.legend(fontsize=8)
    return fig


def save_reports(reports: Sequence[SummarizationReport], out_dir: Path, name: str = "summarization") -> dict[str, Path]:
    """Write ``<name>.json`` (every report, per-example scores included), ``<name>.md`` (the
    comparison table) and ``<name>.png`` (ROUGE-1/2/L bars grouped by metric, one per system)."""
    reports = list(reports)
    if not reports:
        raise ValueError("no reports to save")
    out_dir = Path(out_dir)
    return {
        "json": write_json({"reports": [r.to_dict() for r in reports]}, out_dir / f"{name}.json"),
        "md": write_markdown(f"## Summarization\n\n{compare_markdown(reports)}", out_dir / f"{name}.md"),
        "png": save_figure(_rouge_figure(reports), out_dir / f"{name}.png"),
    }
