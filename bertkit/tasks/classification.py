"""Sequence classification (one text -> one label) and sentence-pair NLI (two texts -> one label).

The input is ``[CLS] text [SEP]`` or ``[CLS] A [SEP] B [SEP]`` with segment ids 0/1; a linear
head reads the ``[CLS]`` vector (``BertForSequenceClassification``), so the saved model loads
in ``transformers.pipeline("text-classification")``. NLI is this task with the pair required.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from bertkit.data.readers import pick_column, read_table
from bertkit.errors import BertkitError
from bertkit.metrics.classification import classification_metrics, per_class_table

TEXT_COLUMNS = ("text", "sentence", "sentence1", "premise", "question", "review", "content", "document")
PAIR_COLUMNS = ("text_pair", "sentence2", "hypothesis", "question2", "answer")
LABEL_COLUMNS = ("label", "labels", "gold_label", "class", "category", "target")


@dataclass
class TextExample:
    text: str
    text_pair: str | None
    label: str | None
    where: str


@dataclass
class ClassificationTask:
    name: str = "classification"
    pair_required: bool = False
    main_metric: str = "accuracy"
    auto_model: str = "AutoModelForSequenceClassification"
    pipeline_name: str = "text-classification"

    def read(self, path, settings, labelled: bool) -> list[TextExample]:
        """Read examples from csv/tsv/jsonl/json/txt, finding the text, pair and label columns."""
        table = read_table(path)
        text_col = pick_column(table, settings.text_column, TEXT_COLUMNS, "text", "--text-column")
        pair_col = pick_column(table, getattr(settings, "text_pair_column", None), PAIR_COLUMNS, "second text",
                               "--text-pair-column", required=self.pair_required)
        label_col = None
        if labelled:
            label_col = pick_column(table, getattr(settings, "label_column", None), LABEL_COLUMNS, "label", "--label-column")
        examples = []
        for record, where in zip(table.records, table.where):
            text = _field_text(record, text_col, where, "text")
            pair = _field_text(record, pair_col, where, "second text") if pair_col else None
            label = _field_text(record, label_col, where, "label") if label_col else None
            examples.append(TextExample(text, pair, label, where))
        return examples

    def label_names(self, examples: list[TextExample]) -> list[str]:
        """The label set of a training file: numbers in numeric order, other names sorted."""
        names = {example.label for example in examples}
        if len(names) < 2:
            raise BertkitError(f"{examples[0].where.rsplit(' ', 2)[0]}: only one label ({next(iter(names))}) in the "
                               "training data; a classifier needs at least two")
        numeric = all(name.lstrip("-").isdigit() for name in names)
        return sorted(names, key=int) if numeric else sorted(names)

    def check_labels(self, examples: list[TextExample], labels: list[str]) -> None:
        known = set(labels)
        for example in examples:
            if example.label not in known:
                raise BertkitError(f"{example.where}: label '{example.label}' was not in the training data "
                                   f"(labels: {', '.join(labels)}); fix or drop the record")

    def encode(self, examples: list[TextExample], tokenizer, max_length: int, label2id: dict[str, int] | None,
               settings=None) -> tuple[list[dict], int]:
        """Tokenize in one batch call; returns the features and how many inputs were truncated."""
        texts = [example.text for example in examples]
        pairs = [example.text_pair or "" for example in examples] if any(e.text_pair for e in examples) else None
        encoded = dict(tokenizer(texts, pairs, truncation=False, verbose=False))
        # Only the few over-long inputs are encoded again, with truncation (longest text first).
        too_long = [i for i, ids in enumerate(encoded["input_ids"]) if len(ids) > max_length]
        if too_long:
            cut = tokenizer([texts[i] for i in too_long], [pairs[i] for i in too_long] if pairs else None,
                            truncation=True, max_length=max_length)
            for position, index in enumerate(too_long):
                for key in encoded:
                    encoded[key][index] = cut[key][position]
        features = []
        for index, example in enumerate(examples):
            feature: dict[str, Any] = {"input_ids": encoded["input_ids"][index], "index": index}
            if "token_type_ids" in encoded:
                feature["token_type_ids"] = encoded["token_type_ids"][index]
            if label2id is not None and example.label is not None:
                feature["labels"] = label2id[example.label]
            features.append(feature)
        return features, len(too_long)

    def decode(self, examples: list[TextExample], features: list[dict], outputs: Iterable[tuple[int, dict]],
               labels: list[str], settings=None) -> list[dict]:
        """Softmax over each example's logits; returns one prediction per example, in input order."""
        probabilities = np.zeros((len(examples), len(labels)), dtype=np.float32)
        for feature_index, output in outputs:
            logits = output["logits"].astype(np.float64)
            exp = np.exp(logits - logits.max())
            probabilities[features[feature_index]["index"]] = exp / exp.sum()
        return [{"label": labels[int(row.argmax())], "probabilities": dict(zip(labels, map(float, row)))}
                for row in probabilities]

    def metrics(self, examples: list[TextExample], predictions: list[dict], labels: list[str]) -> dict:
        return classification_metrics([e.label for e in examples], [p["label"] for p in predictions], labels)

    def prediction_record(self, example: TextExample, prediction: dict) -> dict:
        record = {"text": example.text}
        if example.text_pair is not None:
            record["text_pair"] = example.text_pair
        record["label"] = prediction["label"]
        record["probabilities"] = {name: round(p, 6) for name, p in prediction["probabilities"].items()}
        return record

    def metrics_table(self, metrics: dict):
        return per_class_table(metrics)


def _field_text(record: dict, column: str, where: str, role: str) -> str:
    value = record.get(column)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise BertkitError(f"{where}: the {role} ('{column}') is empty; fill it in or drop the record")
    if isinstance(value, (dict, list)):
        raise BertkitError(f"{where}: the {role} ('{column}') is not a plain value; give text")
    return str(value).strip()


CLASSIFICATION = ClassificationTask()
NLI = ClassificationTask(name="nli", pair_required=True)
