"""Writing run directories: the run file the assistant reads, and a model card for people.

Shared by every kind of fine-tuning (classifier head, full classifier, generator). The run
file (``finassist-run.json``) is written last, atomically: a directory that has one is a
finished model (``assistant/runs.py`` reads it); a run killed half-way has none.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path

from assistant.classifiers import TEXT_FEATURES
from assistant.machine import machine_info
from assistant.runs import KINDS, RUN_FILE, model_bytes

from .files import atomic_write_text

__all__ = ["KINDS", "RUN_FILE", "UNKNOWN_LICENCE", "add_metrics", "config_command", "licence_of", "write_run"]

#: Format version of the run file.
RUN_FORMAT = 1
UNKNOWN_LICENCE = "unknown (check the data's source)"

#: Licences of the datasets in ../shared/data, by a fragment of their path or hub id
#: (as stated by each source; see ../shared/data/README.md).
_KNOWN_LICENCES: tuple[tuple[str, str], ...] = (
    ("financial_phrasebank", "CC BY-NC-SA 3.0 (non-commercial)"),
    ("claudette", "CC BY 4.0"),
    ("cuad", "CC BY 4.0"),
    ("ectsum", "GPL-3.0"),
    ("twitter_financial_news", "MIT"),
    ("tatqa", "CC BY 4.0"),
    ("tat_qa", "CC BY 4.0"),
    ("reuters", "research use (Reuters-21578 README)"),
    ("fiqa", "research use"),
)


#: Hugging Face model-card licence ids of those licences (the card's metadata wants an id).
_LICENCE_IDS = {"CC BY-NC-SA 3.0 (non-commercial)": "cc-by-nc-sa-3.0", "CC BY 4.0": "cc-by-4.0",
                "GPL-3.0": "gpl-3.0", "MIT": "mit"}


def _card_licence(run: dict) -> str:
    """The data's licence as a card id when all the data shares one known licence, else "unknown"."""
    ids = {_LICENCE_IDS.get(d.get("licence", "")) for d in run.get("data", [])}
    return ids.pop() if len(ids) == 1 and None not in ids else "unknown"


def licence_of(source: str | os.PathLike) -> str:
    """The licence of a known dataset, found by a fragment of its path or id, else ``UNKNOWN_LICENCE``."""
    key = str(source).lower().replace("-", "_")
    for fragment, licence in _KNOWN_LICENCES:
        if fragment in key:
            return licence
    return UNKNOWN_LICENCE


def config_command(program: str, config) -> str:
    """The command line that reproduces ``config`` (a dataclass): every field that differs from
    its default as ``--field-name value``; booleans as ``--flag`` / ``--no-flag``."""
    args = shlex.split(program)
    for f in fields(config):
        value = getattr(config, f.name)
        default = f.default if f.default is not MISSING else None
        if f.default is not MISSING and value == default:
            continue
        option = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            args.append(option if value else "--no-" + f.name.replace("_", "-"))
        elif value is not None:
            args += [option, str(value)]
    return shlex.join(args)


def _hub_id(base_model: str) -> str:
    """A preset's Hugging Face id (what model-card metadata expects), else the name as given."""
    from assistant.models import PRESETS

    preset = PRESETS.get(str(base_model).lower())
    return preset.hub_id if preset else str(base_model)


def _flat_metrics(metrics: Mapping, prefix: str = "") -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = []
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rows += _flat_metrics(value, name + ".")
        elif isinstance(value, (int, float, str)) and not isinstance(value, bool):
            rows.append((name, value))
    return rows


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _yaml_list(items: Sequence[str]) -> str:
    return "\n".join(f"  - {json.dumps(item, ensure_ascii=False)}" for item in items) or "  []"


_USE = {
    "classifier": "Classifies {task} texts into the labels below; loaded by the assistant with "
                  "`Assistant(classifiers={{\"{task}\": \"<this folder>\"}})` or "
                  "`finassist classify --classifier {task}=<this folder>`.",
    "classifier-lora": "Classifies {task} texts with LoRA adapters (peft) on the base encoder and a "
                       "classification head; the folder holds only those, the base model loads by name: "
                       "`--classifier {task}=<this folder>`.",
    "classifier-head": "Classifies {task} texts with a linear head over the {encoder} encoder's sentence "
                       "embeddings{words}; loaded like any run: `--classifier {task}=<this folder>`.",
    "classifier-ensemble": "Classifies {task} texts by averaging the probabilities of the runs in its "
                           "subfolders, each loaded as it would be alone; loaded like any run: "
                           "`--classifier {task}=<this folder>`.",
    "generator": "Generates text for the {task} task; see the data below for what it was adapted to.",
}


def _model_card(run: dict, license: str | None) -> str:
    datasets = [str(d.get("source")) for d in run["data"]]
    base_id = _hub_id(run["base_model"])
    tags = ["finassist", run["kind"], run["task"]]
    if run["kind"] != "generator":
        tags.append("text-classification")
    front = "\n".join([
        "---",
        f"base_model: {json.dumps(base_id)}",
        "library_name: transformers",
        f"license: {json.dumps(license or _card_licence(run))}",
        "tags:",
        _yaml_list(tags),
        "datasets:",
        _yaml_list(datasets),
        "---",
    ])
    lines = [front, "", f"# {run['task']} ({run['kind']}) on {run['base_model']}", ""]
    # Head runs may also read TF-IDF text features (finetune classify --features embedding+words[+chars]).
    names = str(run.get("config", {}).get("features") or "").split("+")[1:] if run["kind"] == "classifier-head" else []
    words = "".join(f" and {TEXT_FEATURES[n].description}" for n in names if n in TEXT_FEATURES)
    # A head run may adapt its encoder first (--encoder-epochs): the adapter is then in the folder.
    adapted = float(run.get("config", {}).get("encoder_epochs") or 0) > 0
    encoder = "LoRA-adapted (`adapter_model.safetensors`, merged into the base model when loaded)" if adapted \
        else "frozen"
    lines += [_USE.get(run["kind"], "").format(task=run["task"], words=words, encoder=encoder), ""]
    if run.get("text_mix"):
        mixed = str(run.get("config", {}).get("text_mix") or "").split("+")
        described = " and ".join(TEXT_FEATURES[n].description for n in mixed if n in TEXT_FEATURES)
        lines += [f"Each score is mixed with a logistic regression over {described or 'TF-IDF text features'} "
                  f"fitted on the same training texts: {run['text_mix']:.0%} of it (the weight chosen on the "
                  "validation split, `text_head.safetensors` and the vocabularies beside it).", ""]
    if run.get("members"):
        lines += ["## Members", "", "| subfolder | share of each score |", "|---|---:|"]
        lines += [f"| `{m['name']}` | {m['share']:.2f} |" for m in run["members"]]
        lines += ["", "The shares were chosen on the validation data below, which none of the members trained on; "
                  "each subfolder has its own card.", ""]
    lines += ["## Base model", "", f"`{run['base_model']}`" + (f" ({base_id})" if base_id != run["base_model"] else ""), ""]
    if run.get("labels"):
        kind = "multi-label: every label over its threshold" if run["multi_label"] else "single-label: the top label"
        floor = run.get("min_labels") or 0
        if run["multi_label"] and floor:
            kind = ("multi-label: the best label" if floor == 1 else f"multi-label: the best {floor} labels") + \
                ", and every other label over its threshold"
        lines += [f"## Labels ({kind})", ""]
        thresholds = run.get("thresholds") or {}
        shared = len(set(thresholds.values())) == 1 and len(run["labels"]) > 1
        if shared:
            lines += [f"One threshold for every label: {next(iter(thresholds.values())):.2f}.", ""]
        for label in run["labels"]:
            t = None if shared else thresholds.get(label)
            lines.append(f"- {label}" + (f" (threshold {t:.2f})" if t is not None else ""))
        lines.append("")
    lines += ["## Data", "", "| source | role | records | licence |", "|---|---|---:|---|"]
    for d in run["data"]:
        lines.append(f"| {d.get('source')} | {d.get('role', '')} | {d.get('records', '')} | {d.get('licence')} |")
    lines += ["", ("The model inherits the terms of its data: a non-commercial licence on the data means the "
              "model is for non-commercial use too."), ""]
    lines += ["## Command", "", "```bash", run["command"], "```", ""]
    if run.get("rebuild"):
        lines += ["Rebuilt, with its data preparation and held-out evaluation, by:", "", "```bash", run["rebuild"],
                  "```", ""]
    metrics = _flat_metrics(run.get("metrics") or {})
    if metrics:
        lines += ["## Metrics", "", "| metric | value |", "|---|---:|"]
        lines += [f"| {name} | {_fmt(value)} |" for name, value in metrics]
        lines.append("")
    machine = run.get("machine") or {}
    hardware = machine.get("cuda_device") or machine.get("cpu") or machine.get("platform") or "?"
    cores = machine.get("cpu_cores_available")
    lines += [
        "## Training",
        "",
        f"- date: {run['created']}",
        f"- hardware: {hardware}" + (f" ({cores} cores available)" if cores and not machine.get("cuda_device") else ""),
        f"- software: torch {machine.get('torch', '?')}, transformers {machine.get('transformers', '?')}",
    ]
    if run.get("seconds") is not None:
        lines.append(f"- training time: {run['seconds']:.0f} s")
    if run.get("size_bytes"):
        lines.append(f"- size: {run['size_bytes'] / 1e6:.2f} MB (the files of this folder that hold the model)")
    lines += [
        "",
        "## Intended use and limitations",
        "",
        "- A research and productivity aid for financial and legal text; not financial, investment or legal advice.",
        ("- Figures above are on the validation data named here; check the model on your own data before relying "
        "on it, especially text unlike its training data (other domains, languages or periods)."),
        ("- Errors are not evenly spread: rare labels are the least reliable (see the per-label results in "
        "`eval/`, when present)."),
        "",
    ]
    return "\n".join(lines)


def write_run(
    out_dir: str | os.PathLike,
    *,
    kind: str,
    task: str,
    base_model: str,
    config: Mapping | object,
    data: Sequence[Mapping],
    metrics: Mapping,
    command: str,
    labels: Sequence[str] | None = None,
    multi_label: bool = False,
    thresholds: Mapping[str, float] | None = None,
    min_labels: int = 0,
    seconds: float | None = None,
    license: str | None = None,
    base_fingerprint: str | None = None,
    text_mix: float = 0.0,
    members: Sequence[Mapping] | None = None,
) -> Path:
    """Write the model card (``README.md``) and then the run file into ``out_dir``; returns the
    run file's path.

    ``data``: one entry per dataset used, ``{"source", "records", "role"?, "licence"?}``; a
    missing licence is looked up by the source's path (``licence_of``). ``config`` is a dict or a
    dataclass (stored as a dict). ``license``: the model's own licence for the card's metadata
    (default ``unknown``: the data's terms decide). ``min_labels``: multi-label, the fewest labels
    a prediction has (its best-scoring ones are always among them).
    ``base_fingerprint``: for runs that store no copy of their base model (LoRA adapters, compact
    heads), the fingerprint of the base weights they were trained on (``assistant.models.weights_fingerprint``).
    ``text_mix``: the share of each score a TF-IDF text head gives (``finetune.text_mix``; 0: none).
    ``members``: an ensemble's runs, ``{"name": subfolder, "share": of each score}`` (``finetune.ensemble``).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown run kind {kind!r} (known: {', '.join(KINDS)})")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if is_dataclass(config) and not isinstance(config, type):
        config = {f.name: getattr(config, f.name) for f in fields(config)}
    entries = []
    for d in data:
        entry = dict(d)
        entry.setdefault("licence", licence_of(entry.get("source", "")))
        entries.append(entry)
    from assistant.version import __version__

    run = {
        "format": RUN_FORMAT,
        "kind": kind,
        "task": task,
        "base_model": str(base_model),
        "base_fingerprint": base_fingerprint,
        "labels": list(labels) if labels is not None else None,
        "multi_label": bool(multi_label),
        "thresholds": {k: float(v) for k, v in thresholds.items()} if thresholds else None,
        "min_labels": int(min_labels),
        **({"text_mix": float(text_mix)} if text_mix else {}),
        **({"members": [dict(m) for m in members]} if members else {}),
        "metrics": dict(metrics),
        "config": dict(config),
        "data": entries,
        "command": command,
        "seconds": round(seconds, 1) if seconds is not None else None,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "finassist_version": __version__,
        "machine": machine_info(),
    }
    run["size_bytes"] = model_bytes(out)
    atomic_write_text(out / "README.md", _model_card(run, license))
    run_file = out / RUN_FILE
    atomic_write_text(run_file, json.dumps(run, indent=2, ensure_ascii=False, default=str) + "\n")
    return run_file


def add_metrics(run_dir: str | os.PathLike, metrics: Mapping, license: str | None = None,
                rebuild: str | None = None, data_licence: str | None = None) -> Path:
    """Merge ``metrics`` into a finished run's figures (e.g. its results on held-out data, measured
    after training) and rewrite its model card and run file the same way ``write_run`` does.
    ``rebuild``: the command that rebuilds the run with its data (shown in the card).
    ``data_licence``: the licence of data files the run's paths do not reveal (a file prepared
    from several datasets), set where the licence is unknown."""
    out = Path(run_dir)
    run_file = out / RUN_FILE
    run = json.loads(run_file.read_text(encoding="utf-8"))
    run["metrics"] = {**(run.get("metrics") or {}), **dict(metrics)}
    run["size_bytes"] = model_bytes(out)
    if rebuild:
        run["rebuild"] = rebuild
    if data_licence:
        for entry in run.get("data") or []:
            if entry.get("licence") in (None, UNKNOWN_LICENCE):
                entry["licence"] = data_licence
    atomic_write_text(out / "README.md", _model_card(run, license))
    atomic_write_text(run_file, json.dumps(run, indent=2, ensure_ascii=False, default=str) + "\n")
    return run_file
