"""How the shipped classifiers are built: the data each one trains on, the held-out data it is
reported on, and the exact training options (``scripts/build-models.sh`` runs them all).

Each recipe is plain data: a function that writes its training and held-out files from the
public datasets in ``../shared/data`` (seeded, so a rebuild carves the same splits), the
``ClassifyTrainConfig`` options, and the held-out sets the run is evaluated on. ``build`` trains
it, evaluates it, and copies the compact artifact into the package (``assistant/shipped_runs``).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from assistant.errors import InvalidParameterError
from assistant.runs import model_bytes
from assistant.shipped import SHIPPED_DIR, SHIPPED_FILES

from .data import ORIGIN, exclude, load_records, split_validation

log = logging.getLogger(__name__)

#: Twitter financial news labels in the sentiment label set of Financial PhraseBank.
TWEET_LABELS = {"bearish": "negative", "bullish": "positive", "neutral": "neutral"}
#: Financial PhraseBank subsets by annotator agreement; the subsets are nested.
FPB_AGREEMENT = (("50agree", 0.5), ("66agree", 0.66), ("75agree", 0.75), ("allagree", 1.0))


def _write(rows: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps({k: v for k, v in r.items() if k != ORIGIN}, ensure_ascii=False) + "\n" for r in rows)
    return path


def _default(name: str):
    """A ``ClassifyTrainConfig`` field's default (what a recipe that does not set it trains with)."""
    from dataclasses import fields

    from .config import ClassifyTrainConfig

    return next(f.default for f in fields(ClassifyTrainConfig) if f.name == name)


def prepare_sentiment(data: Path, out: Path) -> dict[str, Path]:
    """Financial PhraseBank (news sentences) and Twitter financial news (tweets) in one
    positive/negative/neutral file, with two held-out sets the model never trains on:

    * half of the all-agree sentences (stratified, seed 7: the split ``docs/results.md`` has used);
    * 15% of the tweets (stratified, seed 7).

    Every FPB sentence is weighted by the highest share of annotators that agreed on its label
    (1.0 all-agree ... 0.5 half), so ambiguous sentences count less; tweets weigh 1.

    ``val`` is the validation split the LoRA run carves from ``train`` by default (10%, stratified,
    seed 0), written out for what comes after it: another model trained without it (``--exclude``), an
    ensemble's shares chosen on it (``finassist finetune ensemble``; docs/results.md).
    """
    fpb = data / "sentiment" / "financial_phrasebank"
    level: dict[str, float] = {}
    for name, share in FPB_AGREEMENT:
        level.update({r["sentence"]: share for r in load_records(fpb / f"{name}.jsonl")})
    allagree = load_records(fpb / "allagree.jsonl")
    _, fpb_held = split_validation(allagree, 0.5, seed=7, stratify_field="label")
    sentences = exclude(load_records(fpb / "50agree.jsonl"), fpb_held, "sentence")
    tweets = load_records(data / "sentiment" / "twitter_financial_news" / "train.jsonl")
    for t in tweets:
        t["label"] = TWEET_LABELS[t["label"]]
    tweets_train, tweets_held = split_validation(tweets, 0.15, seed=7, stratify_field="label")
    rows = [{"text": r["sentence"], "label": r["label"], "weight": level[r["sentence"]], "source": "fpb"}
            for r in sentences]
    rows += [{"text": r["text"], "label": r["label"], "weight": 1.0, "source": "tweets"} for r in tweets_train]
    _, val = split_validation(rows, _default("val_fraction"), seed=_default("seed"), stratify_field="label")
    return {
        "train": _write(rows, out / "sentiment-train.jsonl"),
        "val": _write(val, out / "sentiment-val.jsonl"),
        "fpb-allagree-heldout": _write([{"text": r["sentence"], "label": r["label"]} for r in fpb_held],
                                       out / "fpb-allagree-heldout.jsonl"),
        "tweets-heldout": _write([{"text": r["text"], "label": r["label"]} for r in tweets_held],
                                 out / "tweets-heldout.jsonl"),
    }


def prepare_unfair_tos(data: Path, out: Path) -> dict[str, Path]:
    """CLAUDETTE: 9 of the 40 Terms of Service held out whole (seed 1) for reporting; the shipped
    model is then refitted on all 40 (its settings chosen by cross-validation over documents)."""
    rows = load_records(data / "legal" / "claudette_tos" / "train.jsonl")
    train, held = split_validation(rows, 0.2, seed=1, group_field="document")
    return {
        "train": _write(train, out / "claudette-train-docs.jsonl"),
        "all": _write(rows, out / "claudette-all.jsonl"),
        "heldout-docs": _write(held, out / "claudette-heldout-docs.jsonl"),
    }


def prepare_contract_clause(data: Path, out: Path) -> dict[str, Path]:
    """CUAD as published: train (7018 clauses) and val (626 clauses of other contracts)."""
    cuad = data / "legal" / "cuad"
    return {"train": cuad / "train.jsonl", "val": cuad / "val.jsonl"}


@dataclass(frozen=True)
class HeldOut:
    """A data set a recipe's run is reported on."""

    name: str
    #: Key of the file in the prepared data.
    file: str
    text_field: str = "text"
    label_field: str = "label"


@dataclass(frozen=True)
class Recipe:
    task: str
    prepare: Callable[[Path, Path], dict[str, Path]]
    #: ``ClassifyTrainConfig`` options; values "{name}" are replaced by the prepared file of that name.
    options: dict
    held_out: tuple[HeldOut, ...] = ()
    #: Options of the shipped model where it is refitted on more data than the reported run
    #: (merged over ``options``); empty: the reported run is the shipped one.
    refit: dict = field(default_factory=dict)
    #: The licence(s) of the data, for prepared files whose path does not name their dataset.
    licence: str | None = None
    #: The model card's licence id where the data's licences do not give one (the most restrictive).
    card_licence: str | None = None


RECIPES: dict[str, Recipe] = {r.task: r for r in (
    Recipe("sentiment", prepare_sentiment, {
        "train": "{train}", "weight_field": "weight", "lora": True, "lora_r": 32, "lora_alpha": 64,
        # 6 epochs of schedule: the checkpoint chosen on validation (epoch 4) beats the 4-epoch run's last
        "learning_rate": 5e-4, "epochs": 6, "max_length": 96, "stride": 32, "early_stopping_patience": 2,
        "group_by_length": True,
        # a TF-IDF head mixed into the adapter's scores; its vocabularies capped to fit the 20 MB budget
        "text_mix": "words+chars", "head_c": "3,10", "max_word_features": 20000, "max_char_features": 30000,
    }, (HeldOut("fpb-allagree-heldout", "fpb-allagree-heldout"), HeldOut("tweets-heldout", "tweets-heldout")),
        licence="CC BY-NC-SA 3.0 (non-commercial: Financial PhraseBank) and MIT (Twitter financial news)",
        card_licence="cc-by-nc-sa-3.0"),
    Recipe("unfair-tos", prepare_unfair_tos, {
        "train": "{train}", "label_field": "unfair_categories", "group_field": "document", "multi_label": True,
        "head_only": True, "features": "embedding+words+chars", "cv_folds": 5, "copy_encoder": False,
        "head_c": "3,10",
        # the encoder LoRA-adapted first: its embeddings alone rank the rare unfair terms far better
        "encoder_epochs": 3, "lora_r": 16, "lora_alpha": 32, "learning_rate": 5e-4, "max_length": 128,
        "warmup_ratio": 0.06,
    }, (HeldOut("claudette-heldout-docs", "heldout-docs", label_field="unfair_categories"),),
        refit={"train": "{all}"}),
    Recipe("contract-clause", prepare_contract_clause, {
        "train": "{train}", "label_field": "labels", "group_field": "contract", "multi_label": True,
        "head_only": True, "features": "embedding+words+chars", "cv_folds": 5, "copy_encoder": False,
        "head_c": "3,10,30",
        "max_word_features": 20000, "max_char_features": 50000,
    }, (HeldOut("cuad-val", "val", label_field="labels"),)),
)}


def recipe(task: str) -> Recipe:
    if task not in RECIPES:
        raise InvalidParameterError(f"no recipe for {task!r}; recipes: {', '.join(RECIPES)}")
    return RECIPES[task]


def install(run: Path, task: str, target_root: Path = SHIPPED_DIR) -> Path:
    """Copy the files of a compact run that the package ships into ``target_root/task``
    (replacing what is there), leaving training leftovers (checkpoints, tokenizer copies) behind."""
    from assistant.runs import read_run

    info = read_run(run)
    if info.task != task:
        raise InvalidParameterError(f"{run} serves {info.task!r}, not {task!r}")
    if info.base_fingerprint is None:
        raise InvalidParameterError(f"{run} is self-contained (a copy of its encoder): ship a compact run "
                                    "(--lora, or --head-only --no-copy-encoder)")
    target = target_root / task
    staging = target_root / f".{task}.new"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in SHIPPED_FILES:
        for source in sorted(run.glob(name)):
            if source.is_file():
                shutil.copy2(source, staging / source.name)
    # The card and the run file state the size of what ships: the run folder also holds the tokenizer's
    # files, which stay behind (the base model's tokenizer is the one a compact run uses).
    from .runs import add_metrics

    add_metrics(staging, {}, license=RECIPES[task].card_licence if task in RECIPES else None)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


@dataclass
class BuildReport:
    """What ``build_shipped`` did: the run it installed and its figures on held-out data."""

    task: str
    run: Path
    installed: Path | None
    held_out: dict[str, dict]
    #: The size of the model it ships (``assistant.runs.model_bytes``).
    size_bytes: int

    def to_markdown(self) -> str:
        lines = [f"# shipped {self.task} classifier", "",
                 f"- run: `{self.run}`", f"- installed: `{self.installed or '(not installed)'}`",
                 f"- size: {self.size_bytes / 1e6:.2f} MB", "",
                 "| held-out set | records | accuracy | micro-F1 | macro-F1 |", "|---|---:|---:|---:|---:|"]
        for name, m in self.held_out.items():
            lines.append(f"| {name} | {m['records']} | {m['accuracy']:.4f} | {m['micro_f1']:.4f} | {m['macro_f1']:.4f} |")
        return "\n".join(lines)


def training_config(recipe_: Recipe, options: dict, files: dict[str, Path], out: Path, progress: bool):
    """The ``ClassifyTrainConfig`` of a recipe's ``options``, its "{name}" values replaced by the
    prepared files of those names."""
    from .config import ClassifyTrainConfig

    values = {k: (str(files[v[1:-1]]) if isinstance(v, str) and v.startswith("{") and v.endswith("}") else v)
              for k, v in options.items()}
    return ClassifyTrainConfig(task=recipe_.task, out=str(out), progress=progress, **values)


def _train(config, resume: bool) -> Path:
    """Train, or reuse a finished run in the same folder (a rebuild after an interruption resumes
    from the last checkpoint of a full or LoRA run)."""
    from assistant.runs import is_run

    from .classifier_run import CHECKPOINTS
    from .train_classifier import train_classifier

    out = Path(config.out)
    if is_run(out) and resume:
        log.info("%s: reusing the finished run in %s", config.task, out)
        return out
    if (out / CHECKPOINTS).is_dir() and resume and not config.head_only:
        from dataclasses import replace

        config = replace(config, resume=True)
    elif out.exists():
        shutil.rmtree(out)
    return train_classifier(config)


def build_shipped(task: str, data: str = "../shared/data", work: str = "runs/shipped", install_run: bool = True,
                  resume: bool = True, progress: bool = True) -> BuildReport:
    """Rebuild the shipped classifier of ``task`` from its recipe (``finetune/recipes.py``).

    data: the folder of the public datasets (``../shared/data``).
    work: where the prepared data, the runs and their held-out reports go.
    install_run: copy the compact run into the package (``assistant/shipped_runs/<task>``).
    resume: reuse finished runs in ``work`` and continue interrupted ones; --no-resume starts over.
    """
    from .evaluation.classifier_runner import evaluate_classifier
    from .runs import add_metrics
    from .answer_recipe import NAME as ANSWERER
    from .answer_recipe import build_answerer
    from .summary_recipes import SUMMARY_RECIPES, build_summary_model

    if task in SUMMARY_RECIPES:  # the summariser's scorer and rewriter (finetune/summary_recipes.py)
        installed = build_summary_model(task, data=data, work=work, install_run=install_run, resume=resume,
                                        progress=progress)
        return BuildReport(task, installed, installed if install_run else None, {}, model_bytes(installed))
    if task == ANSWERER:  # the grounded answerer of the ask task (finetune/answer_recipe.py)
        installed = build_answerer(data=data, work=work, install_run=install_run, resume=resume)
        return BuildReport(task, installed, installed if install_run else None, {}, model_bytes(installed))
    recipe_ = recipe(task)
    work_dir = Path(work).expanduser()
    files = recipe_.prepare(Path(data).expanduser(), work_dir / "data")
    run = _train(training_config(recipe_, recipe_.options, files, work_dir / task, progress), resume)
    held_out = {}
    for h in recipe_.held_out:
        report = evaluate_classifier(str(run), str(files[h.file]), text_field=h.text_field, label_field=h.label_field,
                                     out=str(run / "heldout"), name=h.name, progress=progress)
        held_out[h.name] = {"records": report.n, "accuracy": report.accuracy, "micro_f1": report.micro_f1,
                            "macro_f1": report.macro_f1, "data": str(files[h.file])}
    shipped = run
    if recipe_.refit:
        # The held-out figures above belong to this recipe trained without the held-out data; the
        # shipped model is the same recipe refitted on all of it.
        refit = training_config(recipe_, {**recipe_.options, **recipe_.refit}, files, work_dir / f"{task}-refit",
                                progress)
        shipped = _train(refit, resume)
    add_metrics(shipped, {"held_out": held_out} if not recipe_.refit else
                {"held_out_before_refit": {**held_out, "run": str(run)}},
                rebuild=f"scripts/build-models.sh {task}   # = finassist finetune shipped --task {task}",
                data_licence=recipe_.licence, license=recipe_.card_licence)
    installed = install(shipped, task) if install_run else None
    return BuildReport(task, shipped, installed, held_out, model_bytes(installed or shipped))
