"""`bertkit finetune` as a library function: files -> task encoder -> engine -> model directory.

from bertkit.finetune import finetune
from bertkit.settings import FinetuneSettings
finetune(FinetuneSettings(task="classification", model="runs/base/model", train=Path("train.tsv"),
                          eval=Path("dev.tsv"), output=Path("runs/sentiment")))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bertkit import __version__
from bertkit.data.datasets_io import source
from bertkit.data.encoding import encode_training, encoded_dir, feature_lengths, wants_arrow
from bertkit.data.streaming import tidy_on_error
from bertkit.driver import finish_run, resume_hint, scalar_metrics, start_engine, start_run
from bertkit.engine.packing import packing_problem
from bertkit.modeling.build import build_model, save_model, strategy_spec
from bertkit.modeling.loading import load_tokenizer, model_config, resolve_model_dir, weights_format
from bertkit.modeling.losses import training_loss
from bertkit.modeling.strategies import count_parameters
from bertkit.report import model_card
from bertkit.settings import FinetuneSettings, settings_to_dict
from bertkit.settings.options import options_from
from bertkit.tasks import get_task
from bertkit.tasks.base import Task
from bertkit.tasks.long_inputs import truncation_note


@dataclass
class Prepared:
    """The inputs of a run, read, checked and encoded (made once, shared by all processes)."""

    options: Any  # the task's options, as the task resolved them from the training data
    tokenizer: Any
    labels: list[str]
    train_count: int
    train_features: list[dict]
    truncated: int
    eval_examples: list[Any] | None
    eval_features: list[dict] | None
    strategy: dict  # the fine-tuning strategy as bertkit.json records it (see bertkit/modeling/build.py)
    text_pairs: bool | None = None  # text tasks: trained on text pairs (serve refuses a pair a model never saw)
    loss: Any = None  # a weighted training loss (windows, --class-weights; bertkit/modeling/losses.py), or None


def prepare_inputs(task: Task, model_name: str, settings: FinetuneSettings, max_length: int) -> Prepared:
    """Read and check every input before anything is written, so a mistake leaves no half-made run."""
    weights_format(model_name, settings.allow_pickle)
    tokenizer = load_tokenizer(model_name)
    spec = strategy_spec(settings, model_name)
    options = options_from(task.options_type, settings)
    train_source = source(settings.train, settings.train_split, "--train-split")
    train_examples = None  # --cache-encoded: streamed from Arrow where the task can, so memory stays flat
    if wants_arrow(settings):
        train_examples = task.stream(train_source, options, True, encoded_dir(settings.output))
    if train_examples is None:
        train_examples = task.read(train_source, options, labelled=True)
    labels = task.label_names(train_examples)
    first = train_examples[0]  # read before encoding, which may tidy a streamed file away
    text_pairs = first.text_pair is not None if hasattr(first, "text_pair") else None  # pairs in all or none
    options = task.configure(options, max_length, train_examples)
    eval_examples = (
        task.read(source(settings.eval, settings.eval_split, "--eval-split"), options, labelled=True)
        if settings.eval
        else None
    )
    if eval_examples is not None:
        task.check_labels(eval_examples, labels)
    label2id = {label: i for i, label in enumerate(labels)}
    train_features, truncated = encode_training(
        task, train_examples, tokenizer, max_length, label2id, options, settings
    )  # through Arrow with --cache-encoded / --num-workers
    eval_features = None
    if eval_examples is not None:
        eval_features, _ = task.encode(eval_examples, tokenizer, max_length, label2id, options)
    problem_type = task.head_config(labels).get("problem_type", "")
    loss = training_loss(problem_type, getattr(options, "class_weights", "none"), labels, train_features)
    return Prepared(
        options,
        tokenizer,
        labels,
        len(train_examples),
        train_features,
        truncated,
        eval_examples,
        eval_features,
        spec,
        text_pairs,
        loss,
    )


def resolve_batching(settings: FinetuneSettings, task, model_name: str) -> FinetuneSettings:
    """--batch-sampler and --micro-batches as the task defaults them where the user gave none (saved resolved).

    The task's sampler, unless --length-grouping 1 asks for random batches; packed rows only for a model that
    reads them (else step-sorted, the same steps padded). Packing lays a whole step out at once: 1 micro-batch.
    """
    sampler = settings.batch_sampler
    if sampler is None:
        sampler = "random" if settings.length_grouping == 1 else task.default_batch_sampler
        if sampler == "packed" and packing_problem(model_config(model_name, settings.trust_remote_code)):
            sampler = "step-sorted"
    micro_batches = settings.micro_batches
    if micro_batches is None:  # the task's default, where the batch divides into it
        default = 1 if sampler == "packed" else task.default_micro_batches
        micro_batches = default if settings.batch_size % default == 0 else 1
    return dataclasses.replace(settings, batch_sampler=sampler, micro_batches=micro_batches)


def finetune(settings: FinetuneSettings, on_evaluation: Callable[[dict, str], None] | None = None) -> dict:
    """Fine-tune `settings.model` on `settings.train`; returns the final evaluation metrics.

    `on_evaluation(metrics, main_metric)` sees every evaluation as it happens (`bertkit tune` reports them to
    its trial); an exception it raises stops the run.
    """
    from accelerate.utils import set_seed

    settings.validate()
    task = get_task(settings.task)
    max_length = settings.max_length or task.default_max_length
    model_name = resolve_model_dir(settings.model)
    settings = resolve_batching(settings, task, model_name)
    engine = start_engine(settings)
    # Under several processes the main process of each machine prepares the data once.
    with tidy_on_error(encoded_dir(settings.output)):  # a bad record leaves no half-made cache behind
        data = engine.prepare_once(lambda: prepare_inputs(task, model_name, settings, max_length))
    options, tokenizer, labels = data.options, data.tokenizer, data.labels
    eval_examples, eval_features = data.eval_examples, data.eval_features
    set_seed(settings.seed)
    model = build_model(
        task,
        model_name,
        labels,
        data.strategy,
        allow_pickle=settings.allow_pickle,
        trust_remote_code=settings.trust_remote_code,
    )
    run_dir, reporter = start_run(engine, settings, title=f"finetune {task.name}")
    if data.truncated:
        reporter.note(truncation_note(options, data.truncated, data.train_count, max_length))
    trainable, total = count_parameters(model)
    reporter.note(
        f"{task.name}: {data.train_count} training examples, {len(labels)} labels; "
        f"strategy {settings.strategy}: {trainable:,} of {total:,} parameters trainable "
        f"({100 * trainable / total:.2f}%)"
    )

    # The saved settings hold the options as the task resolved them (predict decodes as evaluation did).
    saved_settings = {**settings_to_dict(settings), "max_length": max_length, **dataclasses.asdict(options)}
    info = {
        "bertkit_version": __version__,
        "task": task.name,
        "labels": labels,
        "base_model": settings.model,
        "max_length": max_length,
        "strategy": data.strategy,
        "settings": saved_settings,
    }
    if data.text_pairs is not None:
        info["text_pairs"] = data.text_pairs
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

        outputs = engine.run_model(
            current_model, eval_features, settings.eval_batch_size, tokenizer.pad_token_id, task.outputs
        )
        latest["predictions"] = task.decode(eval_examples, eval_features, counted(outputs), labels, options)
        metrics = task.metrics(eval_examples, latest["predictions"], labels)
        # How many examples the evaluation covered, and from how many model outputs (every one exactly once).
        metrics["eval_examples"], metrics["eval_outputs"] = len(seen), count
        if on_evaluation is not None:
            on_evaluation(metrics, metric)
        return metrics

    def save_best(current_model, metrics: dict) -> None:
        tuned = task.tuned_options(metrics, options)
        card = model_card(task.name, task.pipeline_tag, labels, info["settings"], metrics, settings.model)
        save_model(
            current_model,
            tokenizer,
            run_dir / "model",
            {**info, "tuned": tuned, "metrics": scalar_metrics(metrics)},
            card,
        )
        if "predictions" in latest:
            task.write_outputs(run_dir, eval_examples, latest["predictions"], options, tuned)

    metric = task.main_metric(labels)
    result = engine.fit(
        model,
        data.train_features,
        run_dir=run_dir,
        pad_token_id=tokenizer.pad_token_id,
        evaluate=evaluate if eval_examples is not None else None,
        main_metric=metric,
        on_best=save_best,
        reporter=reporter,
        resume_hint=resume_hint(),
        lengths=feature_lengths(data.train_features),
        loss_over_tokens=task.loss_over_tokens and settings.token_weighted_loss,
        loss=data.loss,
    )
    state = result.state
    summary = {
        **result.final_metrics,
        "best_step": state.best_step,
        "steps": state.step,
        "trainable_parameters": trainable,
        "total_parameters": total,
        "train_seconds": round(state.train_seconds, 3),
        "eval_seconds": round(state.eval_seconds, 3),
    }
    extra = (task.metrics_table(result.final_metrics),) if eval_examples is not None else ()
    finish_run(engine, run_dir, summary, state.history, metric, f"{task.name}: final evaluation", reporter, extra)
    return summary
