"""Logistic-regression heads as plain tensors: fitted with scikit-learn, kept as (weight, bias) so a
run scores with a matrix product (``head_probs``; the assistant's loader does the same in torch) and
stores no pickled scikit-learn objects. Shared by the head-only fit (``finetune.train_head``) and the
probe an adapted encoder's head starts from (``finetune.adapt_encoder``)."""

from __future__ import annotations

import warnings

import numpy as np


def fit_logistic(x, y: np.ndarray, c: float, multi_label: bool, weights: np.ndarray | None = None, *,
                 solver: str = "lbfgs", class_weight: str | None = None, max_iter: int = 3000, seed: int = 0):
    """A fitted logistic regression of ``y`` (a 0/1 column per label, one-vs-rest, when ``multi_label``;
    class indices or names otherwise) on ``x``, each row weighted by ``weights``."""
    import joblib
    import sklearn
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    fit_params = {} if weights is None else {"sample_weight": weights}
    # Metadata routing is how scikit-learn passes sample weights through OneVsRestClassifier.
    # The per-label fits run in threads: liblinear releases the GIL and lbfgs spends its time in BLAS,
    # so they use every core; both solvers are deterministic, so the result does not depend on the order.
    with warnings.catch_warnings(), sklearn.config_context(enable_metadata_routing=True), \
            joblib.parallel_config(backend="threading"):
        warnings.filterwarnings("ignore", message="Label .* is present in all training examples")  # never, or always
        base = LogisticRegression(C=c, class_weight=class_weight, max_iter=max_iter, solver=solver, random_state=seed)
        base.set_fit_request(sample_weight=True)
        return (OneVsRestClassifier(base, n_jobs=-1) if multi_label else base).fit(x, y, **fit_params)


def head_weights(clf, labels: list, dim: int, multi_label: bool, constant: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """(weight (n_labels, dim), bias (n_labels,)) in ``labels`` order from ``fit_logistic``'s model.
    A label training never had (or, multi-label, always had) gets the bias -``constant`` (+``constant``)."""
    weight = np.zeros((len(labels), dim), dtype=np.float32)
    bias = np.full(len(labels), -constant, dtype=np.float32)
    if multi_label:
        for j, est in enumerate(clf.estimators_):
            if hasattr(est, "coef_"):
                weight[j], bias[j] = est.coef_[0], est.intercept_[0]
            else:  # a label that is always or never present: sklearn keeps a constant
                bias[j] = constant if float(np.ravel(est.predict(np.zeros((1, dim))))[0]) > 0.5 else -constant
        return weight, bias
    classes = list(clf.classes_)
    index = [labels.index(c) for c in classes]
    if len(classes) == 2:  # sklearn's binary model has one row: softmax([0, z]) == sigmoid(z)
        weight[index[0]], bias[index[0]] = 0.0, 0.0
        weight[index[1]], bias[index[1]] = clf.coef_[0], clf.intercept_[0]
    else:
        for row, j in enumerate(index):
            weight[j], bias[j] = clf.coef_[row], clf.intercept_[row]
    return weight, bias


def head_probs(x, weight: np.ndarray, bias: np.ndarray, multi_label: bool) -> np.ndarray:
    """Probabilities of the head (weight, bias) on the feature rows ``x`` (dense or sparse): a sigmoid
    per label (multi-label) or a softmax over them."""
    import torch

    logits = torch.from_numpy(np.asarray(x @ weight.T + bias, dtype=np.float32))
    return (torch.sigmoid(logits) if multi_label else torch.softmax(logits, dim=-1)).numpy()
