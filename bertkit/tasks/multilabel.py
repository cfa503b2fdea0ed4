"""Multi-label classification: one text -> any subset of the labels (topics, emotions, tags).

    bertkit finetune --task multilabel --model MODEL_DIR --train train.tsv --eval dev.tsv --output runs/topics

Labels are a list in jsonl/json (``"labels": ["sport", "politics"]``) or joined by
``--label-separator`` (default ``,``) in csv/tsv. One output per label, each trained with binary
cross-entropy on its logit (``problem_type`` "multi_label_classification"); a label is predicted
when its sigmoid reaches ``--threshold``. ``--tune-threshold`` picks the threshold that maximises
micro-F1 on ``--eval`` and saves it with the model, where predict and evaluate find it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bertkit.errors import BertkitError
from bertkit.metrics.classification import per_class_table
from bertkit.metrics.multilabel import best_threshold, multilabel_metrics
from bertkit.settings.options import opt
from bertkit.tasks.base import Task, label_head, share_agreeing
from bertkit.tasks.text import (
    TextColumns,
    TextExample,
    check_known_labels,
    encode_texts,
    file_of,
    read_text_examples,
    text_record,
)

LABEL_SET_COLUMNS = ("labels", "label", "tags", "categories", "target")


@dataclass
class MultilabelOptions(TextColumns):
    """Multi-label's own flags; predict and evaluate take the saved (or tuned) ones unless given."""

    label_separator: str = opt(
        ",", "Multi-label, csv/tsv: the character that joins the labels of a record.", saved=True
    )
    threshold: float = opt(
        0.5,
        "Multi-label: a label is predicted when its probability reaches this (predict, "
        "evaluate: the tuned or trained one).",
        saved=True,
    )
    tune_threshold: bool = opt(
        False,
        "Multi-label: pick the threshold that maximises micro-F1 on --eval and save it "
        "with the model (predict and evaluate use it).",
        commands=("finetune",),
    )
    allow_empty_labels: bool = opt(
        False, "Multi-label: a record may have no label at all (else an empty label list is an error).", saved=True
    )

    def __post_init__(self) -> None:
        if not 0 < self.threshold <= 1:
            raise BertkitError(f"--threshold is {self.threshold}; give a probability above 0, at most 1")
        if not self.label_separator:
            raise BertkitError("--label-separator is empty; give the character that joins the labels, e.g. ','")


@dataclass
class MultilabelTask(Task):
    name: str = "multilabel"
    options_type: type = MultilabelOptions

    def read(self, path: Path, options: MultilabelOptions, labelled: bool) -> list[TextExample]:
        def parse(value: Any, where: str, column: str) -> list[str]:
            return parse_label_set(value, where, column, options)

        return read_text_examples(path, options, labelled, parse, label_columns=LABEL_SET_COLUMNS)

    def label_names(self, examples: list[TextExample]) -> list[str]:
        names = sorted({label for example in examples for label in example.label})
        if len(names) < 2:
            raise BertkitError(
                f"{file_of(examples[0].where)}: {len(names)} distinct label(s) in the training data; "
                "multi-label classification needs at least two (wrong --label-separator?)"
            )
        return names

    def check_labels(self, examples: list[TextExample], labels: list[str]) -> None:
        check_known_labels(examples, labels, lambda label_set: label_set)

    def head_config(self, labels: list[str]) -> dict:
        return label_head(labels, "multi_label_classification")

    def main_metric(self, labels: list[str]) -> str:
        return "micro_f1"

    def encode(
        self,
        examples: list[TextExample],
        tokenizer,
        max_length: int,
        label2id: dict[str, int] | None,
        options: MultilabelOptions,
    ) -> tuple[list[dict], int]:
        def multi_hot(example: TextExample) -> np.ndarray:  # an array: one row per example, never padded
            row = np.zeros(len(label2id), dtype=np.float32)
            row[[label2id[label] for label in example.label]] = 1.0
            return row

        return encode_texts(examples, tokenizer, max_length, multi_hot if label2id is not None else None)

    def decode(
        self,
        examples: list[TextExample],
        features: list[dict],
        outputs: Iterable[tuple[int, dict]],
        labels: list[str],
        options: MultilabelOptions,
    ) -> list[dict]:
        """Each label's sigmoid; the labels at or above --threshold, most probable first."""
        probabilities = np.zeros((len(examples), len(labels)), dtype=np.float64)
        for feature_index, output in outputs:
            probabilities[features[feature_index]["index"]] = 1 / (1 + np.exp(-output["logits"].astype(np.float64)))
        predictions = []
        for row in probabilities:
            chosen = [labels[i] for i in np.argsort(-row, kind="stable") if row[i] >= options.threshold]
            predictions.append({"labels": chosen, "probabilities": dict(zip(labels, map(float, row)))})
        return predictions

    def metrics(self, examples: list[TextExample], predictions: list[dict], labels: list[str]) -> dict:
        """Micro/macro/samples F1 and exact match at the threshold used, and the micro-F1-best threshold."""
        gold = [example.label for example in examples]
        metrics = multilabel_metrics(gold, [p["labels"] for p in predictions], labels)
        probabilities = np.array([[p["probabilities"][label] for label in labels] for p in predictions])
        metrics["best_threshold"], metrics["best_micro_f1"] = best_threshold(gold, probabilities, labels)
        return metrics

    def metrics_table(self, metrics: dict):
        return per_class_table(metrics, title="Per label")

    def prediction_record(self, example: TextExample, prediction: dict) -> dict:
        return {
            **text_record(example),
            "labels": prediction["labels"],
            "probabilities": {name: round(p, 6) for name, p in prediction["probabilities"].items()},
        }

    def agreement(self, reference: list[dict], other: list[dict]) -> dict:
        return share_agreeing(
            (set(a["labels"]) == set(b["labels"]) for a, b in zip(reference, other)), "inputs with the same label set"
        )

    def tuned_options(self, metrics: dict, options: MultilabelOptions) -> dict:
        """With --tune-threshold, the micro-F1-best threshold is saved with the model for predict and evaluate."""
        if options.tune_threshold and "best_threshold" in metrics:
            return {"threshold": metrics["best_threshold"]}
        return {}


def parse_label_set(value: Any, where: str, column: str, options: MultilabelOptions) -> list[str]:
    """A list (jsonl/json) or a string joined by --label-separator -> the distinct labels, in order."""
    if isinstance(value, list):
        if any(isinstance(item, (dict, list)) or item is None for item in value):
            raise BertkitError(f"{where}: the labels ('{column}') must be a list of plain names")
        names = [str(item).strip() for item in value]
    elif isinstance(value, dict):
        raise BertkitError(f"{where}: the labels ('{column}') are not a list or text; give a list of names")
    else:
        names = [] if value is None else [part.strip() for part in str(value).split(options.label_separator)]
    names = list(dict.fromkeys(name for name in names if name))
    if not names and not options.allow_empty_labels:
        raise BertkitError(
            f"{where}: no label in '{column}'; give at least one (joined by '{options.label_separator}'"
            "), or pass --allow-empty-labels if records may have none"
        )
    return names


MULTILABEL = MultilabelTask()
