"""Multi-label end to end through the CLI: it learns the project's topic texts (one to three topics each),
--tune-threshold saves the micro-F1-best threshold with the model and predict/evaluate use it unless
--threshold is given, evaluate writes plain-number F1s, and label-set mistakes are one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import EXAMPLES, finetune_through_cli

DATA = EXAMPLES / "multilabel"


@pytest.fixture(scope="module")
def multilabel_run(word_model, tmp_path_factory):
    return finetune_through_cli(
        tmp_path_factory.mktemp("runs") / "multilabel",
        "--task",
        "multilabel",
        "--model",
        word_model,
        "--train",
        DATA / "train.csv",
        "--eval",
        DATA / "dev.csv",
        "--epochs",
        "15",
        "--lr",
        "1e-3",
        "--warmup-ratio",
        "0",
        "--batch-size",
        "16",
        "--seed",
        "1",
        "--pooling",
        "mean",
        "--tune-threshold",
        "global",
    )


def test_multilabel_learns_the_topics(multilabel_run):
    metrics = json.loads((multilabel_run / "metrics.json").read_text())
    # Predicting every label scores a micro-F1 near 0.46 (1.8 of 6 labels per text); nothing, 0.
    assert metrics["micro_f1"] >= 0.8 and metrics["samples_f1"] >= 0.8 and metrics["exact_match"] >= 0.5
    info = json.loads((multilabel_run / "model/bertkit.json").read_text())
    assert info["labels"] == ["garden", "harbour", "kitchen", "market", "mountain", "school"]
    assert 0 < info["tuned"]["threshold"] <= 1
    config = json.loads((multilabel_run / "model/config.json").read_text())
    assert config["problem_type"] == "multi_label_classification"


def test_evaluate_uses_the_tuned_threshold_unless_one_is_given(multilabel_run, cli, tmp_path):
    tuned = json.loads((multilabel_run / "model/bertkit.json").read_text())["tuned"]["threshold"]
    result = cli("evaluate", "--model", multilabel_run / "model", DATA / "dev.csv", "--output", tmp_path / "m.json")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert all(isinstance(metrics[k], float) for k in ("micro_f1", "macro_f1", "samples_f1", "exact_match"))
    assert metrics["micro_f1"] == pytest.approx(metrics["best_micro_f1"]) and metrics["best_threshold"] == tuned
    result = cli(
        "evaluate",
        "--model",
        multilabel_run / "model",
        DATA / "dev.csv",
        "--threshold",
        "0.999",
        "--output",
        tmp_path / "high.json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "high.json").read_text())["micro_f1"] < metrics["micro_f1"]


def test_predict_writes_label_lists(multilabel_run, cli, tmp_path):
    inputs = tmp_path / "in.txt"
    inputs.write_text(
        "the soup simmered on the stove and the climbers set out before sunrise\nthe market opened at seven\n"
    )
    result = cli("predict", "--model", multilabel_run / "model", inputs, "--output", tmp_path / "p.jsonl")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert sorted(records[0]["labels"]) == ["kitchen", "mountain"] and records[1]["labels"] == ["market"]
    assert len(records[0]["probabilities"]) == 6


def test_label_lists_from_jsonl_and_separators(tmp_path):
    from bertkit.tasks import get_task
    from bertkit.tasks.multilabel import MultilabelOptions

    task = get_task("multilabel")
    (tmp_path / "a.jsonl").write_text('{"text": "x", "labels": ["b", "a", "b"]}\n{"text": "y", "labels": ["c"]}\n')
    examples = task.read(tmp_path / "a.jsonl", MultilabelOptions(), labelled=True)
    assert [e.label for e in examples] == [["b", "a"], ["c"]] and task.label_names(examples) == ["a", "b", "c"]
    (tmp_path / "b.tsv").write_text("text\tlabels\nx\ta|b\ny\tc\n")
    examples = task.read(tmp_path / "b.tsv", MultilabelOptions(label_separator="|"), labelled=True)
    assert [e.label for e in examples] == [["a", "b"], ["c"]]


@pytest.mark.parametrize(
    "content, options, message",
    [
        ("text\tlabels\nx\ta\ny\t\n", {}, r"b.tsv line 3: no label in 'labels'.*--allow-empty-labels"),
        ("text\tlabels\nx\ta\ny\ta\n", {}, r"b.tsv: 1 distinct label\(s\)"),
    ],
)
def test_label_set_mistakes_are_one_line_errors(tmp_path, content, options, message):
    from bertkit.errors import BertkitError
    from bertkit.tasks import get_task
    from bertkit.tasks.multilabel import MultilabelOptions

    task = get_task("multilabel")
    (tmp_path / "b.tsv").write_text(content)
    with pytest.raises(BertkitError, match=message):
        task.label_names(task.read(tmp_path / "b.tsv", MultilabelOptions(**options), labelled=True))


def test_empty_label_lists_allowed_when_asked_and_unseen_labels_named(tmp_path):
    from bertkit.errors import BertkitError
    from bertkit.tasks import get_task
    from bertkit.tasks.multilabel import MultilabelOptions

    task = get_task("multilabel")
    (tmp_path / "b.tsv").write_text("text\tlabels\nx\ta\ny\t\nz\tb,c\n")
    examples = task.read(tmp_path / "b.tsv", MultilabelOptions(allow_empty_labels=True), labelled=True)
    assert examples[1].label == []
    with pytest.raises(BertkitError, match=r"b.tsv line 4: label 'c' was not in the training data"):
        task.check_labels(examples, ["a", "b"])


def test_metrics_and_best_threshold():
    from bertkit.metrics.multilabel import best_threshold, multilabel_metrics

    labels = ["a", "b", "c"]
    metrics = multilabel_metrics([["a"], ["a", "b"], []], [["a"], ["a"], []], labels)
    assert metrics["micro_f1"] == pytest.approx(0.8) and metrics["exact_match"] == pytest.approx(2 / 3)
    assert metrics["samples_f1"] == pytest.approx((1 + 2 / 3 + 1) / 3)
    probabilities = np.array([[0.9, 0.2, 0.1], [0.8, 0.3, 0.1], [0.1, 0.25, 0.1]])
    threshold, f1 = best_threshold([["a"], ["a", "b"], []], probabilities, labels)
    assert threshold == pytest.approx(0.3) and f1 == pytest.approx(1.0)
