"""`bertkit pretrain --objective electra` on the project's own text: it trains and reports replaced-token
detection, the discriminator is a plain BERT that transformers and `finetune` load, the generator is kept,
one seed gives one model and a resumed run ends where an uninterrupted one does; and the head warm-up of
`--model` without a masked-LM head leaves the encoder alone for its steps."""

from __future__ import annotations

import json
import math
import shutil

import pytest
from conftest import assert_loads_completely
from helpers import CORPUS, PRETRAIN_TINY, sentiment_args, tensors

from bertkit.pretraining.metrics import DETECTION_STARTED

ELECTRA = [*PRETRAIN_TINY, "--objective", "electra", "--batch-size", "8", "--eval-every", "0", "--log-every", "1"]


def electra_run(cli, output, steps: int, *extra):
    result = cli("pretrain", CORPUS, "--output", output, *ELECTRA, "--max-steps", steps, *extra)
    assert result.exit_code == 0, result.output
    output.with_suffix(".out").write_text(result.output)  # what the user saw, beside the run
    return output


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two 24-step runs with one seed, and one stopped at 12 steps and resumed to 24."""
    from typer.testing import CliRunner

    from bertkit.cli import app

    runner = CliRunner()

    def cli(*args):
        return runner.invoke(app, [str(a) for a in args])

    root = tmp_path_factory.mktemp("electra")
    first = electra_run(cli, root / "first", 24, "--save-every", "12", "--keep-checkpoints", "3")
    second = electra_run(cli, root / "second", 24)
    # A run stopped after its step-12 checkpoint (mid-epoch; 20 batches an epoch): the first run's directory then.
    resumed = root / "resumed"
    later = ("step-00000020", "step-00000024", "model", "metrics.json")
    shutil.copytree(first, resumed, ignore=shutil.ignore_patterns(*later))
    electra_run(cli, resumed, 24, "--save-every", "12", "--resume")
    return {"first": first, "second": second, "resumed": resumed}


def test_electra_trains_and_reports_detection(runs):
    metrics = json.loads((runs["first"] / "metrics.json").read_text())
    assert metrics["steps"] == 24 and metrics["train_tokens"] > 0
    for name in ("rtd_accuracy", "rtd_loss", "replaced_share", "mlm_accuracy", "mlm_loss"):
        assert math.isfinite(metrics[name]), name
    assert 0.0 <= metrics["rtd_auc"] <= 1.0
    # The run says so when the detector has not started (the same run every time: one side of this holds)
    warned = "the detector has not started learning" in runs["first"].with_suffix(".out").read_text()
    assert warned == (metrics["rtd_auc"] < DETECTION_STARTED)
    # Nearly every masked position is replaced by a new generator: the base rate is about the masked share (25%).
    assert 0.1 < metrics["replaced_share"] < 0.3 and metrics["rtd_accuracy"] >= 1 - metrics["replaced_share"] - 0.02
    losses = [
        json.loads(line)["loss"] for line in (runs["first"] / "log.jsonl").read_text().splitlines() if '"loss"' in line
    ]
    assert losses and all(math.isfinite(loss) for loss in losses)
    info = json.loads((runs["first"] / "model/bertkit.json").read_text())
    assert info["objective"] == "electra" and info["settings"]["rtd_weight"] == 50.0
    assert info["settings"]["generator_size"] == 0.25 and info["electra"]["generator"]["layers"] == 2


def test_discriminator_is_a_plain_bert_and_the_generator_is_kept(runs):
    from transformers import AutoModel, ElectraForMaskedLM

    model_dir = runs["first"] / "model"
    encoder = assert_loads_completely(AutoModel, model_dir)
    assert type(encoder).__name__ == "BertModel" and encoder.config.hidden_size == 64
    generator = assert_loads_completely(ElectraForMaskedLM, model_dir / "generator")
    assert generator.config.hidden_size == 16 and generator.config.embedding_size == 64
    # Saved at the initial embedding scale, the generator's copy of the shared embeddings with it.
    words = encoder.embeddings.word_embeddings.weight
    assert words.norm(dim=1).mean().item() == pytest.approx(0.02 * 64**0.5, rel=1e-4)
    assert (generator.electra.embeddings.word_embeddings.weight == words).all()


def same_tensors(a, b) -> bool:
    first, second = tensors(a), tensors(b)
    return first.keys() == second.keys() and all((first[key] == second[key]).all() for key in first)


def test_same_seed_gives_the_same_models(runs):
    for part in ("model.safetensors", "generator/model.safetensors", "generator/discriminator_head.safetensors"):
        assert same_tensors(runs["first"] / "model" / part, runs["second"] / "model" / part), part


def test_resumed_run_ends_where_the_uninterrupted_one_does(runs):
    # The checkpoints hold the generator, the discriminator and its head together.
    final = "checkpoints/step-00000024/model.safetensors"
    keys = tensors(runs["first"] / final).keys()
    assert any(key.startswith("generator.") for key in keys) and any(key.startswith("head.") for key in keys)
    assert same_tensors(runs["first"] / final, runs["resumed"] / final)


def test_discriminator_fine_tunes(runs, cli, tmp_path):
    result = cli(
        *sentiment_args(runs["first"] / "model", tmp_path / "ft"),
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "ft/metrics.json").read_text())["accuracy"] >= 0.7  # chance: 0.5


def test_continue_electra_from_its_model_and_dump_replacements(runs, cli, tmp_path):
    target = tmp_path / "instances.jsonl"
    result = cli(
        "pretrain",
        CORPUS,
        "--output",
        tmp_path / "more",
        "--model",
        runs["first"] / "model",
        "--objective",
        "electra",
        "--max-seq-length",
        "64",
        "--batch-size",
        "8",
        "--max-steps",
        "2",
        "--dump-instances",
        "3",
        target,
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "more/model/generator/discriminator_head.safetensors").is_file()
    records = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(records) == 3
    for record in records:
        assert len(record["discriminator_tokens"]) == len(record["tokens"])
        assert set(record["replaced_positions"]) <= set(record["masked_positions"])
        for position in record["replaced_positions"]:
            assert (
                record["discriminator_tokens"][position]
                != record["masked_labels"][record["masked_positions"].index(position)]
            )


def test_electra_refuses_nsp(cli, tmp_path):
    result = cli("pretrain", CORPUS, "--output", tmp_path / "bad", "--objective", "electra", "--nsp")
    assert result.exit_code == 2 and "ELECTRA has no next-sentence task" in result.stderr


def test_head_warmup_trains_the_new_head_alone_first(tiny_model, cli, tmp_path):
    from transformers import AutoTokenizer, BertModel

    headless = tmp_path / "headless"  # as a sentence-transformers model comes: an encoder, no masked-LM head
    BertModel.from_pretrained(tiny_model).save_pretrained(headless)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(headless)
    output = tmp_path / "warm"
    result = cli(
        "pretrain",
        CORPUS,
        "--output",
        output,
        "--model",
        headless,
        "--head-warmup-steps",
        "3",
        "--max-steps",
        "6",
        "--save-every",
        "3",
        "--keep-checkpoints",
        "2",
        "--max-seq-length",
        "64",
        "--batch-size",
        "8",
        "--lr",
        "1e-3",
    )
    assert result.exit_code == 0, result.output
    assert "no masked-LM head" in " ".join(result.output.split())
    loaded = tensors(headless / "model.safetensors")
    after = {step: tensors(output / f"checkpoints/step-0000000{step}/model.safetensors") for step in (3, 6)}
    encoder = [key for key in loaded if not key.startswith("pooler")]  # no NSP: the pooler is frozen throughout
    assert all((after[3][f"model.bert.{key}"] == loaded[key]).all() for key in encoder)
    assert not (
        after[3]["model.cls.predictions.transform.dense.weight"]
        == after[6]["model.cls.predictions.transform.dense.weight"]
    ).all()
    changed = [key for key in encoder if not (after[6][f"model.bert.{key}"] == loaded[key]).all()]
    assert len(changed) > len(encoder) // 2


def test_detection_auc_is_the_pairwise_ranking_chance():
    import torch

    from bertkit.pretraining.metrics import ranking_auc

    scores = torch.tensor([0.1, 0.4, 0.35, 0.8, 0.4, -2.0, 0.4])
    positive = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0])
    pairs = [
        1.0 if p > n else 0.5 if p == n else 0.0
        for p in scores[positive > 0].tolist()
        for n in scores[positive == 0].tolist()
    ]
    assert ranking_auc(scores, positive) == pytest.approx(sum(pairs) / len(pairs))  # ties count half
    assert ranking_auc(torch.arange(6.0), torch.tensor([0.0, 0, 0, 1, 1, 1])) == 1.0
    assert ranking_auc(-torch.arange(6.0), torch.tensor([0.0, 0, 0, 1, 1, 1])) == 0.0
    assert ranking_auc(torch.zeros(6), torch.tensor([0.0, 1, 0, 1, 0, 1])) == 0.5  # a detector that says nothing
    assert ranking_auc(torch.arange(3.0), torch.ones(3)) == 0.5  # one class only
