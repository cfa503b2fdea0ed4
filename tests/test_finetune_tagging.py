"""End to end through the CLI: tagging learns the project's NER example set, and the saved model
evaluates, predicts on raw text and CoNLL, writes .conll, and handles sentences longer than its window."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import EXAMPLES, assert_loads_completely

TAGGING = EXAMPLES / "tagging"


@pytest.fixture(scope="module")
def ner_run(tiny_model, tmp_path_factory):
    from typer.testing import CliRunner

    from bertkit.cli import app

    output = tmp_path_factory.mktemp("runs") / "ner"
    result = CliRunner().invoke(
        app,
        [
            "finetune",
            "--task",
            "tagging",
            "--model",
            str(tiny_model),
            "--train",
            str(TAGGING / "train.conll"),
            "--eval",
            str(TAGGING / "dev.conll"),
            "--output",
            str(output),
            "--epochs",
            "3",
            "--lr",
            "1e-3",
            "--batch-size",
            "16",
            "--seed",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    return output


def test_tagging_learns_entities_well_above_chance(ner_run):
    metrics = json.loads((ner_run / "metrics.json").read_text())
    assert metrics["entity_f1"] >= 0.8  # guessing tags finds almost no whole entity
    assert metrics["token_accuracy"] >= 0.9
    info = json.loads((ner_run / "model/bertkit.json").read_text())
    assert info["task"] == "tagging" and info["labels"][0] == "O" and "I-LOC" in info["labels"]
    assert json.loads((ner_run / "model/config.json").read_text())["architectures"] == ["BertForTokenClassification"]


def test_evaluate_writes_word_level_metrics(ner_run, cli, tmp_path):
    output = tmp_path / "metrics.json"
    result = cli("evaluate", "--model", ner_run / "model", TAGGING / "dev.conll", "--output", output)
    assert result.exit_code == 0, result.output
    metrics = json.loads(output.read_text())
    assert {"token_accuracy", "entity_precision", "entity_recall", "entity_f1", "per_type"} <= set(metrics)
    assert set(metrics["per_type"]) == {"PER", "LOC", "ORG"} and metrics["entity_f1"] >= 0.8


def test_predict_raw_text_gives_entities_with_character_offsets(ner_run, cli, tmp_path):
    output = tmp_path / "entities.jsonl"
    result = cli("predict", "--model", ner_run / "model", TAGGING / "sentences.txt", "--output", output)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(records) == len((TAGGING / "sentences.txt").read_text().splitlines())
    for record in records:
        assert len(record["tags"]) == len(record["tokens"]) == len(record["probabilities"])
        for entity in record["entities"]:
            assert record["text"][entity["start"] : entity["end"]] == entity["text"]
    found = {(e["type"], e["text"]) for r in records for e in r["entities"]}
    assert len(found) >= 10 and {kind for kind, _ in found} == {"PER", "LOC", "ORG"}


def test_predict_pretokenized_writes_conll_and_word_index_entities(ner_run, cli, tmp_path):
    output = tmp_path / "tags.conll"
    result = cli("predict", "--model", ner_run / "model", TAGGING / "dev.conll", "--output", output)
    assert result.exit_code == 0, result.output
    gold = (TAGGING / "dev.conll").read_text().strip().split("\n\n")
    written = output.read_text().strip().split("\n\n")
    assert len(written) == len(gold)
    assert [line.split("\t")[0] for line in written[0].splitlines()] == [
        row.split("\t")[0] for row in gold[0].splitlines()
    ]
    jsonl = cli("predict", "--model", ner_run / "model", TAGGING / "dev.conll")
    record = json.loads(jsonl.stdout.splitlines()[0])
    for entity in record["entities"]:
        assert " ".join(record["tokens"][entity["start"] : entity["end"]]) == entity["text"]


def test_sentence_longer_than_the_window_loses_no_word(ner_run, cli, tmp_path):
    sentences = (TAGGING / "sentences.txt").read_text().splitlines()
    long_line = " ".join(sentences * 4)
    inputs = tmp_path / "long.txt"
    inputs.write_text(long_line + "\n")
    whole = cli("predict", "--model", ner_run / "model", inputs, "--max-length", "250")
    windowed = cli("predict", "--model", ner_run / "model", inputs, "--max-length", "24", "--stride", "8")
    assert whole.exit_code == 0 and windowed.exit_code == 0, windowed.output
    whole_tags = json.loads(whole.stdout)["tags"]
    windowed_tags = json.loads(windowed.stdout)["tags"]
    assert len(windowed_tags) == len(whole_tags) > 300 and all(windowed_tags)
    agreement = sum(a == b for a, b in zip(whole_tags, windowed_tags)) / len(whole_tags)
    assert agreement >= 0.9


def test_saved_model_loads_in_transformers_pipeline(ner_run):
    from transformers import AutoModelForTokenClassification, pipeline

    assert_loads_completely(AutoModelForTokenClassification, ner_run / "model")
    tagger = pipeline("token-classification", model=str(ner_run / "model"))
    assert {item["entity"] for item in tagger("Anna Berg flew to Oslo .")} <= {
        "B-PER",
        "I-PER",
        "B-LOC",
        "I-LOC",
        "B-ORG",
        "I-ORG",
        "O",
    }


def test_unseen_tag_and_bad_line_are_one_line_errors(ner_run, cli, tmp_path):
    unseen = tmp_path / "unseen.conll"
    unseen.write_text("Paris\tB-LOC\nrocks\tB-MISC\n")
    result = cli("evaluate", "--model", ner_run / "model", unseen)
    assert result.exit_code == 2
    assert f"{unseen} line 2: tag 'B-MISC' was not in the training data" in result.stderr
    bad = tmp_path / "bad.conll"
    bad.write_text("Paris\tB-LOC\nrocks\n")
    result = cli(
        "finetune", "--task", "tagging", "--model", ner_run / "model", "--train", bad, "--output", tmp_path / "never"
    )
    assert result.exit_code == 2 and f"{bad} line 2: 1 fields" in result.stderr
    assert not (tmp_path / "never").exists()


def test_conllu_training_uses_the_chosen_field(tiny_model, cli, tmp_path):
    rows = [
        "1\tthe\tthe\tDET\tDT\t_\t2\tdet\t_\t_",
        "2\tboat\tboat\tNOUN\tNN\t_\t3\tnsubj\t_\t_",
        "3\tsank\tsink\tVERB\tVBD\t_\t0\troot\t_\t_",
    ]
    train = tmp_path / "train.conllu"
    train.write_text(("\n".join(rows) + "\n\n") * 8)
    output = tmp_path / "pos"
    result = cli(
        "finetune",
        "--task",
        "tagging",
        "--model",
        tiny_model,
        "--train",
        train,
        "--eval",
        train,
        "--tag-field",
        "xpos",
        "--output",
        output,
        "--max-steps",
        "2",
        "--batch-size",
        "4",
    )
    assert result.exit_code == 0, result.output
    info = json.loads((output / "model/bertkit.json").read_text())
    assert info["labels"] == ["DT", "NN", "VBD"]
    assert "token_accuracy" in json.loads((output / "metrics.json").read_text())
    evaluated = cli("evaluate", "--model", output / "model", train)  # --tag-field comes from training
    assert evaluated.exit_code == 0, evaluated.output


def test_tagging_options_are_checked_before_anything_runs(tiny_model, cli, tmp_path):
    common = ("finetune", "--model", tiny_model, "--train", TAGGING / "train.conll", "--output", tmp_path / "run")
    result = cli(*common, "--task", "tagging", "--max-length", "32", "--stride", "20")
    assert result.exit_code == 2 and "--stride is 20; with --max-length 32 it can be at most 14" in result.stderr
    result = cli(*common, "--task", "tagging", "--tag-field", "lemma")
    assert result.exit_code == 2 and "--tag-field is 'lemma'; choose one of: upos, xpos, deprel, feats" in result.stderr
    result = cli(*common, "--task", "tagging", "--tag-column", "1")
    assert result.exit_code == 2 and "--tag-column is 1" in result.stderr
    assert not (tmp_path / "run").exists()


def test_micro_batches_step_as_the_batch_split_by_hand(tiny_model, cli, tmp_path):
    """--micro-batches 4 at batch 16 is batch 4 with 4 accumulated: same steps, same weights, resolved and saved
    (4: the default of step-sorted batches, which a model that cannot read packed rows trains with)."""
    from safetensors.torch import load_file

    def run(name, *flags):
        output = tmp_path / name
        result = cli(
            "finetune",
            "--task",
            "tagging",
            "--model",
            tiny_model,
            "--train",
            TAGGING / "train.conll",
            "--output",
            output,
            "--epochs",
            "1",
            "--lr",
            "1e-3",
            "--seed",
            "3",
            "--batch-sampler",
            "step-sorted",
            *flags,
        )
        assert result.exit_code == 0, result.output
        return output

    default = run("default", "--batch-size", "16")  # step-sorted tagging's default: 4 micro-batches
    by_hand = run("by-hand", "--batch-size", "4", "--grad-accum", "4", "--micro-batches", "1")
    assert (
        json.loads((default / "metrics.json").read_text())["steps"]
        == json.loads((by_hand / "metrics.json").read_text())["steps"]
    )
    first, second = load_file(default / "model/model.safetensors"), load_file(by_hand / "model/model.safetensors")
    assert all(torch.equal(first[name], second[name]) for name in first)
    assert "micro_batches: 4" in (default / "settings.yaml").read_text()
    plain = run("plain", "--batch-size", "16", "--micro-batches", "1")
    assert not torch.equal(
        load_file(plain / "model/model.safetensors")["classifier.weight"], first["classifier.weight"]
    )


def test_micro_batches_must_divide_the_batch(tiny_model, cli, tmp_path):
    result = cli(
        "finetune",
        "--task",
        "tagging",
        "--model",
        tiny_model,
        "--train",
        TAGGING / "train.conll",
        "--output",
        tmp_path / "run",
        "--batch-size",
        "10",
        "--micro-batches",
        "4",
    )
    assert result.exit_code != 0 and "--micro-batches is 4; give a divisor of --batch-size 10" in result.output
