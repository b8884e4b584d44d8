"""finetune.linear_head: a scikit-learn logistic regression kept as (weight, bias) scores exactly as
scikit-learn does, labels in the run's order whatever order sklearn kept them in."""

import numpy as np
import pytest

from finetune.linear_head import fit_logistic, head_probs, head_weights


@pytest.mark.parametrize("labels", [["positive", "negative"], ["neutral", "positive", "negative"]])
def test_single_label_heads_give_sklearns_probabilities_in_label_order(labels):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 5))
    y = np.array(labels)[(x[:, 0] > 0).astype(int) + (len(labels) == 3) * (x[:, 1] > 1)]
    clf = fit_logistic(x, y, 1.0, multi_label=False)
    weight, bias = head_weights(clf, labels, 5, multi_label=False)
    ours = head_probs(x, weight, bias, multi_label=False)
    theirs = clf.predict_proba(x)[:, [list(clf.classes_).index(label) for label in labels]]
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_multi_label_heads_with_weights_and_a_label_never_seen():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 4))
    y = np.stack([x[:, 0] > 0, x[:, 1] > 0.5, np.zeros(300, dtype=bool)], 1).astype(int)
    weights = np.where(x[:, 2] > 0, 3.0, 1.0)
    clf = fit_logistic(x, y, 1.0, multi_label=True, weights=weights, solver="liblinear")
    weight, bias = head_weights(clf, ["a", "b", "never"], 4, multi_label=True)
    probs = head_probs(x, weight, bias, multi_label=True)
    np.testing.assert_allclose(probs[:, :2], clf.predict_proba(x)[:, :2], atol=1e-5)
    assert (probs[:, 2] < 1e-10).all()
    unweighted = head_weights(fit_logistic(x, y, 1.0, multi_label=True, solver="liblinear"), list("abc"), 4, True)
    assert not np.allclose(unweighted[0], weight)  # the weights reached the per-label fits
