"""Multi-label classification: one text -> any subset of the labels (topics, emotions, tags).

    bertkit finetune --task multilabel --model MODEL_DIR --train train.tsv --eval dev.tsv --output runs/topics

Labels are a list in jsonl/json (``"labels": ["sport", "politics"]``) or joined by
``--label-separator`` (default ``,``) in csv/tsv. One output per label, each trained with binary
cross-entropy on its logit (``problem_type`` "multi_label_classification"); a label is predicted
when its sigmoid reaches ``--threshold`` (or its own threshold in ``--label-thresholds``).
``--tune-threshold global`` picks the one threshold that maximises micro-F1 on ``--eval``;
``--tune-threshold per-label`` one threshold per label, each maximising that label's F1 (so macro-F1);
either is saved with the model, where predict and evaluate find it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bertkit.errors import BertkitError
from bertkit.metrics.classification import per_class_table
from bertkit.metrics.multilabel import best_label_thresholds, best_threshold, multilabel_metrics
from bertkit.settings.options import opt
from bertkit.tasks.base import Task, label_head, share_agreeing
from bertkit.tasks.long_inputs import ClassifierOptions, encode_long_texts, pooled_logits
from bertkit.tasks.text import TextExample, check_known_labels, file_of, read_text_examples, text_record

LABEL_SET_COLUMNS = ("labels", "label", "tags", "categories", "target")
TUNINGS = ("no", "global", "per-label")


@dataclass
class MultilabelOptions(ClassifierOptions):
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
    tune_threshold: str = opt(
        "no",
        "Multi-label: tune on --eval and save with the model (predict and evaluate use it): global (the "
        "threshold that maximises micro-F1) or per-label (each label's F1-best threshold, as macro-F1 needs).",
        choices=TUNINGS,
        commands=("finetune",),
    )
    label_thresholds: str = opt(
        "",
        "Multi-label: thresholds of single labels as a JSON object, e.g. '{\"joy\": 0.3}' (the others use "
        "--threshold; predict, evaluate: the tuned ones).",
        saved=True,
    )
    allow_empty_labels: bool = opt(
        False, "Multi-label: a record may have no label at all (else an empty label list is an error).", saved=True
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.tune_threshold, bool):  # a config file or caller of before per-label thresholds
            self.tune_threshold = "global" if self.tune_threshold else "no"
        if self.tune_threshold not in TUNINGS:
            raise BertkitError(f"--tune-threshold is '{self.tune_threshold}'; choose one of: {', '.join(TUNINGS)}")
        self.per_label_threshold()  # checked here, before any work
        if not 0 < self.threshold <= 1:
            raise BertkitError(f"--threshold is {self.threshold}; give a probability above 0, at most 1")
        if not self.label_separator:
            raise BertkitError("--label-separator is empty; give the character that joins the labels, e.g. ','")

    def per_label_threshold(self) -> dict[str, float]:
        """--label-thresholds as {label: threshold}."""
        if not self.label_thresholds:
            return {}
        try:
            given = json.loads(self.label_thresholds)
        except json.JSONDecodeError:
            given = None
        if not isinstance(given, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 1 for v in given.values()
        ):
            raise BertkitError(
                f"--label-thresholds is '{self.label_thresholds}'; give a JSON object of probabilities above 0, "
                "at most 1, e.g. '{\"joy\": 0.3}'"
            )
        return {str(label): float(value) for label, value in given.items()}


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

        return encode_long_texts(examples, tokenizer, max_length, multi_hot if label2id is not None else None, options)

    def decode(
        self,
        examples: list[TextExample],
        features: list[dict],
        outputs: Iterable[tuple[int, dict]],
        labels: list[str],
        options: MultilabelOptions,
    ) -> list[dict]:
        """Each label's sigmoid (of logits pooled over windows); the labels at or above their threshold
        (--label-thresholds, else --threshold), most probable first."""
        probabilities = 1 / (1 + np.exp(-pooled_logits(len(examples), features, outputs, options.window_pool)))
        own = options.per_label_threshold()
        thresholds = np.array([own.get(label, options.threshold) for label in labels])
        predictions = []
        for row in probabilities.reshape(len(examples), len(labels)):
            chosen = [labels[i] for i in np.argsort(-row, kind="stable") if row[i] >= thresholds[i]]
            predictions.append({"labels": chosen, "probabilities": dict(zip(labels, map(float, row)))})
        return predictions

    def metrics(self, examples: list[TextExample], predictions: list[dict], labels: list[str]) -> dict:
        """Micro/macro/samples F1 and exact match at the thresholds used, the micro-F1-best threshold, and each
        label's F1-best threshold with the macro-F1 they give."""
        gold = [example.label for example in examples]
        metrics = multilabel_metrics(gold, [p["labels"] for p in predictions], labels)
        probabilities = np.array([[p["probabilities"][label] for label in labels] for p in predictions])
        metrics["best_threshold"], metrics["best_micro_f1"] = best_threshold(gold, probabilities, labels)
        metrics["best_label_thresholds"], metrics["best_label_macro_f1"] = best_label_thresholds(
            gold, probabilities, labels
        )
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
        """With --tune-threshold, the micro-F1-best threshold (global) or each label's F1-best one (per-label) is
        saved with the model for predict and evaluate."""
        if options.tune_threshold == "global" and "best_threshold" in metrics:
            return {"threshold": metrics["best_threshold"]}
        if options.tune_threshold == "per-label" and "best_label_thresholds" in metrics:
            return {"label_thresholds": json.dumps(metrics["best_label_thresholds"])}
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
