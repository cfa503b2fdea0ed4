"""Accuracy, macro-F1 and per-class precision/recall/F1, computed locally."""

from __future__ import annotations

from rich.table import Table


def classification_metrics(gold: list[str], predicted: list[str], labels: list[str]) -> dict:
    """Fractions from 0 to 1; a class never predicted and never gold scores 0 and is left out of the macro mean."""
    correct = sum(g == p for g, p in zip(gold, predicted))
    per_class = {}
    for label in labels:
        true_positive = sum(g == label and p == label for g, p in zip(gold, predicted))
        predicted_count = sum(p == label for p in predicted)
        gold_count = sum(g == label for g in gold)
        precision = true_positive / predicted_count if predicted_count else 0.0
        recall = true_positive / gold_count if gold_count else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": gold_count}
    present = [label for label in labels if per_class[label]["support"] or any(p == label for p in predicted)]
    macro_f1 = sum(per_class[label]["f1"] for label in present) / len(present) if present else 0.0
    return {"accuracy": correct / len(gold) if gold else 0.0, "macro_f1": macro_f1, "per_class": per_class}


def per_class_table(metrics: dict, title: str = "Per class", first_column: str = "label") -> Table:
    """A precision/recall/F1/support table of `metrics["per_class"]` (also used for tags and entity types)."""
    table = Table(title=title, title_justify="left")
    for column in (first_column, "precision", "recall", "f1", "support"):
        table.add_column(column, justify="left" if column == first_column else "right")
    for label, row in metrics["per_class"].items():
        table.add_row(label, f"{row['precision']:.4f}", f"{row['recall']:.4f}", f"{row['f1']:.4f}", str(row["support"]))
    return table
