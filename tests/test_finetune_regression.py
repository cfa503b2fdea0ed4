"""Regression end to end through the CLI: it learns the project's scored reviews (a score 0-3 that counts
the positive judgements), evaluate writes plain-number correlations, predict writes `score`, the saved
model works in the transformers pipeline, and bad scores are one-line errors naming the record."""

from __future__ import annotations

import json

import pytest
from conftest import EXAMPLES, finetune_through_cli

DATA = EXAMPLES / "regression"


@pytest.fixture(scope="module")
def regression_run(word_model, tmp_path_factory):
    return finetune_through_cli(
        tmp_path_factory.mktemp("runs") / "regression",
        "--task",
        "regression",
        "--model",
        word_model,
        "--train",
        DATA / "train.csv",
        "--eval",
        DATA / "dev.csv",
        "--epochs",
        "10",
        "--lr",
        "1e-3",
        "--batch-size",
        "16",
        "--seed",
        "1",
    )


def test_regression_learns_the_scores(regression_run):
    metrics = json.loads((regression_run / "metrics.json").read_text())
    # Chance (an unrelated score) gives correlations near 0; predicting the mean (1.5) gives an MSE near 0.75.
    assert metrics["spearman"] >= 0.8 and metrics["pearson"] >= 0.8 and metrics["mse"] < 0.3
    info = json.loads((regression_run / "model/bertkit.json").read_text())
    assert info["task"] == "regression" and info["labels"] == ["score"]
    config = json.loads((regression_run / "model/config.json").read_text())
    assert config["problem_type"] == "regression" and config["id2label"] == {"0": "score"}


def test_evaluate_writes_plain_numbers_and_predict_writes_score(regression_run, cli, tmp_path):
    result = cli("evaluate", "--model", regression_run / "model", DATA / "dev.csv", "--output", tmp_path / "m.json")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert all(isinstance(metrics[name], float) for name in ("pearson", "spearman", "mse"))
    assert -1 <= metrics["spearman"] <= 1
    result = cli("predict", "--model", regression_run / "model", DATA / "dev.csv", "--output", tmp_path / "p.jsonl")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(records) == 100 and all(set(r) == {"text", "score"} and isinstance(r["score"], float) for r in records)


def test_saved_model_works_in_the_transformers_pipeline(regression_run, tmp_path):
    from transformers import pipeline

    from bertkit.inference import predict_file
    from bertkit.settings import PredictSettings

    classify = pipeline("text-classification", model=str(regression_run / "model"), function_to_apply="none")
    text = "the film was wonderful, the plot was clever and the staff was lovely"
    (tmp_path / "one.txt").write_text(text + "\n")
    predict_file(
        PredictSettings(input=tmp_path / "one.txt", model=str(regression_run / "model"), output=tmp_path / "one.jsonl")
    )
    ours = json.loads((tmp_path / "one.jsonl").read_text())["score"]
    (theirs,) = classify([text])
    assert theirs["label"] == "score" and abs(theirs["score"] - ours) < 1e-4


def test_scores_are_read_as_numbers_from_pairs_and_bad_ones_name_the_record(tmp_path):
    from bertkit.errors import BertkitError
    from bertkit.tasks import get_task
    from bertkit.tasks.text import TextColumns

    task = get_task("regression")
    path = tmp_path / "pairs.tsv"
    path.write_text("sentence1\tsentence2\tscore\na man\ta boy\t3.5\na dog\ta cat\t-1\n")
    examples = task.read(path, TextColumns(), labelled=True)
    assert [(e.text, e.text_pair, e.label) for e in examples] == [("a man", "a boy", 3.5), ("a dog", "a cat", -1.0)]
    path.write_text("sentence1\tsentence2\tscore\na man\ta boy\t3.5\na dog\ta cat\thigh\n")
    with pytest.raises(BertkitError, match=r"pairs.tsv line 3: the score \('score'\) is 'high', not a finite number"):
        task.read(path, TextColumns(), labelled=True)


def test_correlations_handle_ties_and_constants():
    from bertkit.metrics.regression import regression_metrics

    metrics = regression_metrics([1.0, 2.0, 2.0, 3.0], [0.1, 0.5, 0.5, 0.9])
    assert metrics["spearman"] == pytest.approx(1.0) and metrics["pearson"] == pytest.approx(1.0)
    assert regression_metrics([1.0, 2.0], [0.5, 0.5])["pearson"] == 0.0
