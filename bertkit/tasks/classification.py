"""Sequence classification (one text -> one label) and sentence-pair NLI (two texts -> one label).

    bertkit finetune --task classification --model MODEL_DIR --train train.tsv --eval dev.tsv --output runs/sentiment

A linear head reads the ``[CLS]`` vector (``BertForSequenceClassification``, softmax over the
labels, cross-entropy), so the saved model loads in ``transformers.pipeline("text-classification")``.
NLI is this task with the pair required.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bertkit.errors import BertkitError
from bertkit.metrics.classification import classification_metrics, per_class_table
from bertkit.tasks.base import Task, label_head, share_agreeing
from bertkit.tasks.long_inputs import ClassifierOptions, encode_long_texts, pooled_logits
from bertkit.tasks.text import (
    TextExample,
    check_known_labels,
    file_of,
    plain_label,
    read_text_examples,
    softmax,
    stream_text_examples,
    text_record,
)


@dataclass
class ClassificationTask(Task):
    name: str = "classification"
    pair_required: bool = False
    options_type: type = ClassifierOptions

    def read(self, path: Path, options: ClassifierOptions, labelled: bool) -> list[TextExample]:
        return read_text_examples(path, options, labelled, plain_label, pair_required=self.pair_required)

    def stream(self, path: Path, options: ClassifierOptions, labelled: bool, folder: Path):
        return stream_text_examples(path, options, labelled, plain_label, folder, pair_required=self.pair_required)

    def label_names(self, examples: list[TextExample]) -> list[str]:
        """The label set of a training file: numbers in numeric order, other names sorted."""
        names = {example.label for example in examples}
        if len(names) < 2:
            raise BertkitError(
                f"{file_of(examples[0].where)}: only one label ({next(iter(names))}) in the "
                "training data; a classifier needs at least two"
            )
        numeric = all(name.lstrip("-").isdigit() for name in names)
        return sorted(names, key=int) if numeric else sorted(names)

    def check_labels(self, examples: list[TextExample], labels: list[str]) -> None:
        check_known_labels(examples, labels, lambda label: [label])

    def head_config(self, labels: list[str]) -> dict:
        return label_head(labels, "single_label_classification")

    def main_metric(self, labels: list[str]) -> str:
        return "accuracy"

    def encode(
        self,
        examples: list[TextExample],
        tokenizer,
        max_length: int,
        label2id: dict[str, int] | None,
        options: ClassifierOptions,
    ) -> tuple[list[dict], int]:
        label_of = (lambda example: label2id[example.label]) if label2id is not None else None
        return encode_long_texts(examples, tokenizer, max_length, label_of, options)

    def decode(
        self,
        examples: list[TextExample],
        features: list[dict],
        outputs: Iterable[tuple[int, dict]],
        labels: list[str],
        options: ClassifierOptions,
    ) -> list[dict]:
        """Softmax over each example's logits (pooled over its windows); one prediction per example, in order."""
        pooled = pooled_logits(len(examples), features, outputs, options.window_pool)
        probabilities = np.array([softmax(row) for row in pooled], dtype=np.float32).reshape(len(examples), -1)
        return [
            {"label": labels[int(row.argmax())], "probabilities": dict(zip(labels, map(float, row)))}
            for row in probabilities
        ]

    def metrics(self, examples: list[TextExample], predictions: list[dict], labels: list[str]) -> dict:
        return classification_metrics([e.label for e in examples], [p["label"] for p in predictions], labels)

    def metrics_table(self, metrics: dict):
        return per_class_table(metrics)

    def input_record(self, number: int, text: str, other: str) -> dict:
        return {"text": text, "text_pair": other} if self.pair_required else {"text": text}

    def prediction_record(self, example: TextExample, prediction: dict) -> dict:
        return {
            **text_record(example),
            "label": prediction["label"],
            "probabilities": {name: round(p, 6) for name, p in prediction["probabilities"].items()},
        }

    def agreement(self, reference: list[dict], other: list[dict]) -> dict:
        return share_agreeing(
            (a["label"] == b["label"] for a, b in zip(reference, other)), "inputs with the same label"
        )


CLASSIFICATION = ClassificationTask()
NLI = ClassificationTask(name="nli", pair_required=True)
