"""Zero-shot classification with the encoder against label descriptions.

A text's embedding is compared (cosine) with each label's embedding, the
normalised mean of its descriptions in ``prompts/labels/<task>.toml``.
Single-label tasks turn the similarities into probabilities with a softmax;
multi-label tasks score each label by its cosine similarity and return every
label that passes the threshold (and, where the label set sets a margin, is
within that margin of the best label).

A task served by a fine-tuned run uses that model instead: the classifiers shipped with the
package (``assistant/shipped_runs``) by default, or a user's run (``Assistant(classifiers=...)``);
softmax probabilities and the top label (single-label), or sigmoid probabilities and every
label over its tuned threshold (multi-label). ``zero_shot=True`` asks for the label
descriptions even where a fine-tuned model serves the task. The result type is the same.

``classify_tasks`` classifies texts for several tasks at once: head classifiers that share the
engine's encoder get the texts' embeddings from one encoder pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..lazy import torch

from ..classifiers import chosen_labels
from ..errors import UnknownTaskError
from ..inputs import ensure_text, ensure_texts
from ..prompts import LabelSet, available_label_sets, load_label_set
from .base import Pipeline

if TYPE_CHECKING:
    from ..classifiers import FineTunedClassifier


@dataclass(frozen=True)
class LabelScore:
    label: str
    score: float


@dataclass
class Classification:
    """Scores for every label, best first, and the predicted labels."""

    task: str
    multi_label: bool
    #: Every label with its score, sorted by score (highest first).
    scores: list[LabelScore]
    #: Predicted labels: the top one (single-label) or all above the threshold (multi-label).
    labels: list[str] = field(default_factory=list)

    @property
    def label(self) -> str | None:
        """The best label (``None`` for a multi-label text that matches no label)."""
        return self.labels[0] if self.labels else None

    def to_dict(self) -> dict:
        return {
            "task": self.task,
            "multi_label": self.multi_label,
            "labels": self.labels,
            "scores": [{"label": s.label, "score": round(s.score, 6)} for s in self.scores],
        }

    def __str__(self) -> str:
        top = ", ".join(f"{s.label} {s.score:.2f}" for s in self.scores[:3])
        return f"{', '.join(self.labels) or '(no label)'}  [{top}]"


@dataclass
class ClassifyInputs:
    texts: list[str]
    label_set: LabelSet | None
    single: bool
    threshold: float | None
    #: The fine-tuned model serving the task (None: zero-shot with ``label_set``).
    classifier: FineTunedClassifier | None = None
    task: str = ""


class ClassifyPipeline(Pipeline):
    name = "classify"

    def __init__(self, engine) -> None:
        super().__init__(engine)
        self._label_embeddings: dict[str, torch.Tensor] = {}

    def preprocess(self, inputs, task: str = "sentiment", threshold: float | None = None,
                   zero_shot: bool = False) -> ClassifyInputs:
        classifier = None if zero_shot else self.engine.classifier(task)
        label_set = None if classifier is not None else self._label_set(task)
        single = isinstance(inputs, (str, bytes))
        texts = [ensure_text(inputs)] if single else ensure_texts(inputs)
        if threshold is None:
            threshold = label_set.threshold if label_set is not None else None
        threshold = None if threshold is None else float(threshold)
        return ClassifyInputs(texts, label_set, single, threshold, classifier, task)

    def _label_set(self, task: str) -> LabelSet:
        try:
            return load_label_set(task)
        except UnknownTaskError:
            if not self.engine.classifiers:
                raise
            available = sorted(set(available_label_sets()) | set(self.engine.classifiers))
            raise UnknownTaskError(
                f"unknown classification task {task!r}; available: {', '.join(available)}"
            ) from None

    def label_embeddings(self, label_set: LabelSet) -> torch.Tensor:
        """One row per label: the normalised mean of its description embeddings (cached)."""
        if label_set.task not in self._label_embeddings:
            rows = []
            for label in label_set.labels:
                desc = self.engine.encode([label_set.description_prefix + d for d in label.descriptions])
                rows.append(torch.nn.functional.normalize(desc.mean(0), dim=-1))
            self._label_embeddings[label_set.task] = torch.stack(rows)
        return self._label_embeddings[label_set.task]

    def forward(self, prepared: ClassifyInputs, embeddings: torch.Tensor | None = None) -> tuple[ClassifyInputs, torch.Tensor]:
        if prepared.classifier is not None:
            return prepared, prepared.classifier.predict_scores(prepared.texts, embeddings=embeddings)
        labels = self.label_embeddings(prepared.label_set)
        if embeddings is None:
            embeddings = self.engine.encode(prepared.texts)
        return prepared, embeddings @ labels.T

    def postprocess(self, outputs: tuple[ClassifyInputs, torch.Tensor]):
        prepared, similarity = outputs
        if prepared.classifier is not None:
            return self._fine_tuned(prepared, similarity)
        ls = prepared.label_set
        results = []
        for row in similarity:
            if ls.multi_label:
                values = row
                floor = prepared.threshold
                if ls.margin is not None:
                    floor = max(floor, float(row.max()) - ls.margin)
                chosen = [ls.names[i] for i in torch.argsort(row, descending=True).tolist() if row[i] >= floor]
            else:
                values = torch.softmax(row / ls.temperature, dim=-1)
                chosen = [ls.names[int(values.argmax())]]
            order = torch.argsort(values, descending=True).tolist()
            scores = [LabelScore(ls.names[i], float(values[i])) for i in order]
            results.append(Classification(ls.task, ls.multi_label, scores, chosen))
        return results[0] if prepared.single else results

    def _fine_tuned(self, prepared: ClassifyInputs, probs: torch.Tensor):
        """Results of a fine-tuned model: ``probs`` are probabilities, one column per label.
        An explicit ``threshold`` replaces the tuned per-label thresholds (multi-label)."""
        clf = prepared.classifier
        names = clf.labels
        cut = [prepared.threshold if prepared.threshold is not None else clf.thresholds[n] for n in names]
        # Runs trained on data where every text has a label always give their best-scoring ones.
        hits = chosen_labels(probs.numpy(), cut, clf.min_labels) if clf.multi_label else None
        results = []
        for k, row in enumerate(probs):
            order = torch.argsort(row, descending=True).tolist()
            if clf.multi_label:
                chosen = [names[i] for i in order if hits[k, i]]
            else:
                chosen = [names[order[0]]]
            scores = [LabelScore(names[i], float(row[i])) for i in order]
            results.append(Classification(prepared.task, clf.multi_label, scores, chosen))
        return results[0] if prepared.single else results

    def classify_tasks(self, inputs, tasks, threshold: float | None = None,
                       zero_shot: bool = False) -> dict[str, Classification | list[Classification]]:
        """``{task: result(s)}`` for each of ``tasks``. Head classifiers and zero-shot label sets that
        embed with the same encoder share one encoder pass over the texts (fine-tuned encoders run
        their own)."""
        tasks = list(dict.fromkeys(tasks))
        if not tasks:
            raise UnknownTaskError("no classification task given")
        prepared = {task: self.preprocess(inputs, task=task, threshold=threshold, zero_shot=zero_shot)
                    for task in tasks}
        shared: dict[int, torch.Tensor] = {}
        results = {}
        for task, item in prepared.items():
            clf = item.classifier
            # zero-shot tasks embed with the engine's encoder, head runs with theirs (often the same)
            encoder = clf.sentence_encoder if clf is not None else self.engine.sentence_encoder
            embeddings = None
            if encoder is not None:
                if id(encoder) not in shared:
                    shared[id(encoder)] = encoder.encode(item.texts)
                embeddings = shared[id(encoder)]
            results[task] = self.postprocess(self.forward(item, embeddings=embeddings))
        return results
