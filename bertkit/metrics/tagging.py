"""Word-level tagging metrics: token accuracy, and entity precision/recall/F1 as seqeval scores them.

Entities are read from BIO/IOB2/BIOES tags exactly as ``seqeval`` does in its default
(non-strict) mode: an I- tag after O, or after a tag of another type, opens an entity; E-
and S- close one; micro-averaged precision and recall over (sentence, type, start, end).
Scores are always per word (one tag per word), never per WordPiece, so labelling every
piece in training cannot inflate them.

    >>> entity_spans(["B-PER", "I-PER", "O", "I-LOC"])
    [('PER', 0, 2), ('LOC', 3, 4)]
"""

from __future__ import annotations

from collections import Counter

from bertkit.metrics.classification import classification_metrics

ENTITY_PREFIXES = ("B-", "I-", "E-", "S-")


def is_entity_tagset(labels: list[str]) -> bool:
    """True for BIO/IOB2/BIOES tag sets: every tag is O or PREFIX-TYPE, with at least one typed tag."""
    typed = [label for label in labels if label != "O"]
    return bool(typed) and all(label.startswith(ENTITY_PREFIXES) and len(label) > 2 for label in typed)


def entity_spans(tags: list[str]) -> list[tuple[str, int, int]]:
    """(type, start, end) of the entities in one sentence's tags; `end` is exclusive."""
    spans = []
    previous_tag, previous_type, begin = "O", "", 0
    for position, label in enumerate(list(tags) + ["O"]):
        tag, kind = label[0], label[2:] if len(label) > 2 else "_"
        if _ends(previous_tag, tag, previous_type, kind):
            spans.append((previous_type, begin, position))
        if _starts(previous_tag, tag, previous_type, kind):
            begin = position
        previous_tag, previous_type = tag, kind
    return spans


def _ends(previous: str, tag: str, previous_type: str, kind: str) -> bool:
    # An entity ends before this word when it was closed (E, S), when a new one opens (B, S),
    # when O follows, or when the type changes.
    if previous in ("E", "S"):
        return True
    if previous in ("B", "I") and tag in ("B", "S", "O"):
        return True
    return previous not in ("O", ".") and previous_type != kind


def _starts(previous: str, tag: str, previous_type: str, kind: str) -> bool:
    # An entity starts at B or S, at an I or E that follows O or a closed entity, or where the type changes.
    if tag in ("B", "S"):
        return True
    if tag in ("I", "E") and previous in ("O", "E", "S"):
        return True
    return tag not in ("O", ".") and previous_type != kind


def entity_scores(gold: list[list[str]], predicted: list[list[str]]) -> dict:
    """Micro precision/recall/F1 over entities, and the same per entity type (with gold support)."""
    gold_spans = {(i, *span) for i, tags in enumerate(gold) for span in entity_spans(tags)}
    predicted_spans = {(i, *span) for i, tags in enumerate(predicted) for span in entity_spans(tags)}
    correct = gold_spans & predicted_spans
    overall = _prf(len(correct), len(predicted_spans), len(gold_spans))
    count = lambda spans: Counter(span[1] for span in spans)  # noqa: E731 - entity type counts
    gold_by, predicted_by, correct_by = count(gold_spans), count(predicted_spans), count(correct)
    per_type = {}
    for kind in sorted(set(gold_by) | set(predicted_by)):
        precision, recall, f1 = _prf(correct_by[kind], predicted_by[kind], gold_by[kind])
        per_type[kind] = {"precision": precision, "recall": recall, "f1": f1, "support": gold_by[kind]}
    return {"entity_precision": overall[0], "entity_recall": overall[1], "entity_f1": overall[2], "per_type": per_type}


def _prf(correct: int, predicted: int, gold: int) -> tuple[float, float, float]:
    precision = correct / predicted if predicted else 0.0
    recall = correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def tagging_metrics(gold: list[list[str]], predicted: list[list[str]], labels: list[str]) -> dict:
    """token_accuracy always; entity scores and `per_type` for entity tag sets, else `per_tag` scores."""
    flat_gold = [tag for tags in gold for tag in tags]
    flat_predicted = [tag for tags in predicted for tag in tags]
    if is_entity_tagset(labels):
        correct = sum(g == p for g, p in zip(flat_gold, flat_predicted))
        return {"token_accuracy": correct / len(flat_gold) if flat_gold else 0.0, **entity_scores(gold, predicted)}
    scores = classification_metrics(flat_gold, flat_predicted, labels)
    return {"token_accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"], "per_tag": scores["per_class"]}


def main_metric_for(labels: list[str]) -> str:
    """What picks the best checkpoint: entity F1 for entity tag sets, else token accuracy."""
    return "entity_f1" if is_entity_tagset(labels) else "token_accuracy"
