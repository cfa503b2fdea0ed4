"""Pearson and Spearman correlation and mean squared error, computed locally (numpy only)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def regression_metrics(gold: Sequence[float], predicted: Sequence[float]) -> dict:
    """Correlations as fractions (-1 to 1); a constant side has no correlation and scores 0."""
    gold_array, predicted_array = np.asarray(gold, dtype=np.float64), np.asarray(predicted, dtype=np.float64)
    mse = float(np.mean((gold_array - predicted_array) ** 2)) if len(gold_array) else 0.0
    return {
        "pearson": pearson(gold_array, predicted_array),
        "spearman": pearson(ranks(gold_array), ranks(predicted_array)),
        "mse": mse,
    }


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their average rank (as Spearman's coefficient needs)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    result = np.empty(len(values), dtype=np.float64)
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and ordered[end + 1] == ordered[start]:
            end += 1
        result[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return result
