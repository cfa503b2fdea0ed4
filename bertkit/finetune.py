"""`bertkit finetune` as a library function: files -> task encoder -> engine -> model directory.

    from bertkit.finetune import finetune
    from bertkit.settings import FinetuneSettings
    finetune(FinetuneSettings(task="classification", model="runs/base/model", train=Path("train.tsv"),
                              eval=Path("dev.tsv"), output=Path("runs/sentiment")))
"""

from __future__ import annotations

from pathlib import Path

from bertkit import __version__
from bertkit.data.writers import write_json
from bertkit.engine import Engine
from bertkit.modeling.loading import (
    head_options,
    load_pretrained,
    load_tokenizer,
    resolve_model_dir,
    save_model_dir,
)
from bertkit.report import Reporter, metrics_table, model_card, plot_curves, print_table
from bertkit.rundir import prepare_run_dir
from bertkit.settings import FinetuneSettings, save_settings, settings_to_dict
from bertkit.tasks import get_task

DEFAULT_MAX_LENGTH = 128  # for tasks that do not name their own default_max_length


def finetune(settings: FinetuneSettings) -> dict:
    """Fine-tune `settings.model` on `settings.train`; returns the final evaluation metrics."""
    settings.validate()
    task = get_task(settings.task)
    if settings.max_length is None:
        settings.max_length = getattr(task, "default_max_length", DEFAULT_MAX_LENGTH)
    model_name = resolve_model_dir(settings.model)
    # Read and check every input before anything is written, so a mistake leaves no half-made run.
    tokenizer = load_tokenizer(model_name)
    train_examples = task.read(settings.train, settings, labelled=True)
    labels = task.label_names(train_examples)
    if hasattr(task, "configure"):
        task.configure(settings, train_examples)
    eval_examples = task.read(settings.eval, settings, labelled=True) if settings.eval else None
    if eval_examples is not None:
        task.check_labels(eval_examples, labels)

    run_dir = prepare_run_dir(settings.output, settings.overwrite, settings.resume)
    save_settings(settings, run_dir / "settings.yaml")
    engine = Engine(settings)
    reporter = Reporter(run_dir / "log.jsonl", enabled=engine.is_main, title=f"finetune {task.name}")

    label2id = {label: i for i, label in enumerate(labels)} if labels else None
    train_features, truncated = task.encode(train_examples, tokenizer, settings.max_length, label2id, settings)
    if truncated:
        reporter.note(f"{truncated} of {len(train_examples)} training inputs are longer than --max-length "
                      f"{settings.max_length} and were truncated")
    eval_features = None
    if eval_examples is not None:
        eval_features, _ = task.encode(eval_examples, tokenizer, settings.max_length, label2id, settings)

    engine.accelerator.wait_for_everyone()
    from accelerate.utils import set_seed

    set_seed(settings.seed)
    model = load_pretrained(task.auto_model, model_name, **head_options(labels))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    reporter.note(f"{task.name}: {len(train_examples)} training examples, {len(labels) if labels else 0} labels; "
                  f"{trainable:,} of {total:,} parameters trainable")

    info = {"bertkit_version": __version__, "task": task.name, "labels": labels, "base_model": settings.model,
            "max_length": settings.max_length, "settings": settings_to_dict(settings)}

    latest: dict = {}  # the predictions of the latest evaluation, for the task's own output files

    def evaluate(current_model) -> dict:
        outputs = engine.run_model(current_model, eval_features, settings.eval_batch_size, tokenizer.pad_token_id)
        latest["predictions"] = task.decode(eval_examples, eval_features, outputs, labels, settings)
        return task.metrics(eval_examples, latest["predictions"], labels)

    def save_best(current_model, metrics: dict) -> None:
        tuned = task.tuned_settings(metrics, settings) if hasattr(task, "tuned_settings") else {}
        card = model_card(task.name, labels, info["settings"], metrics, settings.model)
        save_model_dir(current_model, tokenizer, run_dir / "model",
                       {**info, "tuned": tuned, "metrics": scalar_metrics(metrics)}, card)
        if hasattr(task, "write_outputs") and "predictions" in latest:
            task.write_outputs(run_dir, eval_examples, latest["predictions"], settings, tuned)

    result = engine.fit(model, train_features, run_dir=run_dir, pad_token_id=tokenizer.pad_token_id,
                        evaluate=evaluate if eval_examples is not None else None, main_metric=task.main_metric,
                        on_best=save_best, reporter=reporter)
    state = result.state
    summary = {**result.final_metrics, "best_step": state.best_step, "steps": state.step,
               "train_seconds": round(state.train_seconds, 3), "eval_seconds": round(state.eval_seconds, 3)}
    if engine.is_main:
        write_json(run_dir / "metrics.json", {**summary, "history": state.history})
        plot_curves(run_dir / "log.jsonl", run_dir / "curves.png", task.main_metric)
        print_table(metrics_table(scalar_metrics(summary), title=f"{task.name}: final evaluation"))
        if eval_examples is not None and hasattr(task, "metrics_table"):
            print_table(task.metrics_table(result.final_metrics))
        reporter.note(f"Model written to {run_dir / 'model'}")
    engine.accelerator.end_training()
    return summary


def scalar_metrics(metrics: dict) -> dict:
    return {key: value for key, value in metrics.items() if isinstance(value, (int, float))}
