"""Regression: one or two texts -> a real number (similarity, rating, relatedness).

    bertkit finetune --task regression --model MODEL_DIR --train train.tsv --eval dev.tsv --output runs/sts

The label column (``score``, ``label``, ...) holds numbers. A linear head with one output reads
the ``[CLS]`` vector and trains on mean squared error (``problem_type`` "regression"), so the
saved model loads in ``transformers.pipeline("text-classification", function_to_apply="none")``.
Metrics: Pearson and Spearman correlation (fractions) and MSE; Spearman picks the best checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertkit.errors import BertkitError
from bertkit.metrics.regression import regression_metrics
from bertkit.tasks.base import Task, label_head, share_agreeing
from bertkit.tasks.long_inputs import LongTextOptions, encode_long_texts, pooled_logits
from bertkit.tasks.text import TextExample, read_text_examples, text_record

SCORE = "score"  # the name of the one output, as config.json's id2label and the pipeline show it
# Two scores agree when they differ by at most this share of the range of the reference scores (the
# scale the model predicts on these inputs: 0-5 for STS-B, 0-1 for a similarity), 5% by default.
AGREEMENT_TOLERANCE = 0.05
SCORE_COLUMNS = ("score", "label", "labels", "target", "similarity", "relatedness")


def parse_score(value: Any, where: str, column: str) -> float:
    """A finite number, or a one-line error naming the record."""
    if isinstance(value, bool) or isinstance(value, (dict, list)):
        number = math.nan
    else:
        try:
            number = float(str(value).strip()) if value is not None else math.nan
        except ValueError:
            number = math.nan
    if not math.isfinite(number):
        shown = "empty" if value is None or not str(value).strip() else f"'{value}', not a finite number"
        raise BertkitError(f"{where}: the score ('{column}') is {shown}; give a number or drop the record")
    return number


@dataclass
class RegressionTask(Task):
    name: str = "regression"
    options_type: type = LongTextOptions

    def read(self, path: Path, options: LongTextOptions, labelled: bool) -> list[TextExample]:
        return read_text_examples(path, options, labelled, parse_score, label_columns=SCORE_COLUMNS)

    def label_names(self, examples: list[TextExample]) -> list[str]:
        return [SCORE]

    def head_config(self, labels: list[str]) -> dict:
        return label_head([SCORE], "regression")

    def main_metric(self, labels: list[str]) -> str:
        return "spearman"

    def encode(
        self,
        examples: list[TextExample],
        tokenizer,
        max_length: int,
        label2id: dict[str, int] | None,
        options: LongTextOptions,
    ) -> tuple[list[dict], int]:
        label_of = (lambda e: float(e.label)) if label2id is not None else None
        return encode_long_texts(examples, tokenizer, max_length, label_of, options)

    def decode(
        self,
        examples: list[TextExample],
        features: list[dict],
        outputs: Iterable[tuple[int, dict]],
        labels: list[str],
        options: LongTextOptions,
    ) -> list[dict]:
        pooled = pooled_logits(len(examples), features, outputs, options.window_pool)  # one column: the score
        return [{"score": float(row[0]) if len(row) else 0.0} for row in pooled]

    def metrics(self, examples: list[TextExample], predictions: list[dict], labels: list[str]) -> dict:
        return regression_metrics([e.label for e in examples], [p["score"] for p in predictions])

    def prediction_record(self, example: TextExample, prediction: dict) -> dict:
        return {**text_record(example), "score": round(prediction["score"], 6)}

    def agreement(self, reference: list[dict], other: list[dict]) -> dict:
        """Scores within AGREEMENT_TOLERANCE x the range of the reference scores (at least 1e-3) of them."""
        expected = [a["score"] for a in reference]
        tolerance = max(AGREEMENT_TOLERANCE * (max(expected, default=0.0) - min(expected, default=0.0)), 1e-3)
        differences = [abs(b["score"] - a) for a, b in zip(expected, other)]
        return share_agreeing(
            (d <= tolerance for d in differences),
            "scores within the tolerance",
            tolerance=tolerance,
            max_abs_difference=max(differences, default=0.0),
        )


REGRESSION = RegressionTask()
