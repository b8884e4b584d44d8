"""Head-only classifier training (``finassist finetune classify --head-only``): the encoder stays
frozen, or is first LoRA-adapted for the task (``--encoder-epochs``: ``finetune.adapt_encoder``);
its sentence embeddings (the assistant's own pooling, ``SentenceEncoder.encode``), optionally
with TF-IDF word and character n-gram features, train a scikit-learn logistic regression in
about a minute on a laptop CPU.

The regularisation strength C is chosen on the validation split, or by K-fold
cross-validation over all the training data (``cv_folds``: every text is scored by a head that
did not see it, then the head is refitted on all of it). The run stores the head as plain
tensors (``head.safetensors``, no pickled scikit-learn objects), the text features' vocabularies
as JSON, the encoder's adapter when it was adapted, and a copy of the encoder or, for a compact
run, its name and fingerprint.
"""

from __future__ import annotations

import json
import logging
import shutil
from functools import partial
from pathlib import Path

import numpy as np
import torch

from assistant.classifiers import ENCODER_DIR, HEAD_FILE, TEXT_FEATURES, word_vectorizer, word_vectorizer_state
from assistant.encoder import SentenceEncoder
from assistant.models import weights_fingerprint

from .adapt_encoder import adapt_encoder
from .classification_data import ClassificationData
from .classifier_run import finish_run
from .config import ClassifyTrainConfig
from .data import DataError
from .linear_head import fit_logistic, head_probs, head_weights

log = logging.getLogger(__name__)


def _encode(encoder: SentenceEncoder, texts: list[str], progress: bool, desc: str) -> np.ndarray:
    from tqdm.auto import tqdm

    chunk = 256  # progress granularity; the encoder batches inside each chunk
    parts = [encoder.encode(texts[i : i + chunk], batch_size=64)
             for i in tqdm(range(0, len(texts), chunk), desc=desc, disable=not progress, unit="chunk")]
    return torch.cat(parts).numpy() if parts else np.zeros((0, 0), dtype=np.float32)


def _save_encoder(engine, target: Path) -> None:
    """A self-contained copy of the encoder: weights, tokenizer and the sentence-transformers
    files that decide pooling and window (so the run embeds exactly as it was trained)."""
    enc = engine.encoder
    enc.model.save_pretrained(target)
    enc.tokenizer.save_pretrained(target)
    source = Path(enc.resolved.location)
    for name in ("sentence_bert_config.json", "modules.json", "config_sentence_transformers.json"):
        if (source / name).is_file():
            shutil.copy2(source / name, target / name)
    if (source / "1_Pooling").is_dir():
        shutil.copytree(source / "1_Pooling", target / "1_Pooling", dirs_exist_ok=True)


class HeadFitter:
    """Fits the head-only logistic regression on embeddings (and TF-IDF text features) of chosen texts.

    ``inputs(rows)`` builds the feature matrix of the texts at ``rows`` (text features fitted on
    those rows only, so a cross-validation fold never sees the vocabulary of the texts it is
    scored on); ``fit`` trains a head on it for one C; ``probs`` scores other texts.
    A head is (weight over the feature columns, bias, the fitted text vectorizers in
    ``text_features`` order).
    """

    def __init__(self, config: ClassifyTrainConfig, data: ClassificationData, embeddings: np.ndarray) -> None:
        from sklearn.preprocessing import MultiLabelBinarizer

        self.config, self.data, self.embeddings = config, data, embeddings
        self.multi, self.labels = config.multi_label, data.labels
        self.text_features = [TEXT_FEATURES[name] for name in config.features.split("+")[1:]]
        if self.multi:
            self.y = MultiLabelBinarizer(classes=self.labels).fit_transform(data.train_labels)
        else:
            self.y = np.array([g[0] for g in data.train_labels])
        self.weights = None if data.train_weights is None else np.asarray(data.train_weights)

    def inputs(self, rows: np.ndarray):
        """(feature matrix of the texts at ``rows``, the text vectorizers fitted on them)."""
        texts = [self.data.train_texts[i] for i in rows]
        vectorizers = [word_vectorizer(self.config.text_feature_settings(f)).fit(texts) for f in self.text_features]
        return self.features(self.embeddings[rows], texts, vectorizers), vectorizers

    def features(self, embeddings: np.ndarray, texts: list[str], vectorizers: list):
        if not vectorizers:
            return embeddings
        from scipy import sparse

        blocks = [sparse.csr_matrix(embeddings)] + [v.transform(texts) for v in vectorizers]
        return sparse.hstack(blocks, format="csr")

    def fit(self, inputs, rows: np.ndarray, c: float):
        x, vectorizers = inputs
        weights = None if self.weights is None else self.weights[rows]
        # liblinear suits the one-vs-rest binary problems (sparse word columns too); lbfgs the multinomial one.
        clf = fit_logistic(x, self.y[rows], c, self.multi, weights, solver="liblinear" if self.multi else "lbfgs",
                           class_weight="balanced" if self.config.class_weights else None, seed=self.config.seed)
        weight, bias = head_weights(clf, self.labels, x.shape[1], self.multi)
        return weight, bias, vectorizers

    def probs(self, head, embeddings: np.ndarray, texts: list[str]) -> np.ndarray:
        weight, bias, vectorizers = head
        return head_probs(self.features(embeddings, texts, vectorizers), weight, bias, self.multi)

    def score(self, gold: list[list[str]], probs: np.ndarray) -> float:
        """The validation metric, at thresholds tuned on these predictions for multi-label (as the
        saved run will be): C is chosen for the metric the run will actually get."""
        from .evaluation import ClassificationEvaluator, apply_thresholds, tune_thresholds

        evaluator = ClassificationEvaluator(self.labels, multi_label=self.multi, task=self.config.task)
        if self.multi:
            thresholds = tune_thresholds(gold, probs, self.labels, min_labels=self.data.min_labels)
            return evaluator(gold, apply_thresholds(probs, self.labels, thresholds, self.data.min_labels)).macro_f1
        return evaluator([g[0] for g in gold], [self.labels[i] for i in probs.argmax(1)]).accuracy


def _cv_folds(config: ClassifyTrainConfig, data: ClassificationData) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold

    n = len(data.train_texts)
    if data.train_groups is not None:
        splits = GroupKFold(n_splits=config.cv_folds).split(np.zeros(n), groups=data.train_groups)
    elif config.multi_label:
        splits = KFold(n_splits=config.cv_folds, shuffle=True, random_state=config.seed).split(np.zeros(n))
    else:
        y = [g[0] for g in data.train_labels]
        splits = StratifiedKFold(n_splits=config.cv_folds, shuffle=True, random_state=config.seed).split(np.zeros(n), y)
    try:
        return [(np.asarray(a), np.asarray(b)) for a, b in splits]
    except ValueError as exc:  # fewer texts than folds
        raise DataError(f"{config.train}: cannot make {config.cv_folds} folds: {exc}") from exc


def train_head(config: ClassifyTrainConfig, out: Path, data: ClassificationData, started: float) -> Path:
    """Fit the head on the frozen encoder's embeddings of ``data`` (and its text features), choose C
    on validation or by cross-validation, save the head and finish the run in ``out``."""
    from dataclasses import replace

    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    from assistant.engine import Engine

    from .files import write_vocabulary

    engine = Engine(encoder=config.model, device=config.device)
    encoder = engine.sentence_encoder
    x_train = _encode(encoder, data.train_texts, config.progress, "embedding train")
    if config.encoder_epochs:
        adapt_encoder(config, data, x_train, engine.encoder, out)
        encoder = SentenceEncoder.from_spec(config.model, engine.runtime, adapter=out)
        x_train = _encode(encoder, data.train_texts, config.progress, "embedding train (adapted encoder)")
    dim = x_train.shape[1]
    fitter = HeadFitter(config, data, x_train)
    everything = np.arange(len(data.train_texts))
    bar = partial(tqdm, desc="fitting head", unit="fit", disable=not config.progress)
    scores: dict[float, float] = {}
    if config.cv_folds:
        # Every training text is scored by a head that did not see it (nor its group): C and the
        # thresholds are chosen on all the data, then the head is refitted on all of it.
        folds = _cv_folds(config, data)
        grid = config.c_grid
        oof = {c: np.zeros((len(everything), len(data.labels)), dtype=np.float32) for c in grid}
        with bar(total=len(folds) * len(grid)) as progress:
            for fit_rows, held_rows in folds:
                held_texts = [data.train_texts[i] for i in held_rows]
                inputs = fitter.inputs(fit_rows)
                for c in grid:
                    head = fitter.fit(inputs, fit_rows, c)
                    oof[c][held_rows] = fitter.probs(head, x_train[held_rows], held_texts)
                    progress.update()
        scores = {c: fitter.score(data.train_labels, oof[c]) for c in grid}
        c = max(scores, key=scores.get)
        head, probs = fitter.fit(fitter.inputs(everything), everything, c), oof[c]
        reported = replace(data, val_texts=data.train_texts, val_labels=data.train_labels)
    else:
        x_val = _encode(encoder, data.val_texts, config.progress, "embedding validation")
        best, inputs = None, fitter.inputs(everything)
        for c in bar(config.c_grid):  # a small search on validation: cheap, and C matters here
            head = fitter.fit(inputs, everything, c)
            probs = fitter.probs(head, x_val, data.val_texts)
            scores[c] = fitter.score(data.val_labels, probs)
            if best is None or scores[c] > scores[best[0]]:
                best = (c, head, probs)
        c, head, probs = best
        reported = data
    for value, score in scores.items():
        log.info("head C=%g: validation %s %.4f", value, config.metric, score)
    weight, bias, vectorizers = head
    tensors = {"weight": torch.from_numpy(weight[:, :dim].copy()), "bias": torch.from_numpy(bias)}
    extra: dict = {}
    start = dim  # each text feature's columns follow the embedding's, in order
    for feature, vectorizer in zip(fitter.text_features, vectorizers, strict=True):
        size = len(vectorizer.vocabulary_)
        columns = torch.from_numpy(weight[:, start : start + size].copy())
        # A compact run (shipped with the package) keeps its many text-feature weights in float16:
        # half the size, and the scores move by far less than the thresholds' resolution.
        tensors[feature.tensor] = columns if config.copy_encoder else columns.half()
        write_vocabulary(word_vectorizer_state(vectorizer, config.text_feature_settings(feature)), out / feature.file)
        extra[feature.tensor.removesuffix("_weight") + "_features"] = size  # word_features, char_features
        start += size
    save_file(tensors, str(out / HEAD_FILE),
              metadata={"labels": json.dumps(data.labels), "multi_label": str(config.multi_label)})
    fingerprint = None
    if config.copy_encoder:
        _save_encoder(engine, out / ENCODER_DIR)
    else:  # the run names its base model (config.model) and the fingerprint of the weights it was fitted on
        fingerprint = weights_fingerprint(engine.encoder.resolved)
    if config.encoder_epochs:
        extra.update(encoder_epochs=config.encoder_epochs, encoder_lora_r=config.lora_r,
                     encoder_learning_rate=config.effective_learning_rate)
    extra.update(head_C=c, embedding_dim=dim, head_C_scores={str(k): round(v, 4) for k, v in scores.items()})
    if config.cv_folds:
        extra["validation"] = f"{config.cv_folds}-fold cross-validation, out-of-fold predictions"
    return finish_run(config, out, reported, "classifier-head", probs, started, extra, base_fingerprint=fingerprint)
