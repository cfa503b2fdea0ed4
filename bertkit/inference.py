"""`bertkit predict` and `bertkit evaluate` as library functions over a fine-tuned model directory."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertkit.data.datasets_io import source
from bertkit.data.writers import records_format, write_json, write_records
from bertkit.deploy.guard import refuse_unused_pairs
from bertkit.deploy.onnx_runner import load_for_inference
from bertkit.engine import Engine
from bertkit.engine.setup import EngineOptions
from bertkit.errors import BertkitError
from bertkit.modeling.heads import layer_weights
from bertkit.modeling.loading import load_tokenizer, read_bertkit_file, resolve_model_dir
from bertkit.modeling.strategies import unwrap
from bertkit.report import console, metrics_table, print_table
from bertkit.settings import EvaluateSettings, PredictSettings, field_type
from bertkit.settings.options import options_from
from bertkit.tasks import get_task
from bertkit.tasks.base import Task


@dataclass
class Finetuned:
    """A fine-tuned model directory, loaded: the task and its options, its labels, the model and tokenizer."""

    task: Task
    options: Any  # the task's options: the given ones, else those saved (or tuned) with the model
    info: dict
    model: Any
    tokenizer: Any
    engine: Engine

    @property
    def labels(self) -> list[str]:
        return self.info.get("labels") or []


def load_finetuned(settings: PredictSettings) -> Finetuned:
    model_dir = resolve_model_dir(settings.model)
    info = read_bertkit_file(model_dir)
    if "task" not in info:
        raise BertkitError(f"{model_dir}/bertkit.json: no task recorded; re-run the fine-tuning")
    if info["task"] == "pretraining":
        raise BertkitError(
            f"{model_dir}: a pretrained model (no task head yet); fine-tune it first: "
            f"bertkit finetune --task TASK --model {model_dir} --train FILE --output DIR"
        )
    task = get_task(info["task"])
    fill_saved_settings(settings, {**info.get("settings", {}), **info.get("tuned", {})})
    options = options_from(task.options_type, settings)
    tokenizer = load_tokenizer(model_dir)
    model = load_for_inference(task, model_dir, info, settings)  # torch, or ONNX Runtime for an exported directory
    check_labels_match(model_dir, info, model)
    engine = Engine(options_from(EngineOptions, settings))
    model.to(engine.accelerator.device)
    return Finetuned(task, options, info, model, tokenizer, engine)


def check_labels_match(model_dir: str, info: dict, model) -> None:
    """bertkit.json and config.json must agree on the labels, or predictions would be misnamed."""
    labels = info.get("labels")
    if labels and getattr(model.config, "num_labels", len(labels)) != len(labels):
        raise BertkitError(
            f"{model_dir}/bertkit.json: lists {len(labels)} labels but the model has "
            f"{model.config.num_labels} outputs; the directory mixes two runs, copy model/ again"
        )


def fill_saved_settings(settings: PredictSettings, saved: dict) -> None:
    """Options left unset (None) take the value saved with the model: the training settings, or a
    value the task tuned during training (bertkit.json "tuned"), so predict decodes as evaluation did
    (e.g. tagging's --tag-field and --stride, QA's --doc-stride and null threshold). File locations
    and the columns of the training file belong to each invocation and are never taken over."""
    for f in dataclasses.fields(settings):
        if field_type(f) is Path or f.name.endswith("_column"):
            continue
        if getattr(settings, f.name) is None and saved.get(f.name) is not None:
            setattr(settings, f.name, saved[f.name])


def run_predictions(finetuned: Finetuned, examples: list, settings: PredictSettings) -> list:
    """One prediction per example, in input order."""
    task, options = finetuned.task, finetuned.options
    max_length = settings.max_length or finetuned.info.get("max_length", 512)
    features, _ = task.encode(examples, finetuned.tokenizer, max_length, None, options)
    outputs = finetuned.engine.run_model(
        finetuned.model, features, settings.batch_size, finetuned.tokenizer.pad_token_id, task.outputs
    )
    return task.decode(examples, features, outputs, finetuned.labels, options)


def predict_file(settings: PredictSettings) -> int:
    """Write one prediction record per input; returns how many were written."""
    settings.validate()
    records_format(settings.output or "-")  # a bad output name fails before any work
    finetuned = load_finetuned(settings)
    examples = finetuned.task.read(source(settings.input, settings.split), finetuned.options, labelled=False)
    refuse_unused_pairs(examples, finetuned.info)
    predictions = run_predictions(finetuned, examples, settings)
    records = (finetuned.task.prediction_record(e, p) for e, p in zip(examples, predictions))
    count = write_records(settings.output or "-", records)
    if settings.output:
        console.print(f"{count} predictions written to {settings.output}")
    return count


def evaluate_file(settings: EvaluateSettings) -> dict:
    """Score the model on a labelled file; prints the metrics and writes them to --output as JSON."""
    settings.validate()
    if settings.predictions:
        records_format(settings.predictions)
    finetuned = load_finetuned(settings)
    task = finetuned.task
    examples = task.read(source(settings.input, settings.split), finetuned.options, labelled=True)
    task.check_labels(examples, finetuned.labels)
    predictions = run_predictions(finetuned, examples, settings)
    metrics = task.metrics(examples, predictions, finetuned.labels)
    print_table(metrics_table(metrics, title=f"{task.name}: {settings.input}"))
    table = task.metrics_table(metrics)
    if table is not None:
        print_table(table)
    mix = layer_weights(unwrap(finetuned.model))
    if mix is not None:
        print_table(layer_weights_table(mix))
        metrics["layer_weights"] = mix
    if settings.predictions:
        write_records(settings.predictions, (task.prediction_record(e, p) for e, p in zip(examples, predictions)))
    if settings.output:
        write_json(settings.output, metrics)
    files_dir = settings.files_dir or (Path(settings.output).parent if settings.output else None)
    if files_dir is not None:
        task.write_outputs(Path(files_dir), examples, predictions, finetuned.options, {})
    return metrics


def layer_weights_table(mix: dict):
    """The learned weight of each hidden state (0: embeddings) in a weighted layer mix."""
    from rich.table import Table

    table = Table(title=f"learned layer weights (scale {mix['scale']:.3f})", title_justify="left")
    table.add_column("layer")
    table.add_column("weight", justify="right")
    for index, weight in enumerate(mix["weights"]):
        table.add_row("embeddings" if index == 0 else str(index), f"{weight:.4f}")
    return table
