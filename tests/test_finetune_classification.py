"""End to end through the CLI: classification and NLI learn the project's example data, and the
saved model works in bertkit predict/evaluate and in plain transformers."""

from __future__ import annotations

import json

import pytest
from conftest import EXAMPLES, assert_loads_completely
from helpers import sentiment_args


@pytest.fixture(scope="module")
def sentiment_run(tiny_model, tmp_path_factory):
    from typer.testing import CliRunner

    from bertkit.cli import app

    output = tmp_path_factory.mktemp("runs") / "sentiment"
    result = CliRunner().invoke(
        app,
        sentiment_args(tiny_model, output),
    )
    assert result.exit_code == 0, result.output
    return output


def test_classification_learns_well_above_chance(sentiment_run):
    metrics = json.loads((sentiment_run / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.85  # two balanced classes: chance is 0.5


def test_run_directory_layout(sentiment_run):
    for name in (
        "model/config.json",
        "model/model.safetensors",
        "model/bertkit.json",
        "model/README.md",
        "model/tokenizer.json",
        "metrics.json",
        "log.jsonl",
        "settings.yaml",
        "curves.png",
    ):
        assert (sentiment_run / name).is_file(), name
    info = json.loads((sentiment_run / "model/bertkit.json").read_text())
    assert info["task"] == "classification" and info["labels"] == ["neg", "pos"]
    config = json.loads((sentiment_run / "model/config.json").read_text())
    assert config["id2label"] == {"0": "neg", "1": "pos"}
    first_log = json.loads((sentiment_run / "log.jsonl").read_text().splitlines()[0])
    assert {"step", "loss", "lr", "examples_per_second"} <= set(first_log)


def test_existing_output_is_refused_without_overwrite(sentiment_run, tiny_model, cli):
    result = cli(
        "finetune", "--model", tiny_model, "--train", EXAMPLES / "sentiment/train.tsv", "--output", sentiment_run
    )
    assert result.exit_code == 2
    assert "already holds a run" in result.stderr and "--overwrite" in result.stderr


def test_predict_keeps_input_order_and_count(sentiment_run, cli, tmp_path):
    texts = [
        "the film was wonderful",
        "the film was dull and boring",
        "the meal was excellent",
        "the staff was terrible",
        "the plot was clever and gripping",
    ] * 7
    inputs = tmp_path / "inputs.txt"
    inputs.write_text("\n".join(texts) + "\n")
    output = tmp_path / "predictions.jsonl"
    result = cli("predict", "--model", sentiment_run / "model", inputs, "--output", output)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["text"] for r in records] == texts
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-4 for r in records)
    assert [r["label"] for r in records[:5]] == ["pos", "neg", "pos", "neg", "pos"]


def test_predict_reads_stdin_and_writes_stdout(sentiment_run, cli):
    result = cli("predict", "--model", sentiment_run / "model", "-", input="the film was superb\nthe plot was dull\n")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["label"] for line in result.stdout.splitlines()] == ["pos", "neg"]


@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_predict_writes_csv_and_tsv(sentiment_run, cli, tmp_path, suffix):
    output = tmp_path / f"out{suffix}"
    result = cli("predict", "--model", sentiment_run / "model", EXAMPLES / "sentiment/inputs.txt", "--output", output)
    assert result.exit_code == 0, result.output
    lines = output.read_text().splitlines()
    assert len(lines) == 1 + len((EXAMPLES / "sentiment/inputs.txt").read_text().splitlines())
    assert lines[0].split("," if suffix == ".csv" else "\t")[:2] == ["text", "label"]


def test_evaluate_writes_metrics(sentiment_run, cli, tmp_path):
    output = tmp_path / "metrics.json"
    result = cli("evaluate", "--model", sentiment_run / "model", EXAMPLES / "sentiment/test.tsv", "--output", output)
    assert result.exit_code == 0, result.output
    metrics = json.loads(output.read_text())
    assert metrics["accuracy"] >= 0.85
    assert 0 <= metrics["macro_f1"] <= 1
    assert set(metrics["per_class"]) == {"neg", "pos"}


def test_saved_model_loads_in_transformers_pipeline(sentiment_run):
    from transformers import AutoModelForSequenceClassification, pipeline

    assert_loads_completely(AutoModelForSequenceClassification, sentiment_run / "model")
    classify = pipeline("text-classification", model=str(sentiment_run / "model"))
    results = classify(["the film was wonderful and charming", "the film was dreadful"])
    assert [r["label"] for r in results] == ["pos", "neg"]


def test_config_file_is_read_and_flags_override_it(tiny_model, cli, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(
        f"task: classification\nmodel: {tiny_model}\ntrain: {EXAMPLES / 'sentiment/train.tsv'}\n"
        f"max-steps: 3\nbatch-size: 8\nlearning_rate: 0.001\n"
    )
    output = tmp_path / "run"
    result = cli("finetune", "--config", config, "--output", output, "--batch-size", "4")
    assert result.exit_code == 0, result.output
    saved = (output / "settings.yaml").read_text()
    assert "batch_size: 4" in saved and "max_steps: 3" in saved and "learning_rate: 0.001" in saved


def test_nli_learns_pairs_well_above_chance(tiny_model, cli, tmp_path):
    output = tmp_path / "nli"
    result = cli(
        "finetune",
        "--task",
        "nli",
        "--model",
        tiny_model,
        "--train",
        EXAMPLES / "nli/train.tsv",
        "--eval",
        EXAMPLES / "nli/dev.tsv",
        "--output",
        output,
        "--epochs",
        "6",
        "--lr",
        "1e-3",
        "--batch-size",
        "16",
        "--seed",
        "1",
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.6  # three classes: chance is 1/3
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("a man is cooking pasta\ta man is not cooking pasta\n")
    predicted = cli("predict", "--model", output / "model", pairs)
    assert predicted.exit_code == 0, predicted.output
    assert json.loads(predicted.stdout.splitlines()[0])["label"] == "contradiction"
