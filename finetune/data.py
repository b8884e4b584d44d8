"""Loading training and evaluation data: JSONL/JSON/CSV files or Hugging Face dataset ids.

Field names are options, never assumptions. Every problem with the data is a
``DataError`` naming the file and the line (or row), so a user can fix it.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from assistant.errors import InvalidInputError

#: Key added to every record: where it came from ("file.jsonl:12" or "dataset[split] row 12").
ORIGIN = "_origin"


class DataError(InvalidInputError):
    """The training or evaluation data cannot be used as it is (the message names file and line)."""


def load_records(source: str | Path, split: str = "train", required: Sequence[str] = ()) -> list[dict]:
    """Records from a ``.jsonl``/``.json``/``.csv`` file, or a Hugging Face dataset id (``split``).

    Each record gets ``ORIGIN`` for error messages. ``required`` fields must be present and
    non-empty in every record.
    """
    path = Path(source).expanduser()
    # A path-looking source is a file (so a typo is "no such file", not a hub lookup).
    if path.exists() or path.suffix.lower() in {".jsonl", ".json", ".csv"} or str(source).startswith((".", "/", "~")):
        records = _load_file(path)
    else:
        records = _load_hub(str(source), split)
    if not records:
        raise DataError(f"{source}: no records (the file or split is empty)")
    for field in required:
        check_field(records, field)
    return records


def _load_file(path: Path) -> list[dict]:
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    records: list[dict] = []
    if suffix == ".csv":
        # csv splits rows itself (quoted fields may hold line breaks and characters such as U+0085).
        for i, row in enumerate(csv.DictReader(io.StringIO(text, newline="")), start=2):  # line 1 is the header
            records.append({**row, ORIGIN: f"{path}:{i}"})
        return records
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from exc
        if isinstance(data, dict) and "data" in data:
            data = data["data"]
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list of records")
        for i, row in enumerate(data):
            if not isinstance(row, dict):
                raise DataError(f"{path}: record {i} is not a JSON object")
            records.append({**row, ORIGIN: f"{path} record {i}"})
        return records
    # JSON Lines end at "\n" only: str.splitlines() would also split at characters such as U+0085
    # (NEL), which JSON strings may hold raw (the Twitter financial news data does).
    for i, line in enumerate(text.split("\n"), start=1):  # JSON Lines (any other suffix)
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{i}: invalid JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise DataError(f"{path}:{i}: expected a JSON object, got {type(row).__name__}")
        records.append({**row, ORIGIN: f"{path}:{i}"})
    return records


def _load_hub(name: str, split: str) -> list[dict]:
    """A Hugging Face dataset (needs the network or the datasets cache)."""
    import datasets

    try:
        dataset = datasets.load_dataset(name, split=split)
    except Exception as exc:  # datasets raises many types; all mean "cannot use this id here"
        raise DataError(
            f"{name!r} is neither a local file nor a loadable Hugging Face dataset "
            f"(split {split!r}): {type(exc).__name__}: {exc}"
        ) from exc
    return [{**row, ORIGIN: f"{name}[{split}] row {i}"} for i, row in enumerate(dataset)]


def check_field(records: Iterable[dict], field: str) -> None:
    """Every record has ``field`` with a value (an empty list counts: "no labels")."""
    for record in records:
        if field not in record:
            known = ", ".join(k for k in record if k != ORIGIN)
            raise DataError(f"{record.get(ORIGIN, '?')}: missing field {field!r} (fields: {known})")
        value = record[field]
        if value is None or (isinstance(value, str) and not value.strip()):
            raise DataError(f"{record.get(ORIGIN, '?')}: field {field!r} is empty")


def text_of(record: dict, field: str) -> str:
    value = record.get(field)
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{record.get(ORIGIN, '?')}: field {field!r} must be non-empty text, got {value!r}")
    return value


def weight_of(record: dict, field: str) -> float:
    """The record's training weight: a finite number, 0 or more (a JSON number or numeric text)."""
    value = record.get(field)
    try:
        weight = float(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        weight = None
    if weight is None or not math.isfinite(weight) or weight < 0:
        raise DataError(f"{record.get(ORIGIN, '?')}: field {field!r} must be a number, 0 or more, got {value!r}")
    return weight


def labels_of(record: dict, field: str, multi_label: bool) -> list[str]:
    """The record's labels as strings. Multi-label fields may be a list or a
    ``;``-separated string (CSV); single-label fields must hold exactly one label."""
    value = record.get(field)
    if isinstance(value, (list, tuple)):
        labels = [str(v).strip() for v in value if str(v).strip()]
    elif value is None:
        labels = []
    elif multi_label and isinstance(value, str):
        labels = [v.strip() for v in value.split(";") if v.strip()]
    else:
        labels = [str(value).strip()] if str(value).strip() else []
    if not multi_label and len(labels) != 1:
        raise DataError(f"{record.get(ORIGIN, '?')}: field {field!r} must hold one label, got {value!r}")
    return labels


def check_labels(records: Iterable[dict], field: str, multi_label: bool, allowed: Sequence[str]) -> None:
    """Every label is in ``allowed`` (the run's label set)."""
    allowed_set = set(allowed)
    for record in records:
        for label in labels_of(record, field, multi_label):
            if label not in allowed_set:
                raise DataError(
                    f"{record.get(ORIGIN, '?')}: label {label!r} is not in the label set ({', '.join(allowed)})"
                )


def exclude(records: list[dict], others: Iterable[dict], field: str) -> list[dict]:
    """``records`` whose ``field`` value does not occur in ``others`` (e.g. 50agree minus a held-out set)."""
    seen = {other.get(field) for other in others}
    return [r for r in records if r.get(field) not in seen]


def split_validation(
    records: list[dict],
    fraction: float = 0.1,
    seed: int = 0,
    group_field: str | None = None,
    stratify_field: str | None = None,
) -> tuple[list[dict], list[dict]]:
    """Carve a validation split from ``records``: whole groups (documents) when
    ``group_field`` is given, so no document is in both; otherwise stratified by
    ``stratify_field`` (a single-label field) when given. Deterministic for a seed."""
    if not 0 < fraction < 1:
        raise DataError(f"validation fraction must be between 0 and 1, got {fraction}")
    rng = random.Random(seed)
    if group_field:
        groups: dict[str, list[dict]] = defaultdict(list)
        for r in records:
            if group_field not in r:
                raise DataError(f"{r.get(ORIGIN, '?')}: missing group field {group_field!r}")
            groups[str(r[group_field])].append(r)
        names = sorted(groups)
        if len(names) < 2:
            raise DataError(f"cannot hold out whole {group_field!r} groups: only {len(names)} group(s)")
        rng.shuffle(names)
        target, held = fraction * len(records), []
        for name in names:
            if len(held) >= target or len(held) + len(groups[name]) > len(records) - 1:
                break
            held += groups[name]
        held_ids = {id(r) for r in held}
        return [r for r in records if id(r) not in held_ids], held
    buckets: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        buckets[str(r.get(stratify_field)) if stratify_field else ""].append(r)
    val_ids: set[int] = set()
    for key in sorted(buckets):
        bucket = buckets[key][:]
        rng.shuffle(bucket)
        take = max(1, round(fraction * len(bucket))) if len(bucket) > 1 else 0
        val_ids.update(id(r) for r in bucket[:take])
    val = [r for r in records if id(r) in val_ids]
    if not val:
        raise DataError(f"too few records ({len(records)}) to carve a validation split")
    return [r for r in records if id(r) not in val_ids], val


def sample_records(records: list[dict], n: int | None, seed: int) -> list[dict]:
    """A seeded random sample of ``n`` records in their original order (all of them when ``n`` is
    None or not smaller): the same sample on every run."""
    if n is None or n >= len(records):
        return records
    keep = set(random.Random(seed).sample(range(len(records)), n))
    return [r for i, r in enumerate(records) if i in keep]
