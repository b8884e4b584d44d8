"""Reading fine-tuned run directories (the assistant side; ``finetune/runs.py`` writes them).

A run directory is a model in its own right: its ``finassist-run.json`` says what kind of
model it is, for which task, with which labels and decision thresholds, and how well it did.
This module reads that file only; it never imports training code, so the assistant runs
without the fine-tuning dependencies being used.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ModelLoadError, ModelNotFoundError

log = logging.getLogger(__name__)

#: The file that makes a directory a finassist run.
RUN_FILE = "finassist-run.json"
#: Run kinds: a linear head over frozen encoder embeddings, a fully fine-tuned encoder, LoRA
#: adapters on an encoder (with its classification head), an ensemble of such runs (its members in
#: subfolders, their probabilities averaged), a generator.
KINDS = ("classifier-head", "classifier", "classifier-lora", "classifier-ensemble", "generator")
CLASSIFIER_KINDS = ("classifier-head", "classifier", "classifier-lora", "classifier-ensemble")
ENSEMBLE = "classifier-ensemble"
#: Where runs are looked for when no folder is given: ``$FINASSIST_RUNS`` or ``./runs``.
RUNS_ENV = "FINASSIST_RUNS"


#: A LoRA run's adapter, or a head run's encoder adapter (peft's file name).
ADAPTER_FILE = "adapter_model.safetensors"
#: The files of a run directory that hold the model (globs): weights, their JSON state (configs,
#: text-feature vocabularies), tokenizer files and an encoder copy; not the run file, the model
#: card, the checkpoints or the reports beside them.
MODEL_FILES = ("*.safetensors", "*.json", "*.txt", "*.model", "encoder/*")


def model_bytes(path: str | os.PathLike) -> int:
    """Bytes of a run directory's ``MODEL_FILES``: the size of the model it holds. The same before
    and after the run file is written, so the figure a run file records is the one listed for it.
    An ensemble's members (subfolders with a run file) count with their run files, which loading reads."""
    folder = Path(path)
    files = {f for pattern in MODEL_FILES for f in folder.glob(pattern) if f.is_file() and f.name != RUN_FILE}
    members = [sub for sub in folder.iterdir() if (sub / RUN_FILE).is_file()] if folder.is_dir() else []
    return sum(f.stat().st_size for f in files) + sum(model_bytes(m) + (m / RUN_FILE).stat().st_size for m in members)


@dataclass
class EnsembleMember:
    """One run of an ensemble: its subfolder's name, what it is, and its share of every score."""

    name: str
    info: RunInfo
    share: float


@dataclass
class RunInfo:
    """What a run directory holds, as recorded in its run file."""

    kind: str
    task: str
    path: Path
    base_model: str
    labels: list[str] = field(default_factory=list)
    multi_label: bool = False
    #: Multi-label: label -> decision threshold on the label's probability (tuned on validation).
    thresholds: dict[str, float] = field(default_factory=dict)
    #: Multi-label: the fewest labels a prediction has; the best-scoring ones fill up when too few
    #: pass their thresholds (1 for data where every text has a label, such as contract clauses).
    min_labels: int = 0
    metrics: dict = field(default_factory=dict)
    #: The training configuration (max_length, stride, ... for the classifier kinds).
    config: dict = field(default_factory=dict)
    created: str | None = None
    #: Runs that store no copy of their base model: the fingerprint of the base weights they were
    #: trained on (``assistant.models.weights_fingerprint``); None for self-contained runs.
    base_fingerprint: str | None = None
    #: The data the run file names: each a dict with its source, role, records and licence where known.
    data: list[dict] = field(default_factory=list)
    #: The licences of that data (a model inherits its data's terms).
    licences: list[str] = field(default_factory=list)
    #: A fine-tuned model's probabilities mixed with a TF-IDF text head's: the head's share of each
    #: score (``finetune.text_mix``, ``text_head.safetensors``); 0: no text head.
    text_mix: float = 0.0
    #: An ensemble's runs (``classifier-ensemble``), whose shares sum to 1; empty for other kinds.
    members: list[EnsembleMember] = field(default_factory=list)

    @property
    def size_bytes(self) -> int:
        """Bytes of the run's model files (``model_bytes``)."""
        return model_bytes(self.path)

    @property
    def encoder_adapted(self) -> bool:
        """A head run whose encoder was LoRA-adapted for the task first (``--encoder-epochs``): its run
        file says so, or its encoder adapter is there. Its head was fitted on that encoder's embeddings."""
        return self.kind == "classifier-head" and (float(self.config.get("encoder_epochs") or 0) > 0
                                                   or (self.path / ADAPTER_FILE).is_file())

    @property
    def is_classifier(self) -> bool:
        return self.kind in CLASSIFIER_KINDS

    @property
    def headline(self) -> tuple[str, float] | None:
        """The metric a run is judged by: accuracy (single-label), macro-F1 (multi-label), exact match
        (a generator's held-out answers), else the first number among the metrics."""
        preferred = ("macro_f1", "micro_f1") if self.multi_label else ("accuracy", "macro_f1")
        held_out_preferred = preferred if self.is_classifier else ("exact_match", "f1")
        # figures on held-out data (shipped runs) before those on the validation split
        for key in ("held_out", "held_out_before_refit"):
            for set_name, figures in (self.metrics.get(key) or {}).items():
                for name in held_out_preferred if isinstance(figures, dict) else ():
                    value = figures.get(name)
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        return f"{name} on {set_name}", float(value)
        for name in preferred if self.is_classifier else ():
            value = self.metrics.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return name, float(value)
        for name, value in self.metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return name, float(value)
        return None

    def describe(self) -> dict:
        """One row for ``finassist models``: kind, task, base model, headline metric."""
        headline = self.headline
        return {
            "kind": self.kind,
            "task": self.task,
            "base_model": self.base_model,
            "labels": list(self.labels),
            "multi_label": self.multi_label,
            "metric": {"name": headline[0], "value": round(headline[1], 4)} if headline else None,
            "created": self.created,
            "licence": "; ".join(self.licences) or "unknown",
            "size_bytes": self.size_bytes,
            "text_mix": self.text_mix,
            **({"members": [{"name": m.name, "kind": m.info.kind, "share": m.share} for m in self.members]}
               if self.members else {}),
        }


def is_run(path: str | os.PathLike) -> bool:
    """True when ``path`` is a run directory (or a run file)."""
    p = Path(path).expanduser()
    return (p / RUN_FILE).is_file() or (p.name == RUN_FILE and p.is_file())


def read_run(path: str | os.PathLike) -> RunInfo:
    """Read a run directory's run file. Missing → ``ModelNotFoundError``; unreadable or
    incomplete → ``ModelLoadError``; both messages name the path."""
    p = Path(path).expanduser()
    if p.name == RUN_FILE and p.is_file():
        p = p.parent
    if not p.exists():
        raise ModelNotFoundError(f"run directory {p} does not exist")
    run_file = p / RUN_FILE
    if not run_file.is_file():
        raise ModelNotFoundError(
            f"{p} is not a fine-tuned run: it has no {RUN_FILE} (train one with `finassist finetune classify`)"
        )
    try:
        data = json.loads(run_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{run_file} cannot be read as JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"{run_file}: expected a JSON object")
    missing = [key for key in ("kind", "task", "base_model") if not data.get(key)]
    if missing:
        raise ModelLoadError(f"{run_file} is incomplete: missing {', '.join(missing)}")
    if data["kind"] not in KINDS:
        raise ModelLoadError(f"{run_file}: unknown run kind {data['kind']!r} (known: {', '.join(KINDS)})")
    labels = data.get("labels") or []
    thresholds = data.get("thresholds") or {}
    if data["kind"] != "generator":
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
            raise ModelLoadError(f"{run_file}: a classifier run needs a non-empty list of label names")
        if not isinstance(thresholds, dict) or any(not isinstance(v, (int, float)) for v in thresholds.values()):
            raise ModelLoadError(f"{run_file}: thresholds must map labels to numbers")
    min_labels = data.get("min_labels") or 0
    if isinstance(min_labels, bool) or not isinstance(min_labels, int) or min_labels < 0:
        raise ModelLoadError(f"{run_file}: min_labels must be a whole number, 0 or more, got {min_labels!r}")
    text_mix = data.get("text_mix") or 0.0
    if isinstance(text_mix, bool) or not isinstance(text_mix, (int, float)) or not 0 <= text_mix <= 1:
        raise ModelLoadError(f"{run_file}: text_mix must be a number from 0 to 1, got {text_mix!r}")
    members = _read_members(p, run_file, data) if data["kind"] == ENSEMBLE else []
    sources = [dict(d) for d in data.get("data") or [] if isinstance(d, dict)]
    return RunInfo(
        kind=data["kind"],
        task=str(data["task"]),
        path=p,
        base_model=str(data["base_model"]),
        labels=list(labels),
        multi_label=bool(data.get("multi_label", False)),
        thresholds={str(k): float(v) for k, v in thresholds.items()},
        min_labels=min_labels,
        metrics=dict(data.get("metrics") or {}),
        config=dict(data.get("config") or {}),
        created=data.get("created"),
        base_fingerprint=data.get("base_fingerprint") or None,
        data=sources,
        licences=sorted({str(d["licence"]) for d in sources if d.get("licence")}),
        text_mix=float(text_mix),
        members=members,
    )


def member_problem(info: RunInfo, task: str, labels: list | None, multi_label: bool) -> str | None:
    """Why ``info`` cannot be a member of an ensemble serving ``task`` with ``labels`` (a phrase to follow
    the member's path), or None: the one rule the ensemble build (``finetune/ensemble.py``) and the loader
    both apply."""
    if info.kind not in CLASSIFIER_KINDS or info.kind == ENSEMBLE:
        return f"is a {info.kind} run: an ensemble's members are classifier runs"
    if (info.task, info.labels, info.multi_label) != (task, labels, multi_label):
        return (f"serves {info.task!r} with labels {info.labels}{' (multi-label)' if info.multi_label else ''}: "
                f"the ensemble's members must all serve {task!r} with the labels {labels}")
    return None


def _read_members(folder: Path, run_file: Path, data: dict) -> list[EnsembleMember]:
    """An ensemble's members, each a run in a subfolder serving the same task with the same labels,
    their shares summing to 1; anything else is a ``ModelLoadError`` naming the file."""
    entries = data.get("members")
    if not isinstance(entries, list) or len(entries) < 2:
        raise ModelLoadError(f"{run_file}: an ensemble needs a list of at least 2 members")
    members = []
    for entry in entries:
        name, share = (entry.get("name"), entry.get("share")) if isinstance(entry, dict) else (None, None)
        if not isinstance(name, str) or not name or name != Path(name).name or name.startswith("."):
            raise ModelLoadError(f"{run_file}: a member is named by its subfolder, got {name!r}")
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
            raise ModelLoadError(f"{run_file}: member {name!r} needs a share above 0 and at most 1, got {share!r}")
        info = read_run(folder / name)
        problem = member_problem(info, str(data["task"]), data.get("labels"), bool(data.get("multi_label", False)))
        if problem:
            raise ModelLoadError(f"{folder / name} {problem}")
        members.append(EnsembleMember(name, info, float(share)))
    if len({m.name for m in members}) < len(members):
        raise ModelLoadError(f"{run_file}: two members share a subfolder")
    if abs(sum(m.share for m in members) - 1) > 1e-6:
        raise ModelLoadError(f"{run_file}: the members' shares sum to {sum(m.share for m in members):g}, not 1")
    return members


def runs_root() -> Path:
    """``$FINASSIST_RUNS`` or ``./runs``."""
    return Path(os.environ.get(RUNS_ENV) or "runs").expanduser()


def discover_runs(root: str | os.PathLike | None = None) -> list[RunInfo]:
    """Every run directory under ``root`` (default ``runs_root()``), sorted by path. A corrupt
    run is skipped with a warning: listing models must not fail because of one bad folder."""
    base = Path(root).expanduser() if root is not None else runs_root()
    if not base.is_dir():
        return []
    found = []
    for run_file in sorted(base.rglob(RUN_FILE)):
        if "checkpoints" in run_file.relative_to(base).parts:
            continue
        if (run_file.parent.parent / RUN_FILE).is_file():  # an ensemble's member: listed as part of it
            continue
        try:
            found.append(read_run(run_file.parent))
        except (ModelNotFoundError, ModelLoadError) as exc:
            log.warning("skipping run %s: %s", run_file.parent, exc)
    return found
