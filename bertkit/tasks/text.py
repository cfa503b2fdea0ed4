"""What the text tasks share (classification, NLI, regression, multi-label): one or two texts per record
in csv/tsv/jsonl/json/txt, found by column name, and their tokenization.

The input is ``[CLS] text [SEP]`` or ``[CLS] A [SEP] B [SEP]`` with segment ids 0/1; the head reads
one vector per text (the ``[CLS]`` vector, or the mean under ``--pooling mean``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from bertkit.data.readers import pick_column, read_table
from bertkit.errors import BertkitError
from bertkit.settings.options import opt

TEXT_COLUMNS = ("text", "sentence", "sentence1", "premise", "question", "review", "content", "document")
TEXT_ROLES = ("text", "second text")  # field_text roles that must be strings (labels may be numbers)
PAIR_COLUMNS = ("text_pair", "sentence2", "hypothesis", "question2", "answer")
LABEL_COLUMNS = ("label", "labels", "gold_label", "class", "category", "target")


@dataclass
class TextColumns:
    """Where the texts and labels are in a table (each invocation gives its own: never saved with the model)."""

    text_column: Optional[str] = opt(None, "Column holding the text (default: detected, e.g. text, sentence, premise).")
    text_pair_column: Optional[str] = opt(
        None, "Column holding the second text of a pair (default: detected, e.g. hypothesis)."
    )
    label_column: Optional[str] = opt(
        None, "Column holding the label (default: detected, e.g. label, score).", commands=("finetune", "evaluate")
    )


@dataclass
class TextExample:
    text: str
    text_pair: str | None
    label: Any  # str (classification), float (regression), list[str] (multi-label); None when unlabelled
    where: str


# Turns a record's label value into the task's label: (value, where, column) -> label.
LabelParser = Callable[[Any, str, str], Any]


def read_text_examples(
    path: Path,
    columns: TextColumns,
    labelled: bool,
    parse_label: LabelParser,
    pair_required: bool = False,
    label_columns: tuple[str, ...] = LABEL_COLUMNS,
) -> list[TextExample]:
    """Read examples, finding the text, pair and label columns; a bad record is a one-line error naming it."""
    table = read_table(path)
    make = text_examples(table, columns, labelled, parse_label, pair_required, label_columns)
    return make(zip(table.records, table.where))


def stream_text_examples(
    path: Path,
    columns: TextColumns,
    labelled: bool,
    parse_label: LabelParser,
    folder: Path,
    pair_required: bool = False,
    label_columns: tuple[str, ...] = LABEL_COLUMNS,
):
    """`read_text_examples` as a `StreamedExamples` over the file's records in Arrow (--cache-encoded)."""
    from bertkit.data.streaming import StreamedExamples, open_rows

    rows = open_rows(path, folder)
    return StreamedExamples(rows, text_examples(rows, columns, labelled, parse_label, pair_required, label_columns))


def text_examples(
    table,
    columns: TextColumns,
    labelled: bool,
    parse_label: LabelParser,
    pair_required: bool,
    label_columns: tuple[str, ...],
) -> Callable[[Iterable[tuple[dict, str]]], list[TextExample]]:
    """(record, where) pairs -> examples, with the columns found in `table` (its `path` and `columns`)."""
    text_col = pick_column(table, columns.text_column, TEXT_COLUMNS, "text", "--text-column")
    pair_col = pick_column(
        table, columns.text_pair_column, PAIR_COLUMNS, "second text", "--text-pair-column", required=pair_required
    )
    label_col = pick_column(table, columns.label_column, label_columns, "label", "--label-column") if labelled else None

    def make(records: Iterable[tuple[dict, str]]) -> list[TextExample]:
        examples = []
        for record, where in records:
            text = field_text(record, text_col, where, "text")
            pair = field_text(record, pair_col, where, "second text") if pair_col else None
            label = parse_label(record.get(label_col), where, label_col) if label_col else None
            examples.append(TextExample(text, pair, label, where))
        return examples

    return make


def field_text(record: dict, column: str, where: str, role: str) -> str:
    value = record.get(column)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise BertkitError(f"{where}: the {role} ('{column}') is empty; fill it in or drop the record")
    if isinstance(value, (dict, list)):
        raise BertkitError(f"{where}: the {role} ('{column}') is not a plain value; give text")
    if role in TEXT_ROLES and not isinstance(value, str):  # a number in jsonl is not text the user wrote
        raise BertkitError(f"{where}: the {role} ('{column}') is not text but {type(value).__name__}; give a string")
    return str(value).strip()


def plain_label(value: Any, where: str, column: str) -> str:
    """A label as it is written (classification): any plain value, as text."""
    return field_text({column: value}, column, where, "label")


def check_known_labels(examples: list[TextExample], labels: list[str], labels_of: Callable[[Any], list]) -> None:
    """Every label of every example (`labels_of(example.label)`) is one the model knows, or a one-line error."""
    known = set(labels)
    for example in examples:
        for label in labels_of(example.label):
            if label not in known:
                raise BertkitError(
                    f"{example.where}: label '{label}' was not in the training data "
                    f"(labels: {', '.join(labels)}); fix or drop the record"
                )


def file_of(where: str) -> str:
    """'train.tsv line 3' -> 'train.tsv'."""
    return where.rsplit(" line ", 1)[0].rsplit(" record ", 1)[0]


def encode_texts(
    examples: list[TextExample], tokenizer, max_length: int, label_of: Callable[[TextExample], Any] | None
) -> tuple[list[dict], int]:
    """Tokenize in one batch call; `label_of` (None: unlabelled) gives each feature's `labels`.

    Returns the features and how many inputs were truncated.
    """
    texts = [example.text for example in examples]
    pairs = [example.text_pair or "" for example in examples] if any(e.text_pair for e in examples) else None
    encoded = dict(tokenizer(texts, pairs, truncation=False, verbose=False))
    # Only the few over-long inputs are encoded again, with truncation (longest text first).
    too_long = [i for i, ids in enumerate(encoded["input_ids"]) if len(ids) > max_length]
    if too_long:
        cut = tokenizer(
            [texts[i] for i in too_long],
            [pairs[i] for i in too_long] if pairs else None,
            truncation=True,
            max_length=max_length,
        )
        for position, index in enumerate(too_long):
            for key in encoded:
                encoded[key][index] = cut[key][position]
    features = []
    for index, example in enumerate(examples):
        feature: dict[str, Any] = {"input_ids": encoded["input_ids"][index], "index": index}
        if "token_type_ids" in encoded:
            feature["token_type_ids"] = encoded["token_type_ids"][index]
        if label_of is not None and example.label is not None:
            feature["labels"] = label_of(example)
        features.append(feature)
    return features, len(too_long)


def text_record(example: TextExample) -> dict:
    """The inputs of a prediction record: the text and, for pairs, the second text."""
    record = {"text": example.text}
    if example.text_pair is not None:
        record["text_pair"] = example.text_pair
    return record


def softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits.astype(np.float64) - logits.max())
    return exp / exp.sum()
