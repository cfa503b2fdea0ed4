"""The task registry: `--task NAME` -> a small object that knows how to read, encode, decode and score.

A task answers, and the engine never asks anything else:
- `read(path, settings, labelled)` -> examples (each knows its file location for errors)
- `label_names(train_examples)` / `check_labels(examples, labels)`
- `encode(examples, tokenizer, max_length, label2id, settings)` -> (features, truncated_count); a feature
  is a dict of token lists (`input_ids`, `token_type_ids`, per-token `labels`) or scalars
  (`labels`, `start_positions`) plus `index`, the example it came from
- `decode(examples, features, outputs, labels, settings)` -> one prediction per example, from a stream
  of (feature number, model outputs as numpy arrays trimmed to the feature's length)
- `metrics(examples, predictions, labels)` -> dict with `main_metric` in it
- `prediction_record(example, prediction)` -> the record written by `predict`
- `auto_model`: the transformers Auto class whose head the task trains
- `main_metric`: the metric that picks the best checkpoint; a task whose choice depends on the label
  set (tagging: entity F1 for BIO tags, else accuracy) also has `main_metric_for(labels)`

Optional, used when present:
- `default_max_length`: the `--max-length` used when the user gives none (else 128)
- `configure(settings, train_examples)`: settle settings that depend on the training data
- `tuned_settings(metrics, settings)` -> dict saved in bertkit.json under "tuned"; predict and
  evaluate use them for options the user leaves unset
- `write_outputs(directory, examples, predictions, settings, tuned)`: task-specific files written by
  finetune (run directory, best evaluation) and evaluate (`--files-dir`)
- `metrics_table(metrics)`: an extra rich table printed after evaluation
"""

from __future__ import annotations

from bertkit.errors import BertkitError
from bertkit.tasks.classification import CLASSIFICATION, NLI
from bertkit.tasks.qa import QA
from bertkit.tasks.tagging import TAGGING

TASKS = {task.name: task for task in (CLASSIFICATION, NLI, TAGGING, QA)}


def task_names() -> list[str]:
    return list(TASKS)


def get_task(name: str):
    if name not in TASKS:
        raise BertkitError(f"unknown task '{name}'; choose one of: {', '.join(TASKS)}")
    return TASKS[name]


def main_metric(task, labels: list[str] | None) -> str:
    """The metric that picks the best checkpoint for `task` trained on `labels`."""
    chooser = getattr(task, "main_metric_for", None)
    return chooser(labels) if chooser is not None else task.main_metric
