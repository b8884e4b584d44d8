"""How the summariser's shipped models are built (``scripts/build-models.sh summary-scorer``,
``summary-rewriter``, ``summary-headliner``): the data each trains on (ECTSum train aligned by
``summary_data``; Reuters-21578 headlines for the headliner), the exact training options, and where
the compact artifact is installed (``assistant/shipped_runs/summarize``).

Kept apart from the classifier recipes (``recipes.py``): the scorer is a classifier run but serves
the summariser, not a classification task, and the rewriter and the headliner are generator
adapters. All are judged by what the summariser makes with them: ``finassist eval summarize`` on
ECTSum val (all 249 calls) and on the 500 Reuters articles the headliner never sees
(``prepare_headlines``), which ``docs/results.md`` records.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import InvalidParameterError
from assistant.runs import model_bytes
from assistant.shipped import SUMMARY_DIR, SUMMARY_HEADLINER, SUMMARY_REWRITER, SUMMARY_SCORER

from .data import load_records
from .files import store_half

log = logging.getLogger(__name__)

DATA_LICENCE = "GPL-3.0 (ECTSum)"
HEADLINE_DATA_LICENCE = "research use (Reuters-21578, Distribution 1.0 README)"
#: Per data source: (its licence as the card states it, the licence of a model trained on it).
#: "other" for Reuters-21578: it is for research use, which no SPDX licence says.
_LICENCES = {"ectsum": (DATA_LICENCE, "gpl-3.0"), "reuters": (HEADLINE_DATA_LICENCE, "other")}
#: Reuters articles held out from the headliner (its validation data) and drawn for its training.
HEADLINE_HELD_OUT, HEADLINE_ARTICLES, HEADLINE_SEED = 500, 3000, 0
#: The files a shipped summary model consists of.
_FILES = ("finassist-run.json", "README.md", "adapter_config.json", "adapter_model.safetensors", "head.safetensors",
          "words.json")


def prepare(data: Path, out: Path) -> dict[str, Path]:
    """ECTSum train aligned (``summary_data``): scorer rows (key sentences and 4 others per key one
    from the same call, seed 0) and rewrite pairs (source sentence(s) -> reference line)."""
    from .summary_data import rewrite_pairs, sentence_rows

    records = load_records(data / "summarization" / "ectsum" / "train.jsonl")
    out.mkdir(parents=True, exist_ok=True)
    files = {"sentences": out / "ectsum-sentences-train.jsonl", "pairs": out / "ectsum-rewrite-train.jsonl"}
    for key, rows in (("sentences", sentence_rows(records, negatives_per_positive=4, seed=0)),
                      ("pairs", rewrite_pairs(records))):
        with open(files[key], "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    return files


def prepare_headlines(data: Path, out: Path, progress: bool = True) -> dict[str, Path]:
    """Reuters-21578 headlines: ``HEADLINE_HELD_OUT`` articles drawn with ``HEADLINE_SEED`` are held
    out whole (``reuters-headlines-heldout.jsonl``, for ``finassist eval summarize --style
    headline``); ``HEADLINE_ARTICLES`` of the rest, drawn with the same generator, become training
    pairs: what the summariser writes a headline from (the article's first sentence and the
    shipped scorer's best other one, ``SummarizePipeline.headline_source``) -> the headline as
    ``summary_data.headline_target`` gives it. The scorer must be installed first."""
    from tqdm.auto import tqdm

    from assistant import Assistant

    from .summary_data import headline_pairs

    held, chosen = headline_split(load_records(data / "summarization" / "reuters_headlines" / "train.jsonl"))
    pipeline = Assistant(audit=False).pipeline("summarize")
    k = pipeline.config["extract"]["headline_sentences"]

    def source_of(text: str) -> str:
        return pipeline.headline_source(pipeline.pick(text, k, lead=True)[0])

    out.mkdir(parents=True, exist_ok=True)
    files = {"heldout": out / "reuters-headlines-heldout.jsonl", "headlines": out / "reuters-headline-train.jsonl"}
    _write(files["heldout"], [{key: v for key, v in r.items() if not key.startswith("_")} for r in held])
    _write(files["headlines"], headline_pairs(tqdm(chosen, desc="headline sources", unit="article",
                                                   disable=not progress), source_of))
    return files


def headline_split(records: list[dict]) -> tuple[list[dict], list[dict]]:
    """(the ``HEADLINE_HELD_OUT`` held-out articles, the ``HEADLINE_ARTICLES`` training articles), both in
    file order, drawn from Reuters-21578 ``records`` with ``HEADLINE_SEED``; no article is in both."""
    import random

    rng = random.Random(HEADLINE_SEED)
    held = set(rng.sample(range(len(records)), min(HEADLINE_HELD_OUT, len(records) // 2)))
    rest = [i for i in range(len(records)) if i not in held]
    chosen = sorted(rng.sample(rest, min(HEADLINE_ARTICLES, len(rest))))
    return [records[i] for i in sorted(held)], [records[i] for i in chosen]


def _write(path: Path, rows) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


@dataclass(frozen=True)
class SummaryRecipe:
    name: str
    #: The folder of ``SUMMARY_DIR`` it installs into.
    part: str
    #: "classify" (``ClassifyTrainConfig``) or "generate" (``GenerateTrainConfig``).
    trainer: str
    #: Training options; "{sentences}"/"{pairs}"/"{headlines}" are replaced by the prepared files.
    options: dict
    #: What it trains on: "ectsum" (``prepare``) or "reuters" (``prepare_headlines``); ``_LICENCES`` key.
    data: str = "ectsum"


SUMMARY_RECIPES: dict[str, SummaryRecipe] = {r.name: r for r in (
    # A head over frozen MiniLM embeddings and word features: scores thousands of sentences a second.
    SummaryRecipe("summary-scorer", SUMMARY_SCORER, "classify", {
        "task": "summary-sentence", "train": "{sentences}", "head_only": True, "copy_encoder": False,
        "features": "embedding+words", "group_field": "document", "cv_folds": 3, "head_c": "1,3,10",
        "max_word_features": 20000, "max_length": 128, "class_weights": False,
    }),
    # LoRA on every linear layer of SmolLM2-135M-Instruct, short prompts: trains on a 2-core CPU.
    SummaryRecipe("summary-rewriter", SUMMARY_REWRITER, "generate", {
        "task": "bullet", "train": "{pairs}", "lora": True, "merge_lora": False, "lora_r": 16, "lora_alpha": 32,
        "lora_target_modules": "all-linear", "max_steps": 360, "batch_size": 8, "gradient_accumulation_steps": 1,
        "learning_rate": 4e-4, "max_input_tokens": 160, "max_target_tokens": 64, "save_steps": 40,
        "eval_steps": 120, "val_fraction": 0.03, "max_val_samples": 96, "baseline_eval": False,
        "logging_steps": 10,
    }),
    # The same form for headlines: short news sentences in, a headline of ~8 words out.
    SummaryRecipe("summary-headliner", SUMMARY_HEADLINER, "generate", {
        "task": "headline", "train": "{headlines}", "lora": True, "merge_lora": False, "lora_r": 16,
        "lora_alpha": 32, "lora_target_modules": "all-linear", "max_steps": 200, "batch_size": 8,
        "gradient_accumulation_steps": 1, "learning_rate": 4e-4, "max_input_tokens": 176, "max_target_tokens": 32,
        "save_steps": 40, "eval_steps": 100, "val_fraction": 0.03, "max_val_samples": 64, "baseline_eval": False,
        "logging_steps": 10,
    }, data="reuters"),
)}


def install(run: Path, part: str, root: Path = SUMMARY_DIR) -> Path:
    """Copy a finished run's compact files into ``root/part`` (replacing what is there): adapter
    weights stored as fp16 (half the size; the engine merges them in the model's dtype), the
    adapter's base recorded as its hub id rather than this machine's path."""
    target, staging = root / part, root / f".{part}.new"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in _FILES:
        source = run / name
        if not source.is_file():
            continue
        if name == "adapter_model.safetensors":
            store_half(source, staging / name)
        elif name == "adapter_config.json":
            config = json.loads(source.read_text(encoding="utf-8"))
            from .runs import _hub_id

            run_file = json.loads((run / "finassist-run.json").read_text(encoding="utf-8"))
            config["base_model_name_or_path"] = _hub_id(run_file["base_model"])
            (staging / name).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        else:
            shutil.copy2(source, staging / name)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def _config(recipe: SummaryRecipe, files: dict[str, Path], out: Path, progress: bool):
    values = {k: (str(files[v[1:-1]]) if isinstance(v, str) and v.startswith("{") else v)
              for k, v in recipe.options.items()}
    if recipe.trainer == "classify":
        from .config import ClassifyTrainConfig

        return ClassifyTrainConfig(out=str(out), progress=progress, **values)
    from .config import GenerateTrainConfig

    return GenerateTrainConfig(out=str(out), **values)


def build_summary_model(name: str, data: str = "../shared/data", work: str = "runs/shipped", install_run: bool = True,
                        resume: bool = True, progress: bool = True) -> Path:
    """Train (or reuse the finished run in ``work``; an interrupted rewriter run resumes from its
    last checkpoint) and install one of the summariser's shipped models. Returns the installed
    folder (the run when ``install_run`` is False)."""
    from assistant.runs import is_run

    if name not in SUMMARY_RECIPES:
        raise InvalidParameterError(f"no summary recipe {name!r}; recipes: {', '.join(SUMMARY_RECIPES)}")
    recipe = SUMMARY_RECIPES[name]
    work_dir = Path(work).expanduser()
    out = work_dir / name
    if not (is_run(out) and resume):
        source = Path(data).expanduser()
        files = prepare_headlines(source, work_dir / "data", progress) if recipe.data == "reuters" else \
            prepare(source, work_dir / "data")
        config = _config(recipe, files, out, progress)
        if recipe.trainer == "classify":
            from .train_classifier import train_classifier

            shutil.rmtree(out, ignore_errors=True)
            train_classifier(config)
        else:
            train_adapter(config, resume)
    return finish_shipped_run(out, name, recipe.part, SUMMARY_DIR, *_LICENCES[recipe.data], install_run)


def train_adapter(config, resume: bool) -> None:
    """Train a generator adapter run: from its last checkpoint when ``resume`` and there is one, else
    from the start (an unfinished run's folder is cleared first)."""
    from dataclasses import replace

    from .train_generator import train_generator

    out = Path(config.out)
    if (out / "checkpoints").is_dir() and resume:
        config = replace(config, resume=True)
    elif out.exists():
        shutil.rmtree(out)
    train_generator(config)


def finish_shipped_run(run: Path, name: str, part: str, root: Path, data_licence: str, licence: str,
                       install_run: bool = True) -> Path:
    """Write a finished shipped-model run's card (with the command that rebuilds it) and install it
    as ``root/part``; the installed folder (the run when ``install_run`` is False)."""
    from .runs import add_metrics

    add_metrics(run, {}, rebuild=f"scripts/build-models.sh {name}   # = finassist finetune shipped --task {name}",
                data_licence=data_licence, license=licence)
    if not install_run:
        return run
    installed = install(run, part, root)
    add_metrics(installed, {}, license=licence)  # the card and run file state the installed (fp16) size
    log.info("%s: %.1f MB in %s", name, model_bytes(installed) / 1e6, installed)
    return installed


def finish_from_checkpoint(run: str | Path, checkpoint: str | None = None) -> Path:
    """Make a run directory of an unfinished generator LoRA run from one of its checkpoints (default:
    the last): its adapter files and a run file whose metrics say which step it is and what the
    training log shows there, so a run stopped early (CPU time) can be evaluated and shipped
    honestly; training can still ``--resume`` later and replace it. Returns the run directory."""
    from transformers.trainer_utils import get_last_checkpoint

    from assistant.models import GENERATOR, resolve_model

    from .config import GenerateTrainConfig
    from .train_generator import _CONFIG_FILE, _write_run_file

    out = Path(run)
    checkpoints = out / "checkpoints"
    chosen = checkpoints / checkpoint if checkpoint else Path(get_last_checkpoint(str(checkpoints)) or "")
    if not (chosen / "adapter_model.safetensors").is_file():
        raise InvalidParameterError(f"no LoRA checkpoint in {chosen}")
    config = GenerateTrainConfig(**json.loads((checkpoints / _CONFIG_FILE).read_text(encoding="utf-8")))
    state = json.loads((chosen / "trainer_state.json").read_text(encoding="utf-8"))
    losses = [e["loss"] for e in state["log_history"] if "loss" in e]
    evals = [e["eval_loss"] for e in state["log_history"] if "eval_loss" in e]
    metrics = {"global_step": state["global_step"], "planned_steps": state.get("max_steps"),
               "epochs": round(float(state.get("epoch") or 0), 4), "checkpoint": chosen.name,
               "train_loss_last_logged": losses[-1] if losses else None,
               "train_loss_first_logged": losses[0] if losses else None}
    if evals:
        metrics = {"eval_loss": evals[-1], **metrics}
    for name in ("adapter_model.safetensors", "adapter_config.json"):
        shutil.copy2(chosen / name, out / name)
    resolved = resolve_model(config.model, GENERATOR)
    pairs = sum(1 for _ in open(config.train, encoding="utf-8"))
    # Training time from the files' times: the configuration is written when training starts, the
    # checkpoint's state when it is saved (a resumed run counts from its last start).
    seconds = (chosen / "trainer_state.json").stat().st_mtime - (checkpoints / _CONFIG_FILE).stat().st_mtime
    _write_run_file(config, out, resolved, metrics, pairs, 0, "", None, max(seconds, 0.0))
    return out
