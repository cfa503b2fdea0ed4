"""The task interface: the engine, modeling, finetune and inference ask a task nothing else.

A task is a small module with a subclass of `Task` (usually a dataclass, one instance registered) and
an options dataclass (its own flags, declared with `bertkit.settings.options.opt`). Adding a task is
that module plus one line in the registry (`bertkit/tasks/__init__.py`): the CLI flags, the model
head, the model card's pipeline tag, which model outputs inference keeps and how they are decoded
all come from here.

A task defines only what is its own: the ten members `required_members()` lists (its name and
options type, and how it reads, labels, encodes, decodes, scores, writes and compares predictions);
every other member has a default in `Task` (one output per text, nothing to stream, tune or write)
that a task overrides where it differs. A new member gets a default here, so no task changes.
Tasks receive only their options, and `configure` returns resolved options instead of changing any
settings.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

# A feature is a dict of token lists (`input_ids`, `token_type_ids`, per-token `labels`) or scalars
# (`labels`, `start_positions`) plus `index`, the example it came from; keys starting with "_" are the
# task's own bookkeeping and never reach the model.
Feature = dict
Prediction = dict
# (feature number, {output name: numpy array}); per-token outputs are trimmed to the feature's length.
ModelOutputs = Iterable[tuple[int, Mapping[str, Any]]]


class Task(ABC):
    """A task: its members without a default here (`required_members()`) are its own; the rest it may override.

    The defaults describe the most common head, one output per text (a sequence-classification head over
    the pooled vector, trained with cross-entropy on `logits`), and a task that has nothing to do for a
    step (no streaming, options kept as given, no extra table, nothing tuned, no files of its own).
    """

    # Required: every task names itself and its options.
    name: str  # the --task value
    options_type: type  # the dataclass of this task's own options (its flags)

    # The head; the defaults are one output per text.
    auto_model: str = "AutoModelForSequenceClassification"  # the transformers Auto class whose head it trains
    pipeline_tag: str = "text-classification"  # the transformers pipeline the saved model works in (model card)
    sequence_level: bool = True  # one output per text (a pooler reads one vector: --pooling applies)
    # The model outputs decode reads, each marked True when it has one value per token.
    outputs: Mapping[str, bool] = MappingProxyType({"logits": False})
    # The loss is a mean over labelled tokens: the engine weights each batch by its labelled tokens, so
    # length-grouped batches of short texts do not count as much as batches of long ones.
    loss_over_tokens: bool = False
    default_max_length: int = 128  # --max-length when the user gives none
    default_micro_batches: int = 1  # --micro-batches when the user gives none (see FinetuneSettings)
    default_batch_sampler: str = "length-grouped"  # --batch-sampler when the user gives none (engine/batching.py)
    # Every feature key is per token, so examples can be laid end to end in rows (--batch-sampler packed).
    packs: bool = False

    # Required methods.

    @abstractmethod
    def read(self, path: Path, options: Any, labelled: bool) -> list:
        """Examples of a file; each knows its location (file and line or record) for error messages."""

    @abstractmethod
    def label_names(self, examples: Sequence) -> list[str]:
        """The label set of a training file (empty when the head has no labels, e.g. QA's start/end)."""

    @abstractmethod
    def main_metric(self, labels: list[str]) -> str:
        """The metric (greater is better) that picks the best checkpoint."""

    @abstractmethod
    def encode(
        self, examples: Sequence, tokenizer: Any, max_length: int, label2id: dict[str, int] | None, options: Any
    ) -> tuple[list[Feature], int]:
        """Features (label2id None: without labels) and how many inputs were truncated."""

    @abstractmethod
    def decode(
        self, examples: Sequence, features: Sequence[Feature], outputs: ModelOutputs, labels: list[str], options: Any
    ) -> list[Prediction]:
        """One prediction per example, in input order."""

    @abstractmethod
    def metrics(self, examples: Sequence, predictions: Sequence[Prediction], labels: list[str]) -> dict:
        """A dict holding at least `main_metric(labels)`; plain numbers, plus tables as dicts."""

    @abstractmethod
    def prediction_record(self, example: Any, prediction: Prediction) -> dict:
        """The record `predict` writes for one example."""

    @abstractmethod
    def agreement(self, reference: Sequence[Prediction], other: Sequence[Prediction]) -> dict:
        """How far `other` (e.g. an int8 export's predictions, or the records `predict` writes) agrees with
        `reference` (PyTorch's) on the same examples, decoded as users see them: {"agreement": 0-1 (1: the
        same), "measure": what was compared, "compared": how many}; `share_agreeing` builds one."""

    # Methods with a default.

    def stream(self, path: Path, options: Any, labelled: bool, folder: Path) -> Sequence | None:
        """The training examples of a file read a batch at a time from Arrow files written to `folder`
        (`bertkit.data.streaming.StreamedExamples`: memory flat in their number, for --cache-encoded), or None
        when the task reads its files whole (then `read` is used; --cache-encoded still encodes through Arrow).
        Every method taking examples accepts them."""
        return None

    def check_labels(self, examples: Sequence, labels: list[str]) -> None:
        """Raise BertkitError naming the record of a label the model does not know (default: nothing to check,
        e.g. scores checked while reading)."""
        return None

    def head_config(self, labels: list[str]) -> dict:
        """from_pretrained options for a fresh head over `labels` (num_labels, id2label, problem_type); default:
        one output per label, or the checkpoint's head as it is when there are no labels."""
        return label_head(labels) if labels else {}

    def configure(self, options: Any, max_length: int, train_examples: Sequence) -> Any:
        """Options settled by the training data and the length (e.g. QA's --allow-no-answer auto); returns a
        copy or, by default, the options unchanged (options are never changed in place)."""
        return options

    def metrics_table(self, metrics: dict) -> Any:
        """An extra rich table printed after evaluation (a per-class table), or None."""
        return None

    def input_record(self, number: int, text: str, other: str) -> dict:
        """A jsonl `predict` input record made from plain sentences (export checks a model on such records);
        default: a task that reads one text."""
        return {"text": text}

    def tuned_options(self, metrics: dict, options: Any) -> dict:
        """Options tuned on the evaluation data, saved with the model ("tuned" in bertkit.json); predict and
        evaluate use them for options the user leaves unset. Default: nothing tuned."""
        return {}

    def write_outputs(
        self, directory: Path, examples: Sequence, predictions: Sequence[Prediction], options: Any, tuned: dict
    ) -> None:
        """The task's own files besides the metrics (QA: predictions.json), or nothing."""
        return None


def required_members() -> list[str]:
    """What every task must define itself: `Task`'s annotated names without a default and its abstract methods."""
    attributes = [name for name in Task.__annotations__ if not hasattr(Task, name)]
    return attributes + sorted(Task.__abstractmethods__)


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
