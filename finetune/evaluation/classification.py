"""Classification metrics for single-label (sentiment) and multi-label (contract clauses) tasks,
computed with scikit-learn from label strings, plus per-label threshold tuning for multi-label
scores."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support
from sklearn.preprocessing import MultiLabelBinarizer

from assistant.classifiers import chosen_labels

from .report import markdown_table, new_figure, save_figure, write_json, write_markdown

#: Stands in for predicted labels outside the label set: it matches no true label, so such a
#: prediction is always an error (and never a true positive of any real label).
_UNKNOWN = "\x00unknown"


@dataclass
class ClassificationReport:
    task: str
    multi_label: bool
    labels: list[str]
    n: int
    #: Single-label: accuracy. Multi-label: exact-match (subset) accuracy.
    accuracy: float
    micro_f1: float
    macro_f1: float
    #: label -> {"precision", "recall", "f1", "support"}, every label (ignored ones too).
    per_label: dict[str, dict]
    #: Single-label only: rows = true label, columns = predicted label, in ``labels`` order.
    confusion: list[list[int]] | None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_markdown(self) -> str:
        ignored = set(self.extra.get("ignore_labels") or ())
        thresholds = self.extra.get("thresholds") if isinstance(self.extra.get("thresholds"), Mapping) else None
        acc_name = "exact-match accuracy" if self.multi_label else "accuracy"
        kind = "multi-label" if self.multi_label else "single-label"
        parts = [
            f"## {self.task} ({kind}, n={self.n})",
            "",
            markdown_table(
                ["metric", "value"],
                [[acc_name, self.accuracy], ["micro-F1", self.micro_f1], ["macro-F1", self.macro_f1]],
            ),
        ]
        if ignored:
            parts += ["", f"Averages leave out: {', '.join(sorted(ignored))}."]
        unknown = self.extra.get("unknown_predictions")
        if unknown:
            parts += ["", f"{unknown} predicted label(s) outside the label set were counted as errors."]
        headers = ["label", "precision", "recall", "F1", "support"] + (["threshold"] if thresholds else [])
        rows = []
        for label in self.labels:
            m = self.per_label[label]
            name = f"{label} (ignored)" if label in ignored else label
            row = [name, m["precision"], m["recall"], m["f1"], m["support"]]
            if thresholds:
                row.append(thresholds.get(label))
            rows.append(row)
        parts += ["", "### Per label", "", markdown_table(headers, rows)]
        if self.confusion is not None:
            parts += [
                "",
                "### Confusion matrix (rows: true, columns: predicted)",
                "",
                markdown_table(["true \\ predicted", *self.labels],
                               [[label, *row] for label, row in zip(self.labels, self.confusion)]),
            ]
        scalars = [[k, v] for k, v in self.extra.items()
                   if k not in ("ignore_labels", "thresholds", "unknown_predictions")
                   and (v is None or isinstance(v, (str, int, float)))]
        if scalars:
            parts += ["", "### Run", "", markdown_table(["key", "value"], scalars)]
        return "\n".join(parts) + "\n"

    def save(self, out_dir: Path, name: str = "report") -> dict[str, Path]:
        """Write ``<name>.json``, ``<name>.md`` and a PNG: the confusion matrix (single-label,
        ``<name>-confusion.png``) or per-label F1 bars (multi-label, ``<name>-f1.png``)."""
        out_dir = Path(out_dir)
        paths = {
            "json": write_json(self.to_dict(), out_dir / f"{name}.json"),
            "md": write_markdown(self.to_markdown(), out_dir / f"{name}.md"),
        }
        if self.confusion is not None:
            paths["png"] = save_figure(self._confusion_figure(), out_dir / f"{name}-confusion.png")
        else:
            paths["png"] = save_figure(self._f1_figure(), out_dir / f"{name}-f1.png")
        return paths

    def _confusion_figure(self):
        k = len(self.labels)
        cm = np.asarray(self.confusion, dtype=float)
        # Colour by share of the true class so rare classes stay readable; annotate raw counts.
        share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        side = max(4.0, 0.8 * k + 2.5)
        fig = new_figure(side + 1.0, side)
        ax = fig.subplots()
        im = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(int(cm[i, j])), ha="center", va="center",
                        color="white" if share[i, j] > 0.5 else "black", fontsize=10 if k <= 10 else 7)
        ax.set_xticks(range(k), self.labels, rotation=45 if k > 3 else 0, ha="right" if k > 3 else "center")
        ax.set_yticks(range(k), self.labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{self.task}: accuracy {self.accuracy:.3f}, macro-F1 {self.macro_f1:.3f} (n={self.n})")
        return fig

    def _f1_figure(self):
        k = len(self.labels)
        f1 = [self.per_label[label]["f1"] for label in self.labels]
        support = [self.per_label[label]["support"] for label in self.labels]
        fig = new_figure(7.0, max(2.5, 0.35 * k + 1.5))
        ax = fig.subplots()
        y = np.arange(k)
        ax.barh(y, f1, color="tab:blue")
        ax.set_yticks(y, self.labels)
        ax.invert_yaxis()  # first label on top, as in the tables
        for yi, (f, s) in enumerate(zip(f1, support)):
            inside = f > 0.75  # long bars carry their label inside, so it never runs off the axis
            ax.text(f - 0.01 if inside else f + 0.01, yi, f"{f:.2f} (n={s})", va="center", fontsize=8,
                    ha="right" if inside else "left", color="white" if inside else "black")
        ax.set_xlim(0, 1)
        ax.set_xlabel("F1")
        ax.set_title(f"{self.task}: micro-F1 {self.micro_f1:.3f}, macro-F1 {self.macro_f1:.3f} (n={self.n})")
        return fig


def _check_labels(labels: Sequence[str], what: str = "labels") -> list[str]:
    labels = list(labels)
    if not labels:
        raise ValueError(f"{what} must not be empty")
    if not all(isinstance(label, str) for label in labels):
        raise ValueError(f"{what} must be strings")
    if len(set(labels)) != len(labels):
        raise ValueError(f"{what} has duplicates: {labels}")
    return labels


def _label_sets(values: Sequence, what: str) -> list[set[str]]:
    sets = []
    for i, v in enumerate(values):
        # A bare string would be iterated as characters: reject it loudly.
        if isinstance(v, str) or not isinstance(v, Iterable):
            raise ValueError(  # noqa: TRY004 - one error type for every bad evaluation input
                f"multi-label {what}[{i}] must be a list or set of label strings, got {v!r}")
        s = set(v)
        if not all(isinstance(label, str) for label in s):
            raise ValueError(f"multi-label {what}[{i}] must hold label strings, got {v!r}")
        sets.append(s)
    return sets


class ClassificationEvaluator:
    """Scores label predictions against gold labels.

    Averages (micro/macro) run over ``labels`` minus ``ignore_labels``, always over the full
    declared label set: a label absent from both gold and predictions scores 0 (sklearn's
    ``zero_division=0``), so macro-F1 stays comparable across runs on the same label set.

    A predicted label outside ``labels`` is an error, not a crash: it fails accuracy (exact
    match) and is a miss for the true label, but no label's false positive, so single-label
    micro-F1 can then exceed accuracy. ``extra["unknown_predictions"]`` counts them.
    """

    def __init__(self, labels: Sequence[str], multi_label: bool = False, task: str = "classification",
                 ignore_labels: Sequence[str] = ()):
        self.labels = _check_labels(labels)
        if _UNKNOWN in self.labels:
            raise ValueError("a label collides with the evaluator's internal unknown-label marker")
        self.ignore_labels = list(ignore_labels)
        missing = [label for label in self.ignore_labels if label not in self.labels]
        if missing:
            raise ValueError(f"ignore_labels {missing} are not in labels {self.labels}")
        self.scored = [label for label in self.labels if label not in self.ignore_labels]
        if not self.scored:
            raise ValueError("ignore_labels leaves no label to average over")
        self.multi_label = multi_label
        self.task = task

    def __call__(self, y_true: Sequence, y_pred: Sequence, **extra) -> ClassificationReport:
        y_true, y_pred = list(y_true), list(y_pred)
        if len(y_true) != len(y_pred):
            raise ValueError(f"y_true has {len(y_true)} items but y_pred has {len(y_pred)}")
        if not y_true:
            raise ValueError("nothing to evaluate: y_true and y_pred are empty")
        return self._multi(y_true, y_pred, extra) if self.multi_label else self._single(y_true, y_pred, extra)

    def _per_label(self, y_true, y_pred, labels) -> dict[str, dict]:
        p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=None, zero_division=0)
        names = self.labels
        return {names[i]: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                for i in range(len(names))}

    def _averages(self, y_true, y_pred, scored) -> tuple[float, float]:
        micro = f1_score(y_true, y_pred, labels=scored, average="micro", zero_division=0)
        macro = f1_score(y_true, y_pred, labels=scored, average="macro", zero_division=0)
        return float(micro), float(macro)

    def _report(self, n, accuracy, micro, macro, per_label, confusion, unknown, extra) -> ClassificationReport:
        return ClassificationReport(
            task=self.task, multi_label=self.multi_label, labels=list(self.labels), n=n, accuracy=float(accuracy),
            micro_f1=micro, macro_f1=macro, per_label=per_label, confusion=confusion,
            extra={**extra, "ignore_labels": list(self.ignore_labels), "unknown_predictions": unknown},
        )

    def _single(self, y_true: list, y_pred: list, extra: dict) -> ClassificationReport:
        for what, values in (("y_true", y_true), ("y_pred", y_pred)):
            bad = next((i for i, v in enumerate(values) if not isinstance(v, str)), None)
            if bad is not None:
                raise ValueError(f"single-label {what}[{bad}] must be a label string, got {values[bad]!r}")
        known = set(self.labels)
        bad_true = sorted({v for v in y_true if v not in known})
        if bad_true:
            raise ValueError(f"y_true holds labels outside {self.labels}: {bad_true}")
        pred = [v if v in known else _UNKNOWN for v in y_pred]
        unknown = sum(v == _UNKNOWN for v in pred)
        per_label = self._per_label(y_true, pred, self.labels)
        micro, macro = self._averages(y_true, pred, self.scored)
        # Rows of samples predicted as unknown labels are dropped from the matrix (it is labels x labels).
        cm = confusion_matrix(y_true, pred, labels=self.labels)
        return self._report(len(y_true), accuracy_score(y_true, pred), micro, macro, per_label,
                            cm.astype(int).tolist(), unknown, extra)

    def _multi(self, y_true: list, y_pred: list, extra: dict) -> ClassificationReport:
        true_sets, pred_sets = _label_sets(y_true, "y_true"), _label_sets(y_pred, "y_pred")
        known = set(self.labels)
        bad_true = sorted(set().union(*true_sets) - known)
        if bad_true:
            raise ValueError(f"y_true holds labels outside {self.labels}: {bad_true}")
        unknown = sum(len(s - known) for s in pred_sets)
        pred_sets = [(s & known) | ({_UNKNOWN} if s - known else set()) for s in pred_sets]
        # The extra unknown column makes such predictions fail exact match; metrics skip it.
        mlb = MultiLabelBinarizer(classes=[*self.labels, _UNKNOWN])
        yt, yp = mlb.fit_transform(true_sets), mlb.transform(pred_sets)
        index = {label: i for i, label in enumerate(self.labels)}
        per_label = self._per_label(yt, yp, list(range(len(self.labels))))
        micro, macro = self._averages(yt, yp, [index[label] for label in self.scored])
        return self._report(len(y_true), accuracy_score(yt, yp), micro, macro, per_label, None, unknown, extra)


def _check_scores(scores, labels: Sequence[str]) -> np.ndarray:
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 2 or scores.shape[1] != len(labels):
        raise ValueError(f"scores must have shape (n, {len(labels)}) (one column per label), got {scores.shape}")
    return scores


def tune_thresholds(y_true: list[list[str]], scores, labels: Sequence[str], grid=None,
                    default: float = 0.5, min_labels: int = 0) -> dict[str, float]:
    """Per-label decision thresholds that maximise each label's F1 on validation data.

    Rare clause types need lower thresholds than frequent ones, so one global cut-off wastes
    recall. Ties (a plateau of equally good thresholds) resolve to the middle of the tied grid
    points, the choice least sensitive to score drift on new data. Labels without a positive
    example keep ``default``: there is nothing to tune them on.

    With ``min_labels`` (every text has that many labels: ``chosen_labels`` always gives its best
    ones) the thresholds decide only the labels beside those, and one threshold shared by all
    labels is tuned for the micro-F1 of that whole decision. Texts with more labels than the floor
    are few (12% of CUAD's training clauses), too few per label to tune 41 thresholds on: on 20
    random halvings of CUAD train by contract, out of fold, the shared threshold beat per-label
    ones in micro-F1 every time, in macro-F1 14 times (``scripts/compare-label-rules.py``).
    """
    labels = _check_labels(labels)
    scores = _check_scores(scores, labels)
    if len(y_true) != scores.shape[0]:
        raise ValueError(f"y_true has {len(y_true)} items but scores has {scores.shape[0]} rows")
    if not len(y_true):
        raise ValueError("nothing to tune on: y_true is empty")
    true_sets = _label_sets(y_true, "y_true")
    bad = sorted(set().union(*true_sets) - set(labels))
    if bad:
        raise ValueError(f"y_true holds labels outside {labels}: {bad}")
    grid = np.linspace(0.05, 0.95, 19) if grid is None else np.asarray(grid, dtype=float)
    if grid.ndim != 1 or not grid.size:
        raise ValueError("grid must be a non-empty 1-D sequence of thresholds")
    grid = np.sort(grid)
    yt = MultiLabelBinarizer(classes=labels).fit_transform(true_sets)
    if min_labels > 0:
        micro = np.array([f1_score(yt, chosen_labels(scores, np.full(len(labels), t), min_labels).astype(int),
                                   average="micro", zero_division=0) for t in grid])
        return dict.fromkeys(labels, _middle_of_best(grid, micro))
    # f1[g, j]: F1 of label j when thresholded at grid[g].
    f1 = np.stack([f1_score(yt, (scores >= t).astype(int), average=None, zero_division=0) for t in grid])
    out = {}
    for j, label in enumerate(labels):
        if not yt[:, j].any():
            out[label] = float(default)
            continue
        out[label] = _middle_of_best(grid, f1[:, j])
    return out


def _middle_of_best(grid: np.ndarray, f1: np.ndarray) -> float:
    """The grid point in the middle of those with the best F1 (a tied plateau resolves to its middle)."""
    best = np.flatnonzero(np.isclose(f1, f1.max()))
    return float(grid[best[len(best) // 2]])


def apply_thresholds(scores, labels: Sequence[str], thresholds: Mapping[str, float] | float,
                     min_labels: int = 0) -> list[list[str]]:
    """Label sets from scores: every label whose score reaches its threshold (``>=``), in
    ``labels`` order. ``thresholds`` is a per-label mapping or one number for all. With
    ``min_labels``, a text's that many highest-scoring labels are always among them (for data
    where every text has a label, such as contract clauses)."""
    labels = _check_labels(labels)
    scores = _check_scores(scores, labels)
    if isinstance(thresholds, Mapping):
        missing = [label for label in labels if label not in thresholds]
        if missing:
            raise ValueError(f"thresholds has no value for {missing}")
        cut = np.array([float(thresholds[label]) for label in labels])
    else:
        cut = np.full(len(labels), float(thresholds))
    hits = chosen_labels(scores, cut, min_labels)
    return [[labels[j] for j in np.flatnonzero(row)] for row in hits]


def weighted_metrics(gold: list, preds: list, labels: list[str], multi_label: bool,
                     weights: list[float]) -> dict[str, float]:
    """Accuracy and F1 with each validation example counted by its weight (scikit-learn's
    ``sample_weight``): examples annotators agreed on can count more in model selection."""
    if multi_label:
        binarizer = MultiLabelBinarizer(classes=labels)
        gold, preds, scored = binarizer.fit_transform(gold), binarizer.transform(preds), None
    else:
        scored = labels
    f1 = partial(f1_score, gold, preds, labels=scored, sample_weight=weights, zero_division=0)
    return {"weighted_accuracy": float(accuracy_score(gold, preds, sample_weight=weights)),
            "weighted_micro_f1": float(f1(average="micro")), "weighted_macro_f1": float(f1(average="macro"))}
