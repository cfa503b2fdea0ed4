"""The contract every task implements in full; the engine, modeling, finetune and inference ask nothing else.

A task is a small module with one object satisfying `Task` and an options dataclass (its own
flags, declared with `bertkit.settings.options.opt`). Adding a task is that module plus one
line in the registry (`bertkit/tasks/__init__.py`): the CLI flags, the model head, the model
card's pipeline tag, which model outputs inference keeps and how they are decoded all come
from here. Tasks receive only their options, and `configure` returns resolved options instead
of changing any settings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

# A feature is a dict of token lists (`input_ids`, `token_type_ids`, per-token `labels`) or scalars
# (`labels`, `start_positions`) plus `index`, the example it came from; keys starting with "_" are the
# task's own bookkeeping and never reach the model.
Feature = dict
Prediction = dict
# (feature number, {output name: numpy array}); per-token outputs are trimmed to the feature's length.
ModelOutputs = Iterable[tuple[int, Mapping[str, Any]]]


class Task(Protocol):
    name: str  # the --task value
    options_type: type  # the dataclass of this task's own options
    auto_model: str  # the transformers Auto class whose head the task trains
    pipeline_tag: str  # the transformers pipeline the saved model works in (model card)
    sequence_level: bool  # one output per text (a pooler reads one vector: --pooling applies)
    # The loss is a mean over labelled tokens: the engine weights each batch by its labelled tokens, so
    # length-grouped batches of short texts do not count as much as batches of long ones.
    loss_over_tokens: bool
    # The model outputs decode reads, each marked True when it has one value per token.
    outputs: Mapping[str, bool]
    default_max_length: int  # --max-length when the user gives none
    default_micro_batches: int  # --micro-batches when the user gives none (see FinetuneSettings)
    default_batch_sampler: str  # --batch-sampler when the user gives none (engine/batching.py)

    def read(self, path: Path, options: Any, labelled: bool) -> list:
        """Examples of a file; each knows its location (file and line or record) for error messages."""

    def stream(self, path: Path, options: Any, labelled: bool, folder: Path) -> Sequence | None:
        """The training examples of a file read a batch at a time from Arrow files written to `folder`
        (`bertkit.data.streaming.StreamedExamples`: memory flat in their number, for --cache-encoded), or None
        when the task reads its files whole (then `read` is used). Every method taking examples accepts them."""

    def label_names(self, examples: Sequence) -> list[str]:
        """The label set of a training file (empty when the head has no labels, e.g. QA's start/end)."""

    def check_labels(self, examples: Sequence, labels: list[str]) -> None:
        """Raise BertkitError naming the record of a label the model does not know."""

    def head_config(self, labels: list[str]) -> dict:
        """from_pretrained options for a fresh head over `labels` (num_labels, id2label, problem_type)."""

    def configure(self, options: Any, max_length: int, train_examples: Sequence) -> Any:
        """Options settled by the training data and the length (e.g. QA's --allow-no-answer auto); returns a copy."""

    def main_metric(self, labels: list[str]) -> str:
        """The metric (greater is better) that picks the best checkpoint."""

    def encode(
        self, examples: Sequence, tokenizer: Any, max_length: int, label2id: dict[str, int] | None, options: Any
    ) -> tuple[list[Feature], int]:
        """Features (label2id None: without labels) and how many inputs were truncated."""

    def decode(
        self, examples: Sequence, features: Sequence[Feature], outputs: ModelOutputs, labels: list[str], options: Any
    ) -> list[Prediction]:
        """One prediction per example, in input order."""

    def metrics(self, examples: Sequence, predictions: Sequence[Prediction], labels: list[str]) -> dict:
        """A dict holding at least `main_metric(labels)`; plain numbers, plus tables as dicts."""

    def metrics_table(self, metrics: dict) -> Any:
        """An extra rich table printed after evaluation (a per-class table), or None."""

    def prediction_record(self, example: Any, prediction: Prediction) -> dict:
        """The record `predict` writes for one example."""

    def input_record(self, number: int, text: str, other: str) -> dict:
        """A jsonl `predict` input record made from plain sentences (export checks a model on such records)."""

    def agreement(self, reference: Sequence[Prediction], other: Sequence[Prediction]) -> dict:
        """How far `other` (e.g. an int8 export's predictions, or the records `predict` writes) agrees with
        `reference` (PyTorch's) on the same examples, decoded as users see them: {"agreement": 0-1 (1: the
        same), "measure": what was compared, "compared": how many}; export's int8 check uses it."""

    def tuned_options(self, metrics: dict, options: Any) -> dict:
        """Options tuned on the evaluation data, saved with the model ("tuned" in bertkit.json); predict and
        evaluate use them for options the user leaves unset."""

    def write_outputs(
        self, directory: Path, examples: Sequence, predictions: Sequence[Prediction], options: Any, tuned: dict
    ) -> None:
        """The task's own files besides the metrics (QA: predictions.json), or nothing."""


def label_head(labels: list[str], problem_type: str | None = None) -> dict:
    """from_pretrained options for a fresh head with one output per label (replacing any head the checkpoint had)."""
    config: dict = {
        "num_labels": len(labels),
        "id2label": dict(enumerate(labels)),
        "label2id": {label: i for i, label in enumerate(labels)},
        "ignore_mismatched_sizes": True,
    }
    if problem_type:
        config["problem_type"] = problem_type
    return config


def share_agreeing(same: Iterable[bool], measure: str, **details: Any) -> dict:
    """An `agreement` result: the share of compared units (examples, words) that are the same."""
    flags = list(same)
    return {
        "agreement": sum(flags) / len(flags) if flags else 1.0,
        "measure": measure,
        "compared": len(flags),
        **details,
    }


# The parts of the contract a task may have nothing to do for, spelled once; a task still names each one
# (`configure = keep_options`), so the contract stays explicit in every task.
def single_text_input(task: Any, number: int, text: str, other: str) -> dict:
    return {"text": text}  # input_record of a task that reads one text


def no_stream(task: Any, path: Path, options: Any, labelled: bool, folder: Path) -> None:
    return None


def keep_options(task: Any, options: Any, max_length: int, train_examples: Sequence) -> Any:
    return options


def no_table(task: Any, metrics: dict) -> None:
    return None


def nothing_tuned(task: Any, metrics: dict, options: Any) -> dict:
    return {}


def no_files(
    task: Any, directory: Path, examples: Sequence, predictions: Sequence[Prediction], options: Any, tuned: dict
) -> None:
    return None


@dataclass
class OneOutputPerText:
    """What the tasks with one output per text (a sequence-classification head) declare alike."""

    auto_model: str = "AutoModelForSequenceClassification"
    pipeline_tag: str = "text-classification"
    sequence_level: bool = True
    loss_over_tokens: bool = False
    outputs = {"logits": False}  # a class attribute, as in the Task protocol
    default_max_length: int = 128
    default_micro_batches: int = 1
    default_batch_sampler: str = "length-grouped"
