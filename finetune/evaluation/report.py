"""Shared helpers for evaluation reports: JSON/Markdown/PNG writes (atomic: ``finetune.files``) and
Markdown tables. Reports embed the machine description of ``assistant.machine``, so a number can be
traced to where it ran."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..files import atomic_write, atomic_write_text


def _json_default(obj: Any) -> Any:
    """JSON for what reports carry besides plain types: numpy values, paths, sets, dataclasses."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=str)
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, torch tensors
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(obj: Any, path: Path | str) -> Path:
    """Write ``obj`` as indented UTF-8 JSON, atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default) + "\n")


def write_markdown(text: str, path: Path | str) -> Path:
    """Write Markdown text (with a final newline), atomically."""
    return atomic_write_text(path, text if text.endswith("\n") else text + "\n")


def save_figure(fig, path: Path | str, dpi: int = 120) -> Path:
    """Save a matplotlib ``Figure`` as PNG, atomically."""
    return atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=dpi, bbox_inches="tight"))


def new_figure(width: float, height: float):
    """A matplotlib ``Figure`` drawn by the Agg canvas: no pyplot global state and no display,
    so reports can be written from threads, servers and headless machines."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def format_cell(value: Any, digits: int = 4) -> str:
    """One Markdown table cell: floats to ``digits`` decimals, None as an en dash, pipes escaped."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], digits: int | Sequence[int] = 4) -> str:
    """A GitHub Markdown table; numeric columns are right-aligned. ``digits``: decimals shown for
    floats, one number for all columns or one per column."""
    headers = list(headers)
    if not headers:
        raise ValueError("markdown_table needs at least one header")
    for i, row in enumerate(rows):
        if len(row) != len(headers):
            raise ValueError(f"row {i} has {len(row)} cells, expected {len(headers)} (one per header)")
    places = [digits] * len(headers) if isinstance(digits, int) else list(digits)
    if len(places) != len(headers):
        raise ValueError(f"digits has {len(places)} entries, expected {len(headers)} (one per header)")

    def numeric(col: int) -> bool:
        values = [row[col] for row in rows if row[col] is not None]
        return bool(values) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)

    align = ["---:" if numeric(c) else "---" for c in range(len(headers))]
    lines = [
        "| " + " | ".join(format_cell(h) for h in headers) + " |",
        "| " + " | ".join(align) + " |",
    ]
    lines += ["| " + " | ".join(format_cell(v, d) for v, d in zip(row, places)) + " |" for row in rows]
    return "\n".join(lines)
