"""The training configurations: ``ClassifyTrainConfig`` (``finassist finetune classify``) and
``GenerateTrainConfig`` (``finassist finetune generate``).

Each field is a command-line option: ``option(default, help)`` records the help text that
``finetune/cli.py`` shows, so a setting is defined once, here. Settings that cannot work are
refused when the configuration is built, before any data or model is read.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from assistant.errors import InvalidParameterError

#: Inverse-regularisation strengths tried for the head-only logistic regression (picked on
#: validation). Embeddings and TF-IDF rows are L2-normalised, so useful values are large.
HEAD_C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
#: Head-only inputs: the sentence embedding, plus TF-IDF text features (``assistant.classifiers.TEXT_FEATURES``).
HEAD_FEATURES = ("embedding", "embedding+words", "embedding+words+chars")
#: The TF-IDF text features a fine-tuned model's probabilities may be mixed with (``text_mix``).
TEXT_MIX_FEATURES = ("words", "words+chars")
#: Truncation sides for long generator inputs: "end" drops the end (keeps the beginning), "start" the beginning.
TRUNCATE_SIDES = ("end", "start")
_TASK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def option(default, help: str, **extra):
    """A config field: its default, and the help text the CLI shows for it. ``required=True``
    makes the CLI option required although the dataclass has a placeholder default."""
    return field(default=default, metadata={"help": help, **extra})


def parse_c_grid(spec: str) -> tuple[float, ...]:
    """The regularisation strengths of a ``head_c`` setting ("0.3,1,3")."""
    try:
        values = tuple(float(x) for x in str(spec).split(",") if x.strip())
    except ValueError:
        values = ()
    if not values or any(not (v > 0 and math.isfinite(v)) for v in values):
        raise InvalidParameterError(f"head_c must be comma-separated positive numbers, got {spec!r}")
    return values


@dataclass
class ClassifyTrainConfig:
    """Everything a classifier fine-tuning run needs; each field is a CLI option."""

    task: str = field(metadata={"help": "name of the classification task this model serves (sentiment, unfair-tos, ...)"})
    train: str = field(metadata={"help": "training data: a .jsonl/.json/.csv file or a Hugging Face dataset id"})
    out: str = field(metadata={"help": "run directory to write (the fine-tuned model, reports, model card)"})
    model: str = option("minilm-l6", "base encoder: preset, Hugging Face id or local path")
    text_field: str = option("text", "field holding the text")
    label_field: str = option("label", "field holding the label (a list, or ';'-separated, for multi-label)")
    weight_field: str | None = option(
        None, "field holding each training example's loss weight, a number 0 or more (e.g. annotator "
              "agreement, so ambiguous examples count less); default: every example weighs 1")
    val: str | None = option(None, "validation data (default: carved from the training data)")
    val_fraction: float = option(0.1, "share of the training data held out for validation when --val is not given")
    group_field: str | None = option(
        None, "hold out whole groups for validation (e.g. 'document'), so no document is in both splits")
    exclude: str | None = option(
        None, "a data file whose texts are removed from the training data (e.g. a held-out test set)")
    multi_label: bool = option(False, "each text has zero or more labels (default: exactly one)")
    head_only: bool = option(False, "freeze the encoder and train only a linear head on its embeddings (fast on CPU)")
    lora: bool = option(
        False, "train LoRA adapters on the encoder's linear layers and the classification head (peft); the run "
               "stores only those (a few MB) and loads the base model by name, checked by its fingerprint")
    lora_r: int = option(16, "LoRA rank")
    lora_alpha: int = option(32, "LoRA scaling (alpha)")
    lora_dropout: float = option(0.1, "dropout on the LoRA path")
    group_by_length: bool = option(
        False, "batch texts of similar length together (less padding: faster on CPU; the order stays seeded)")
    copy_encoder: bool = option(
        True, "head-only: copy the encoder into the run (self-contained); --no-copy-encoder stores a reference "
              "to the base model and its fingerprint instead (compact, for models shipped with the package)")
    features: str = option(
        "embedding", "head-only inputs: 'embedding' (sentence embeddings), 'embedding+words' (plus TF-IDF words "
                     "and bigrams: better for formulaic text such as legal clauses) or 'embedding+words+chars' "
                     "(plus character 3-5-grams too: slower to fit, best on contract clauses)")
    encoder_epochs: float = option(
        0.0, "head-only, with --no-copy-encoder: first fine-tune the encoder for this many epochs with LoRA "
             "adapters (--lora-r, --lora-alpha, --learning-rate), through its own pooling into a head started "
             "from a logistic regression on its frozen embeddings; the head is then fitted on the adapted "
             "embeddings and the run stores the adapter (a few MB). Sharper embeddings for rare labels; the "
             "encoder pass is then the run's own, not shared with other tasks. 0: the encoder stays frozen")
    cv_folds: int = option(
        0, "head-only: pick the regularisation and the thresholds by K-fold cross-validation over all the "
           "training data (whole groups per fold with --group-field), then train on all of it; 0: use a "
           "validation split")
    text_mix: str | None = option(
        None, "single-label fine-tunes (full or --lora): mix the model's probabilities with those of a logistic "
              "regression over TF-IDF text features ('words' or 'words+chars') fitted on the same "
              "training texts; its C (--head-c), its class weighting and the share of each score it gives are "
              "chosen on the validation split (wording cues the encoder blurs, such as tickers and analysts' verbs)")
    head_c: str | None = option(
        None, "head-only or --text-mix: comma-separated regularisation strengths C to choose from (default: "
              + ",".join(f"{c:g}" for c in HEAD_C_GRID) + ")")
    max_word_features: int | None = option(
        None, "head-only or --text-mix: the most word/bigram columns kept (default: the text features' own setting)")
    max_char_features: int | None = option(
        None, "head-only or --text-mix: the most character n-gram columns kept (default: the text features' own "
              "setting)")
    min_labels: int | None = option(
        None, "multi-label: every text gets this many of its best-scoring labels, and any other over one "
              "threshold tuned for all labels (default: the fewest labels any training text has, so 1 when "
              "every training text has a label, as contract clauses do, and 0 when some have none)")
    labels: str | None = option(
        None, "comma-separated label set (default: the labels seen in the training data); "
              "multi-label texts with no label are negatives")
    epochs: float = option(5.0, "training epochs (early stopping may end sooner)")
    max_steps: int | None = option(None, "stop after this many optimiser steps (overrides --epochs)")
    batch_size: int = option(32, "training batch size")
    learning_rate: float | None = option(
        None, "peak learning rate (linear warm-up then linear decay; default: 5e-4 for LoRA adapters, --lora "
              "and --encoder-epochs, 5e-5 for a full fine-tune)")
    weight_decay: float = option(0.01, "AdamW weight decay")
    warmup_ratio: float = option(0.1, "share of the training steps spent warming the learning rate up")
    max_length: int = option(256, "tokens per window; longer texts are cut into overlapping windows")
    stride: int = option(64, "tokens of overlap between consecutive windows of a long text")
    class_weights: bool = option(
        True, "weight the loss against label imbalance (weighted cross-entropy / BCE pos_weight, capped)")
    early_stopping_patience: int = option(
        2, "stop after this many evaluations without improvement of the validation metric (0: never)")
    eval_steps: int | None = option(None, "evaluate every N steps (default: every epoch)")
    save_steps: int | None = option(None, "checkpoint every N steps (default: at every evaluation)")
    seed: int = option(0, "random seed (data split, initialisation, data order)")
    resume: bool = option(False, "continue from the last checkpoint in <out>/checkpoints")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    max_train_samples: int | None = option(None, "train on a seeded random subset of this many records")
    limit_val: int | None = option(None, "validate on a seeded random subset of this many records")
    progress: bool = option(True, "show progress bars")

    def __post_init__(self) -> None:
        def bad(message: str) -> None:
            raise InvalidParameterError(message)

        for name in ("task", "train", "out"):
            if not str(getattr(self, name) or "").strip():
                bad(f"{name} is required")
        if not _TASK_NAME.match(self.task):
            bad(f"task name {self.task!r} must be letters, digits, '-', '_' or '.'")
        if not 0 < self.val_fraction < 1:
            bad(f"val_fraction must be between 0 and 1, got {self.val_fraction}")
        if not self.epochs > 0:
            bad(f"epochs must be positive, got {self.epochs}")
        if self.learning_rate is not None and not self.learning_rate > 0:
            bad(f"learning_rate must be positive, got {self.learning_rate}")
        if not 0 <= self.warmup_ratio < 1:
            bad(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        for name in ("batch_size", "max_steps", "eval_steps", "save_steps", "max_train_samples", "limit_val"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
                bad(f"{name} must be a positive integer, got {value!r}")
        if self.early_stopping_patience < 0:
            bad(f"early_stopping_patience must be 0 or more, got {self.early_stopping_patience}")
        if self.max_length < 16:
            bad(f"max_length must be at least 16 tokens, got {self.max_length}")
        if not 0 <= self.stride <= self.max_length // 2:
            bad(f"stride must be between 0 and max_length/2 ({self.max_length // 2}), got {self.stride}")
        if self.features not in HEAD_FEATURES:
            bad(f"features must be one of {', '.join(HEAD_FEATURES)}, got {self.features!r}")
        if self.lora and self.head_only:
            bad("lora and head_only are two different ways to train: choose one")
        for name in ("lora_r", "lora_alpha"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 1:
                bad(f"{name} must be a positive integer, got {value!r}")
        if not 0 <= self.lora_dropout < 1:
            bad(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if not self.copy_encoder and not self.head_only:
            bad("copy_encoder is a head-only setting (a full fine-tune changes the encoder; --lora stores only "
                "the adapter)")
        if self.text_mix is not None:
            if self.text_mix not in TEXT_MIX_FEATURES:
                bad(f"text_mix must be one of {', '.join(TEXT_MIX_FEATURES)}, got {self.text_mix!r}")
            if self.head_only:
                bad("text_mix mixes a fine-tuned encoder with a text head; a head-only run reads text features "
                    "itself: use features (--features embedding+words+chars)")
            if self.multi_label:
                bad("text_mix is for single-label tasks (a multi-label mix would need its thresholds retuned)")
        if (self.head_c or self.max_word_features or self.max_char_features) and not (self.head_only or self.text_mix):
            bad("head_c, max_word_features and max_char_features are settings of a head: add head_only "
                "(--head-only) or text_mix (--text-mix)")
        if self.head_c is not None:
            parse_c_grid(self.head_c)  # refused here, before any data is read
        for name in ("max_word_features", "max_char_features"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
                bad(f"{name} must be a positive integer, got {value!r}")
        if not (self.encoder_epochs >= 0 and math.isfinite(self.encoder_epochs)):
            bad(f"encoder_epochs must be 0 or more, got {self.encoder_epochs!r}")
        if self.encoder_epochs and not self.head_only:
            bad("encoder_epochs adapts the encoder of a head-only run: add head_only (--head-only)")
        if self.encoder_epochs and self.copy_encoder:
            bad("encoder_epochs stores the encoder's adapter and names its base model: add --no-copy-encoder "
                "(copy_encoder=False)")
        if self.features != "embedding" and not self.head_only:
            bad(f"features {self.features!r} is a head-only setting: add head_only (--head-only)")
        if isinstance(self.cv_folds, bool) or int(self.cv_folds) != self.cv_folds or self.cv_folds == 1 \
                or self.cv_folds < 0:
            bad(f"cv_folds must be 0 (no cross-validation) or 2 or more, got {self.cv_folds!r}")
        if self.cv_folds and not self.head_only:
            bad("cv_folds is a head-only setting (a full fine-tune per fold would take K times as long): "
                "add head_only (--head-only)")
        if self.min_labels is not None:
            if isinstance(self.min_labels, bool) or int(self.min_labels) != self.min_labels or self.min_labels < 0:
                bad(f"min_labels must be 0 or more, got {self.min_labels!r}")
            if not self.multi_label:
                bad("min_labels is a multi-label setting (a single-label model always gives one label): "
                    "add multi_label (--multi-label) or leave it out")
        if self.cv_folds and self.val:
            bad("cv_folds replaces the validation split: give val or cv_folds, not both")
        if self.eval_steps and self.save_steps and self.save_steps % self.eval_steps:
            bad(f"save_steps ({self.save_steps}) must be a multiple of eval_steps ({self.eval_steps}): "
                "the best checkpoint is chosen at evaluations")

    @property
    def effective_learning_rate(self) -> float:
        """LoRA adapters start at zero and need a larger step than a full fine-tune (the shipped
        recipes' adapters were all trained at 5e-4)."""
        if self.learning_rate is not None:
            return float(self.learning_rate)
        return 5e-4 if self.lora or self.encoder_epochs else 5e-5

    @property
    def c_grid(self) -> tuple[float, ...]:
        """The regularisation strengths a head run chooses from."""
        return parse_c_grid(self.head_c) if self.head_c else HEAD_C_GRID

    def text_feature_settings(self, feature) -> dict:
        """A text feature's vectorizer settings, with this run's cap on its columns."""
        cap = {"words": self.max_word_features, "chars": self.max_char_features}.get(feature.name)
        return {**feature.settings, "max_features": cap} if cap else dict(feature.settings)

    @property
    def metric(self) -> str:
        """The validation metric the best checkpoint is chosen by."""
        return "macro_f1" if self.multi_label else "accuracy"


@dataclass
class GenerateTrainConfig:
    """Everything ``train_generator`` needs; each field is a ``finassist finetune generate`` option."""

    task: str = option("summarize", "task whose system prompt and default instruction are used (prompts/<task>.toml)")
    train: str = option("", "training data: a .jsonl/.json/.csv file or a Hugging Face dataset id", required=True)
    out: str = option("", "run directory: the trained model, tokenizer, run file and checkpoints/", required=True)
    model: str = option("smollm2-135m-instruct", "base causal LM: a preset, Hugging Face id or local directory")
    input_field: str = option("input", "field holding the input text (e.g. transcript)")
    target_field: str = option("target", "field holding the target text the model learns to write (e.g. summary)")
    val: str | None = option(None, "validation data (same format); default: --val-fraction of the training data")
    val_fraction: float = option(0.05, "share of the training records held out for validation when --val is not "
                                     "given (0: no validation)")
    instruction: str | None = option(None, "user-turn instruction; {text} marks where the input goes (else it is "
                                         "appended). Default: the task's [finetune] instruction in "
                                         "prompts/<task>.toml (summarize: the summariser's bullets prompt)")
    max_input_tokens: int = option(600, "input tokens kept per example (default 600: the summariser's chunk size, the "
                                      "most source text it puts into one prompt at inference)")
    truncate_side: str = option("end", "which side of a long input is cut: 'end' keeps the beginning (earnings calls "
                                     "state their results first), 'start' keeps the end")
    max_target_tokens: int = option(256, "target tokens kept per example (the end is cut; a cut target gets no "
                                       "end-of-turn token, so the model never learns to stop mid-sentence)")
    lora: bool = option(False, "train LoRA adapters instead of all weights; merged into the weights when saved")
    lora_r: int = option(16, "LoRA rank")
    lora_alpha: int = option(32, "LoRA scaling (alpha)")
    lora_dropout: float = option(0.05, "dropout on the LoRA path")
    merge_lora: bool = option(True, "save the model with the LoRA merged into its weights (a plain model "
                                    "directory); --no-merge-lora saves the adapter alone (megabytes, loaded over "
                                    "its base model: what the package ships)")
    lora_target_modules: str | None = option(None, "comma-separated module names, or 'all-linear'; default: peft's "
                                                 "choice for the architecture, else all-linear")
    epochs: float = option(1.0, "training epochs (ignored when --max-steps is set)")
    max_steps: int = option(-1, "optimizer steps to train for (-1: --epochs decides)")
    batch_size: int = option(1, "examples per device per step")
    gradient_accumulation_steps: int = option(8, "batches accumulated per optimizer step")
    learning_rate: float | None = option(None, "peak learning rate (default: 2e-4 with --lora, 5e-5 without)")
    warmup_ratio: float = option(0.03, "share of the steps spent warming the learning rate up")
    weight_decay: float = option(0.0, "AdamW weight decay")
    save_steps: int = option(200, "save a checkpoint every N steps under <out>/checkpoints (the last 2 are kept)")
    eval_steps: int = option(200, "validation loss every N steps (0: only at the end)")
    logging_steps: int = option(10, "log the training loss every N steps")
    baseline_eval: bool = option(True, "measure the validation loss of the untrained model first, so the run file "
                                     "shows the improvement")
    seed: int = option(0, "seed for weights (LoRA), data order and dropout")
    resume: bool = option(False, "continue from the last checkpoint in <out>/checkpoints (same configuration)")
    device: str = option("auto", "auto, cpu or cuda (several GPUs: accelerate launch -m finetune ...)")
    max_train_samples: int | None = option(None, "use only the first N training records (quick runs)")
    max_val_samples: int | None = option(None, "use only the first N validation records")
    gradient_checkpointing: bool = option(False, "recompute activations in the backward pass: less memory, ~20% slower")

    @property
    def effective_learning_rate(self) -> float:
        """LoRA adapters start at zero and need a larger step than full fine-tuning."""
        if self.learning_rate is not None:
            return float(self.learning_rate)
        return 2e-4 if self.lora else 5e-5

    def validate(self) -> None:
        """Refuse settings that cannot work, before any model is loaded."""
        if not str(self.train).strip():
            raise InvalidParameterError("no training data: give --train (a file or a dataset id)")
        if not str(self.out).strip():
            raise InvalidParameterError("no run directory: give --out")
        if self.truncate_side not in TRUNCATE_SIDES:
            raise InvalidParameterError(f"truncate_side must be one of {', '.join(TRUNCATE_SIDES)}, "
                                        f"got {self.truncate_side!r}")
        for name in ("max_input_tokens", "max_target_tokens", "batch_size", "gradient_accumulation_steps",
                     "save_steps", "logging_steps", "lora_r", "lora_alpha"):
            if int(getattr(self, name)) < 1:
                raise InvalidParameterError(f"{name} must be at least 1, got {getattr(self, name)!r}")
        if self.eval_steps < 0:
            raise InvalidParameterError(f"eval_steps must be 0 or more, got {self.eval_steps}")
        if not 0 <= self.val_fraction < 1:
            raise InvalidParameterError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if not 0 <= self.warmup_ratio < 1:
            raise InvalidParameterError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if not 0 <= self.lora_dropout < 1:
            raise InvalidParameterError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.learning_rate is not None and self.learning_rate <= 0:
            raise InvalidParameterError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise InvalidParameterError(f"max_steps must be -1 (use --epochs) or positive, got {self.max_steps}")
        if self.max_steps == -1 and self.epochs <= 0:
            raise InvalidParameterError(f"epochs must be positive, got {self.epochs}")
        for name in ("max_train_samples", "max_val_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InvalidParameterError(f"{name} must be at least 1, got {value}")


@dataclass
class EnsembleConfig:
    """Everything ``build_ensemble`` needs; each field is a ``finassist finetune ensemble`` option."""

    members: str = option("", "the classifier runs to combine, comma-separated: RUN or NAME=RUN (NAME: its subfolder "
                              "in the ensemble; default the run folder's name)", required=True)
    val: str = option("", "validation data the shares are chosen on: texts none of the members trained on (e.g. "
                          "the validation split a LoRA run carved)", required=True)
    out: str = option("", "run directory to write: the ensemble's run file and card, a copy of each member",
                      required=True)
    text_field: str = option("text", "field holding the text")
    label_field: str = option("label", "field holding the label")
    weight_field: str | None = option(None, "field holding each validation example's weight in the accuracy the "
                                            "shares are chosen by (default: every example weighs 1)")
    share_step: float = option(0.05, "the shares tried: every split of 1 into steps of this size, each member "
                                     "getting at least one step")
    device: str = option("auto", "auto, cpu or cuda (where the members score the validation texts)")
    progress: bool = option(True, "show a progress bar while the members score the validation texts")

    def member_specs(self) -> list[tuple[str, str]]:
        """(name, run directory) of each member, in the order given."""
        specs = []
        for item in (x.strip() for x in str(self.members).split(",")):
            if not item:
                continue
            name, sep, path = item.partition("=")
            name, path = (name.strip(), path.strip()) if sep else ("", item)
            specs.append((name or path.rstrip("/").rsplit("/", 1)[-1], path))
        return specs

    def validate(self) -> None:
        """Refuse settings that cannot work, before any model is loaded."""
        specs = self.member_specs()
        if len(specs) < 2:
            raise InvalidParameterError(f"an ensemble needs at least 2 member runs, got {self.members!r}")
        names = [name for name, _ in specs]
        bad = [name for name in names if not _TASK_NAME.match(name)]
        if bad:
            raise InvalidParameterError(f"member names become subfolders: letters, digits, '.', '_' or '-', got {bad}")
        if len(set(names)) < len(names):
            raise InvalidParameterError(f"two members have the same name: {names} (name them: NAME=RUN)")
        for name in ("val", "out"):
            if not str(getattr(self, name)).strip():
                raise InvalidParameterError(f"give --{name}")
        if not 0 < self.share_step <= 1 / len(specs):
            raise InvalidParameterError(f"share_step must be above 0 and at most 1/{len(specs)} for {len(specs)} "
                                        f"members, got {self.share_step}")
