"""`bertkit pretrain` end to end on the project's own text: it learns, the model loads everywhere, the
instances can be dumped, a run resumes, and mistakes end in one line."""

from __future__ import annotations

import json
import math

import pytest

from conftest import EXAMPLES

CORPUS = EXAMPLES / "corpus" / "stories.txt"
TINY = ["--layers", "2", "--hidden", "64", "--heads", "2", "--intermediate", "128", "--vocab-size", "600",
        "--max-seq-length", "64", "--batch-size", "16", "--lr", "3e-3", "--validation-fraction", "0.05", "--seed", "3"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A 2-layer, 64-wide BERT pretrained from scratch on examples/corpus for 80 steps, and its 0-step twin."""
    from typer.testing import CliRunner

    from bertkit.cli import app

    root = tmp_path_factory.mktemp("pretrain")
    runs = {}
    for name, steps in (("start", "0"), ("trained", "80")):
        result = CliRunner().invoke(app, ["pretrain", str(CORPUS), "--output", str(root / name), *TINY,
                                          "--max-steps", steps, "--eval-every", "40", "--save-every", "40"])
        assert result.exit_code == 0, result.output
        runs[name] = root / name
    return runs


def test_heldout_mlm_loss_falls_clearly(pretrained):
    start = json.loads((pretrained["start"] / "metrics.json").read_text())
    trained = json.loads((pretrained["trained"] / "metrics.json").read_text())
    assert start["steps"] == 0 and trained["steps"] == 80
    assert trained["mlm_loss"] < 0.8 * start["mlm_loss"]  # from ~6.2 (uniform over 600 pieces) to ~4.3
    assert trained["mlm_accuracy"] > start["mlm_accuracy"] + 0.1
    assert math.isclose(trained["perplexity"], math.exp(trained["mlm_loss"]), rel_tol=1e-6)
    assert 0 <= trained["nsp_accuracy"] <= 1 and trained["train_tokens"] > 0


def test_model_loads_in_transformers_and_fill_mask(pretrained):
    from transformers import BertForMaskedLM, BertForPreTraining, pipeline

    model_dir = pretrained["trained"] / "model"
    assert BertForPreTraining.from_pretrained(model_dir).config.num_hidden_layers == 2
    BertForMaskedLM.from_pretrained(model_dir)
    fill = pipeline("fill-mask", model=str(model_dir))
    guesses = fill("the children ran into the [MASK].")
    assert len(guesses) == 5 and all("token_str" in g for g in guesses)
    assert (model_dir / "tokenizer.json").is_file() and (model_dir / "bertkit.json").is_file()


def test_pretrained_model_is_a_finetune_backbone(pretrained, cli, tmp_path):
    result = cli("finetune", "--task", "classification", "--model", pretrained["trained"] / "model",
                 "--train", EXAMPLES / "sentiment/train.tsv", "--output", tmp_path / "ft", "--max-steps", "3")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ft/model/model.safetensors").is_file()


def test_resume_continues_from_the_checkpoint_and_reuses_the_cache(pretrained, cli):
    run = pretrained["trained"]
    result = cli("pretrain", CORPUS, "--output", run, *TINY, "--max-steps", "85", "--eval-every", "40", "--resume")
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())  # rich wraps long lines
    assert "Reusing the tokenized corpus" in said and "Resuming from" in said and "step-00000080: step 80" in said
    assert json.loads((run / "metrics.json").read_text())["steps"] == 85


def test_continue_pretraining_from_a_model(pretrained, cli, tmp_path):
    result = cli("pretrain", CORPUS, "--output", tmp_path / "more", "--model", pretrained["trained"] / "model",
                 "--max-steps", "5", "--batch-size", "8", "--no-nsp", "--whole-word-masking", "--max-seq-length", "64")
    assert result.exit_code == 0, result.output
    assert "Training a WordPiece" not in result.output
    assert json.loads((tmp_path / "more/metrics.json").read_text())["steps"] == 5


def test_dump_instances_only(cli, tmp_path):
    target = tmp_path / "instances.jsonl"
    result = cli("pretrain", CORPUS, "--output", tmp_path / "peek", *TINY, "--dump-instances", "7", target,
                 "--max-steps", "0")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(records) == 7 and not (tmp_path / "peek/model").exists()
    for record in records:
        assert record["tokens"][0] == "[CLS]" and record["tokens"][-1] == "[SEP]"
        assert len(record["segment_ids"]) == len(record["tokens"])
        assert len(record["masked_positions"]) == len(record["masked_labels"]) >= 1
        assert isinstance(record["is_random_next"], bool)


def test_time_budget_stops_training(cli, tmp_path):
    result = cli("pretrain", CORPUS, "--output", tmp_path / "timed", *TINY, "--time-budget", "3s", "--no-nsp", "--log-every", "1")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "timed/metrics.json").read_text())
    assert metrics["steps"] > 0 and "mlm_accuracy" in metrics and metrics["train_seconds"] >= 3
    lrs = [json.loads(line)["lr"] for line in (tmp_path / "timed/log.jsonl").read_text().splitlines() if '"lr"' in line]
    assert lrs and lrs[-1] < 0.5 * 3e-3  # the schedule decays over the budget: near 0 once it is spent


@pytest.mark.parametrize("arguments, message", [
    (["missing.txt"], "missing.txt: file not found"),
    ([str(CORPUS), "--document-per-line", "--document-per-file"], "contradict"),
    ([str(CORPUS), "--time-budget", "soon"], "--time-budget is 'soon'"),
    ([str(CORPUS), "--size", "huge"], "--size"),
])
def test_mistakes_end_in_one_line(cli, tmp_path, arguments, message):
    result = cli("pretrain", *arguments, "--output", tmp_path / "bad")
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_one_document_with_nsp_says_what_to_do(cli, tmp_path):
    single = tmp_path / "one.txt"
    single.write_text("The boat left. The gulls followed. The sea was calm.\n")
    result = cli("pretrain", single, "--output", tmp_path / "one", "--vocab-size", "100", "--validation-fraction", "0")
    assert result.exit_code == 2 and "--no-nsp" in result.stderr
    assert not (tmp_path / "one").exists()  # nothing half-made is left behind


def test_duration_parsing_and_tuple_setting_from_config(tmp_path):
    from bertkit.settings import PretrainSettings, build_settings, parse_duration

    assert parse_duration("1h30m") == 5400 and parse_duration("90") == 90 and parse_duration("2.5m") == 150
    settings = build_settings(PretrainSettings, {"dump_instances": [3, "x.jsonl"]}, {})
    assert settings.dump_instances == (3, tmp_path.__class__("x.jsonl"))
