"""Turning start/end logits into answers: pure functions over numpy arrays, no torch.

Per window, `window_candidates` keeps the n best (start, end) pairs with start <= end, both
inside the passage, at most `max_answer_length` tokens, whose start token has its most
context in this window; the window's logits can be dropped right after. Per question,
`combine` merges its windows' candidates into the n-best list and the answer (text cut from
the passage between character offsets). With `allow_null` (SQuAD v2.0), ``[CLS]`` is the
null answer: its score is the lowest ``start[0] + end[0]`` over the windows, and the
question gets "no answer" when that beats the best span by more than `null_threshold`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Span:
    score: float  # start logit + end logit
    start: int  # character offsets into the passage
    end: int
    start_logit: float
    end_logit: float


@dataclass
class WindowResult:
    spans: list[Span]
    null_score: float  # start_logits[0] + end_logits[0]: the [CLS] "no answer" score


def window_candidates(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    passage_start: int,
    offsets: Sequence[tuple[int, int]],
    max_context: Sequence[bool],
    n_best: int,
    max_answer_length: int,
) -> WindowResult:
    """The best valid spans of one window (at most `n_best`), best first."""
    count = len(offsets)
    starts = np.asarray(start_logits[passage_start : passage_start + count], dtype=np.float64)
    ends = np.asarray(end_logits[passage_start : passage_start + count], dtype=np.float64)
    spans = []
    for i in np.argsort(-starts, kind="stable")[:n_best]:
        if not max_context[i]:
            continue
        for j in np.argsort(-ends, kind="stable")[:n_best]:
            if j < i or j - i + 1 > max_answer_length:
                continue
            spans.append(
                Span(
                    float(starts[i] + ends[j]), int(offsets[i][0]), int(offsets[j][1]), float(starts[i]), float(ends[j])
                )
            )
    spans.sort(key=lambda span: -span.score)
    return WindowResult(spans[:n_best], float(start_logits[0] + end_logits[0]))


def combine(
    context: str, windows: Sequence[WindowResult], n_best: int, allow_null: bool, null_threshold: float
) -> dict:
    """One question's prediction from its windows' results.

    Returns ``answer`` (text, "" for no answer), ``start``/``end`` (character offsets, -1 for no
    answer), ``score``, ``null_odds`` (null score minus best span score; None without allow_null),
    ``span`` (the best non-null answer, kept so a threshold can be tuned later) and ``nbest``
    (text, score, probability, start, end; probabilities by softmax over the list).
    """
    spans = sorted((span for window in windows for span in window.spans), key=lambda span: -span.score)[:n_best]
    entries = [{"text": context[s.start : s.end], "score": s.score, "start": s.start, "end": s.end} for s in spans]
    best = entries[0] if entries else {"text": "", "score": -math.inf, "start": -1, "end": -1}
    null_score = null_odds = None
    if allow_null:
        null_score = min(window.null_score for window in windows)
        entries.append({"text": "", "score": null_score, "start": -1, "end": -1})
        entries.sort(key=lambda entry: -entry["score"])
        null_odds = null_score - best["score"] if spans else math.inf
    _add_probabilities(entries)
    prediction = {"null_score": null_score, "null_odds": null_odds, "span": best, "nbest": entries}
    return with_threshold(prediction, null_threshold)


def with_threshold(prediction: dict, null_threshold: float) -> dict:
    """The prediction under a null threshold: "no answer" when null_odds > threshold, else the best span."""
    odds = prediction["null_odds"]
    if odds is not None and odds > null_threshold:
        return {**prediction, "answer": "", "start": -1, "end": -1, "score": prediction["null_score"]}
    span = prediction["span"]
    return {**prediction, "answer": span["text"], "start": span["start"], "end": span["end"], "score": span["score"]}


def _add_probabilities(entries: list[dict]) -> None:
    if not entries:
        return
    scores = np.array([entry["score"] for entry in entries], dtype=np.float64)
    exp = np.exp(scores - scores.max())
    for entry, probability in zip(entries, exp / exp.sum()):
        entry["probability"] = float(probability)
