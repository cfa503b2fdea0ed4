"""SQuAD exact match and F1, as the official v1.1 and v2.0 evaluation scripts define them.

Answers are normalised (lower case, punctuation and the articles a/an/the removed, white
space collapsed); a prediction scores the maximum over its gold answers; the totals are
percentages (0-100), as the official scripts print them. The two versions differ only in
edge cases of empty answers: v2.0 scores an unanswerable question's gold answer as "" and
gives F1 1 when both sides normalise to nothing. For v2.0 the scores are also split into
HasAns / NoAns questions, and `best_null_threshold` finds the "no answer" threshold that
maximises F1 (the official script's ``best_f1_thresh``).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in PUNCTUATION)
    return " ".join(ARTICLES.sub(" ", text).split())


def exact_score(prediction: str, gold: str) -> int:
    return int(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str, version_2: bool = False) -> float:
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if version_2 and (not predicted or not expected):
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def gold_texts(answers: Sequence[str], version_2: bool) -> list[str]:
    """The gold answers as scored: v2.0 drops those that normalise to nothing, and "" stands for none."""
    if not version_2:
        return list(answers)
    kept = [text for text in answers if normalize_answer(text)]
    return kept or [""]


def question_scores(prediction: str, answers: Sequence[str], version_2: bool) -> tuple[int, float]:
    """(exact match, F1) of one prediction: the best over its gold answers."""
    golds = gold_texts(answers, version_2)
    if not golds:  # a v1.1 question without answers cannot be matched
        return 0, 0.0
    return (
        max(exact_score(prediction, gold) for gold in golds),
        max(f1_score(prediction, gold, version_2) for gold in golds),
    )


def squad_metrics(golds: Sequence[Sequence[str]], predictions: Sequence[str], version_2: bool) -> dict:
    """exact_match and f1 (0-100) over all questions; for v2.0 also has_ans_* and no_ans_*."""
    scores = [question_scores(p, g, version_2) for p, g in zip(predictions, golds)]
    metrics = _totals(scores, "")
    if version_2:
        has_answer = [bool(gold_texts(g, True)[0]) for g in golds]
        metrics.update(_totals([s for s, h in zip(scores, has_answer) if h], "has_ans_"))
        metrics.update(_totals([s for s, h in zip(scores, has_answer) if not h], "no_ans_"))
    return metrics


def _totals(scores: list[tuple[int, float]], prefix: str) -> dict:
    count = len(scores)
    return {
        f"{prefix}exact_match": 100.0 * sum(s[0] for s in scores) / count if count else 0.0,
        f"{prefix}f1": 100.0 * sum(s[1] for s in scores) / count if count else 0.0,
        f"{prefix}total": count,
    }


def best_null_threshold(
    golds: Sequence[Sequence[str]], spans: Sequence[str], null_odds: Sequence[float]
) -> tuple[float, float]:
    """The threshold on null odds that maximises v2.0 F1, and that F1 (0-100).

    Question i answers `spans[i]` when null_odds[i] <= threshold and "no answer" otherwise.
    Starting from "no answer" everywhere, questions switch to their span in order of rising
    odds; the best point of that walk is the threshold.
    """
    f1_null = [question_scores("", g, True)[1] for g in golds]
    gains = [question_scores(s, g, True)[1] - base for s, g, base in zip(spans, golds, f1_null)]
    order = sorted(range(len(golds)), key=lambda i: null_odds[i])
    current = best = sum(f1_null)
    threshold = min(null_odds, default=0.0) - 1.0
    for i in order:
        current += gains[i]
        if current > best:
            best, threshold = current, null_odds[i]
    return float(threshold), 100.0 * best / max(1, len(golds))
