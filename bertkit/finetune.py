"""`bertkit finetune` as a library function: files -> task encoder -> engine -> model directory.

    from bertkit.finetune import finetune
    from bertkit.settings import FinetuneSettings
    finetune(FinetuneSettings(task="classification", model="runs/base/model", train=Path("train.tsv"),
                              eval=Path("dev.tsv"), output=Path("runs/sentiment")))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertkit import __version__
from bertkit.data.datasets_io import source
from bertkit.data.encoding import encode_training, feature_lengths
from bertkit.data.writers import write_json
from bertkit.engine import Engine
from bertkit.modeling.build import build_model, save_model, strategy_spec
from bertkit.modeling.loading import load_tokenizer, resolve_model_dir, weights_format
from bertkit.modeling.strategies import count_parameters
from bertkit.report import Reporter, metrics_table, model_card, plot_curves, print_table
from bertkit.rundir import prepare_run_dir
from bertkit.settings import FinetuneSettings, save_settings, settings_to_dict
from bertkit.tasks import get_task, main_metric
from bertkit.tracking import track

DEFAULT_MAX_LENGTH = 128  # for tasks that do not name their own default_max_length


@dataclass
class Prepared:
    """The inputs of a run, read, checked and encoded (made once, shared by all processes)."""

    settings: FinetuneSettings  # as the task configured them from the training data
    tokenizer: Any
    labels: list[str] | None
    train_count: int
    train_features: list[dict]
    truncated: int
    eval_examples: list[Any] | None
    eval_features: list[dict] | None
    strategy: dict  # the fine-tuning strategy as bertkit.json records it (see bertkit/modeling/build.py)


def prepare_inputs(task, model_name: str, settings: FinetuneSettings) -> Prepared:
    """Read and check every input before anything is written, so a mistake leaves no half-made run."""
    weights_format(model_name, settings.allow_pickle)
    tokenizer = load_tokenizer(model_name)
    spec = strategy_spec(settings, model_name)
    train_examples = task.read(source(settings.train, settings.train_split, "--train-split"), settings, labelled=True)
    labels = task.label_names(train_examples)
    if hasattr(task, "configure"):
        task.configure(settings, train_examples)
    eval_source = source(settings.eval, settings.eval_split, "--eval-split")
    eval_examples = task.read(eval_source, settings, labelled=True) if settings.eval else None
    if eval_examples is not None:
        task.check_labels(eval_examples, labels)
    label2id = {label: i for i, label in enumerate(labels)} if labels else None
    train_features, truncated = encode_training(task, train_examples, tokenizer, label2id, settings)  # maybe Arrow
    eval_features = None
    if eval_examples is not None:
        eval_features, _ = task.encode(eval_examples, tokenizer, settings.max_length, label2id, settings)
    return Prepared(settings, tokenizer, labels, len(train_examples), train_features, truncated, eval_examples, eval_features,
                    spec)


def start_run_dir(settings: FinetuneSettings) -> Path:
    run_dir = prepare_run_dir(settings.output, settings.overwrite, settings.resume)
    save_settings(settings, run_dir / "settings.yaml")
    return run_dir


def finetune(settings: FinetuneSettings) -> dict:
    """Fine-tune `settings.model` on `settings.train`; returns the final evaluation metrics."""
    from accelerate.utils import set_seed

    settings.validate()
    task = get_task(settings.task)
    if settings.max_length is None:
        settings.max_length = getattr(task, "default_max_length", DEFAULT_MAX_LENGTH)
    model_name = resolve_model_dir(settings.model)
    engine = Engine(settings)
    # Under several processes the main process of each machine prepares the data once.
    data = engine.prepare_once(lambda: prepare_inputs(task, model_name, settings))
    settings, tokenizer = data.settings, data.tokenizer
    labels, eval_examples, eval_features = data.labels, data.eval_examples, data.eval_features
    metric = main_metric(task, labels)
    set_seed(settings.seed)
    model = build_model(task, model_name, labels, data.strategy, allow_pickle=settings.allow_pickle,
                        trust_remote_code=settings.trust_remote_code)
    run_dir = engine.on_main(lambda: start_run_dir(settings)) or settings.output
    reporter = Reporter(run_dir / "log.jsonl", enabled=engine.is_main, title=f"finetune {task.name}")
    reporter = track(reporter, engine.accelerator, settings, run_dir, "finetune")  # --report-to
    if data.truncated:
        reporter.note(f"{data.truncated} of {data.train_count} training inputs are longer than --max-length "
                      f"{settings.max_length} and were truncated")
    trainable, total = count_parameters(model)
    reporter.note(f"{task.name}: {data.train_count} training examples, {len(labels) if labels else 0} labels; "
                  f"strategy {settings.strategy}: {trainable:,} of {total:,} parameters trainable "
                  f"({100 * trainable / total:.2f}%)")

    info = {"bertkit_version": __version__, "task": task.name, "labels": labels, "base_model": settings.model,
            "max_length": settings.max_length, "strategy": data.strategy, "settings": settings_to_dict(settings)}
    latest: dict = {}  # the predictions of the latest evaluation, for the task's own output files

    def evaluate(current_model) -> dict:
        seen: set[int] = set()
        count = 0

        def counted(outputs):  # streams on (QA decodes per example as windows come), counting as it goes
            nonlocal count
            for number, output in outputs:
                seen.add(eval_features[number]["index"])
                count += 1
                yield number, output

        outputs = engine.run_model(current_model, eval_features, settings.eval_batch_size, tokenizer.pad_token_id)
        latest["predictions"] = task.decode(eval_examples, eval_features, counted(outputs), labels, settings)
        metrics = task.metrics(eval_examples, latest["predictions"], labels)
        # How many examples the evaluation covered, and from how many model outputs (every one exactly once).
        metrics["eval_examples"], metrics["eval_outputs"] = len(seen), count
        return metrics

    def save_best(current_model, metrics: dict) -> None:
        tuned = task.tuned_settings(metrics, settings) if hasattr(task, "tuned_settings") else {}
        card = model_card(task.name, labels, info["settings"], metrics, settings.model)
        save_model(current_model, tokenizer, run_dir / "model",
                   {**info, "tuned": tuned, "metrics": scalar_metrics(metrics)}, card)
        if hasattr(task, "write_outputs") and "predictions" in latest:
            task.write_outputs(run_dir, eval_examples, latest["predictions"], settings, tuned)

    result = engine.fit(model, data.train_features, run_dir=run_dir, pad_token_id=tokenizer.pad_token_id,
                        evaluate=evaluate if eval_examples is not None else None, main_metric=metric,
                        on_best=save_best, reporter=reporter, lengths=feature_lengths(data.train_features))
    state = result.state
    summary = {**result.final_metrics, "best_step": state.best_step, "steps": state.step,
               "trainable_parameters": trainable, "total_parameters": total,
               "train_seconds": round(state.train_seconds, 3), "eval_seconds": round(state.eval_seconds, 3)}
    if engine.is_main:
        write_json(run_dir / "metrics.json", {**summary, "history": state.history})
        plot_curves(run_dir / "log.jsonl", run_dir / "curves.png", metric)
        print_table(metrics_table(scalar_metrics(summary), title=f"{task.name}: final evaluation"))
        if eval_examples is not None and hasattr(task, "metrics_table"):
            print_table(task.metrics_table(result.final_metrics))
        reporter.note(f"Model written to {run_dir / 'model'}")
    engine.accelerator.end_training()
    return summary


def scalar_metrics(metrics: dict) -> dict:
    return {key: value for key, value in metrics.items() if isinstance(value, (int, float))}
