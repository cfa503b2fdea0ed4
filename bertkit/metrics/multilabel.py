"""Multi-label scores from label sets: micro/macro/samples F1, exact match, per-label counts, and the
threshold that maximises micro-F1 (all fractions 0-1, computed locally)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def multilabel_metrics(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]], labels: list[str]) -> dict:
    gold_hot, predicted_hot = one_hot(gold, labels), one_hot(predicted, labels)
    true_positive = (gold_hot & predicted_hot).sum(axis=0)
    gold_count, predicted_count = gold_hot.sum(axis=0), predicted_hot.sum(axis=0)
    per_class = {}
    for i, label in enumerate(labels):
        precision = true_positive[i] / predicted_count[i] if predicted_count[i] else 0.0
        recall = true_positive[i] / gold_count[i] if gold_count[i] else 0.0
        per_class[label] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": f1(true_positive[i], predicted_count[i], gold_count[i]),
            "support": int(gold_count[i]),
        }
    present = [label for i, label in enumerate(labels) if gold_count[i] or predicted_count[i]]
    row_true = (gold_hot & predicted_hot).sum(axis=1)
    # An example with no gold and no predicted label is fully right (F1 1), as scikit-learn's zero_division=1.
    samples = [
        1.0 if not g and not p else f1(t, p, g)
        for t, p, g in zip(row_true, predicted_hot.sum(axis=1), gold_hot.sum(axis=1))
    ]
    return {
        "micro_f1": f1(true_positive.sum(), predicted_count.sum(), gold_count.sum()),
        "macro_f1": sum(per_class[label]["f1"] for label in present) / len(present) if present else 0.0,
        "samples_f1": float(np.mean(samples)) if samples else 0.0,
        "exact_match": float(np.mean((gold_hot == predicted_hot).all(axis=1))) if len(gold_hot) else 0.0,
        "per_class": per_class,
    }


def best_threshold(gold: Sequence[Sequence[str]], probabilities: np.ndarray, labels: list[str]) -> tuple[float, float]:
    """(threshold, micro-F1) maximising micro-F1 over the distinct probabilities (ties: the higher threshold)."""
    gold_hot = one_hot(gold, labels).ravel()
    scores = probabilities.ravel()
    order = np.argsort(-scores, kind="stable")
    hits = np.cumsum(gold_hot[order])  # true positives when the k highest scores are predicted
    predicted = np.arange(1, len(order) + 1)
    f1s = 2 * hits / (predicted + gold_hot.sum())
    # Only cut where the next score differs: equal scores are all predicted or none.
    sorted_scores = scores[order]
    cuts = np.append(sorted_scores[:-1] != sorted_scores[1:], True)
    best = int(np.argmax(np.where(cuts, f1s, -1.0)))
    return float(sorted_scores[best]), float(f1s[best])


def best_label_thresholds(
    gold: Sequence[Sequence[str]], probabilities: np.ndarray, labels: list[str]
) -> tuple[dict[str, float], float]:
    """Each label's F1-best threshold (`best_threshold` on its column) and the macro-F1 they give together.

    A label never gold in these examples gets no threshold (its F1 is 0 at any): the global one stays for it.
    """
    thresholds = {}
    for i, label in enumerate(labels):
        column = [[label] if label in names else [] for names in gold]
        if any(column):
            thresholds[label] = best_threshold(column, probabilities[:, [i]], [label])[0]
    cut = np.array([thresholds.get(label, 1.0 + 1e-9) for label in labels])  # no threshold: never predicted
    predicted = [[label for label, hit in zip(labels, row) if hit] for row in probabilities >= cut]
    return thresholds, multilabel_metrics(gold, predicted, labels)["macro_f1"]


def one_hot(sets: Sequence[Sequence[str]], labels: list[str]) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    hot = np.zeros((len(sets), len(labels)), dtype=bool)
    for row, names in enumerate(sets):
        for name in names:
            hot[row, index[name]] = True
    return hot


def f1(true_positive: float, predicted: float, gold: float) -> float:
    return float(2 * true_positive / (predicted + gold)) if predicted + gold else 0.0
