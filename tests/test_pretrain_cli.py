"""`bertkit pretrain` end to end on the project's own text: it learns, the model loads everywhere, the
instances can be dumped, a run resumes, and mistakes end in one line."""

from __future__ import annotations

import json
import math
import shutil

import pytest
from conftest import assert_loads_completely
from helpers import CORPUS, PRETRAIN_TINY, sentiment_args


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A 2-layer, 64-wide BERT pretrained from scratch on examples/corpus for 80 steps, and its 0-step twin."""
    from typer.testing import CliRunner

    from bertkit.cli import app

    root = tmp_path_factory.mktemp("pretrain")
    runs = {}
    for name, steps in (("start", "0"), ("trained", "80")):
        result = CliRunner().invoke(
            app,
            [
                "pretrain",
                str(CORPUS),
                "--output",
                str(root / name),
                *PRETRAIN_TINY,
                "--max-steps",
                steps,
                "--eval-every",
                "40",
                "--save-every",
                "40",
            ],
        )
        assert result.exit_code == 0, result.output
        runs[name] = root / name
    return runs


def test_heldout_mlm_loss_falls_clearly(pretrained):
    start = json.loads((pretrained["start"] / "metrics.json").read_text())
    trained = json.loads((pretrained["trained"] / "metrics.json").read_text())
    assert start["steps"] == 0 and trained["steps"] == 80
    # A new model already predicts the pieces' corpus frequencies (4.34, against 6.4 for uniform guesses over
    # 600 pieces); 80 steps then learn from context: 4.26 and 0.20 accuracy (the most frequent piece: 0.125).
    assert start["mlm_loss"] < 0.8 * math.log(600)
    assert trained["mlm_loss"] < start["mlm_loss"] - 0.04
    assert trained["mlm_accuracy"] > start["mlm_accuracy"] + 0.05
    assert math.isclose(trained["perplexity"], math.exp(trained["mlm_loss"]), rel_tol=1e-6)
    assert "nsp_accuracy" not in trained and trained["train_tokens"] > 0  # the default budget recipe: MLM only


def test_model_loads_in_transformers_and_fill_mask(pretrained):
    from transformers import BertForMaskedLM, BertForPreTraining, pipeline

    model_dir = pretrained["trained"] / "model"
    assert assert_loads_completely(BertForPreTraining, model_dir).config.num_hidden_layers == 2
    assert_loads_completely(BertForMaskedLM, model_dir, allowed_unexpected=("cls.seq_relationship", "bert.pooler"))
    fill = pipeline("fill-mask", model=str(model_dir))
    guesses = fill("the children ran into the [MASK].")
    assert len(guesses) == 5 and all("token_str" in g for g in guesses)
    assert (model_dir / "tokenizer.json").is_file() and (model_dir / "bertkit.json").is_file()


def test_pretrained_model_fine_tunes_well_above_chance_with_the_cls_head(pretrained, cli, tmp_path):
    # 80 steps of pretraining on 50 kB: the [CLS] head (the default) must still learn. Before the masked-LM
    # bias started at the corpus's piece frequencies, this run stayed at chance (0.49); random weights: 0.89.
    result = cli(
        *sentiment_args(pretrained["trained"] / "model", tmp_path / "ft"),
    )
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "ft/model/bertkit.json").read_text())
    assert info["strategy"]["reinit"] == {"pooler": True, "layers": 0}  # NSP was off: nothing trained the pooler
    assert json.loads((tmp_path / "ft/metrics.json").read_text())["accuracy"] >= 0.7


def test_saved_model_has_its_embeddings_at_the_initial_scale(pretrained):
    import torch
    from transformers import BertForPreTraining

    from bertkit.pretraining.rescale import at_initial_embedding_scale, embedding_scale

    model = BertForPreTraining.from_pretrained(pretrained["trained"] / "model").eval()
    initial = 0.02 * 64**0.5  # initializer_range x sqrt(hidden)
    norms = model.bert.embeddings.word_embeddings.weight.norm(dim=1)
    assert abs(norms.mean().item() - initial) < 1e-3 * initial
    info = json.loads((pretrained["trained"] / "model/bertkit.json").read_text())
    assert info["embedding_rescale"] < 0.95  # 80 steps at lr 3e-3 grew the embeddings; the saved copy undid it

    # The rescaling is the same function: hidden states and masked-LM logits keep, whatever the factor.
    with torch.no_grad():
        model.bert.embeddings.word_embeddings.weight.mul_(3.0)
    rescaled, factor = at_initial_embedding_scale(model)
    assert abs(factor - 1 / 3) < 1e-3 and abs(embedding_scale(rescaled) - 1) < 1e-5
    assert model.bert.embeddings.word_embeddings.weight.norm(dim=1).mean() > 2.9 * initial  # the original untouched
    ids = torch.tensor([[2, 40, 41, 99, 150, 3]])
    with torch.no_grad():
        before, after = model(input_ids=ids), rescaled(input_ids=ids)
    assert torch.allclose(before.prediction_logits, after.prediction_logits, atol=1e-4)
    hidden = [m.bert(input_ids=ids).last_hidden_state for m in (model, rescaled)]
    assert torch.allclose(*hidden, atol=1e-5)


def test_recipes_fill_what_the_user_left_unset():
    from bertkit.settings import PretrainSettings

    bert = PretrainSettings(recipe="bert")
    assert (bert.vocab_size, bert.learning_rate, bert.nsp, bert.mlm_probability, bert.dropout) == (
        30522,
        5e-4,
        True,
        0.15,
        0.1,
    )
    budget = PretrainSettings(size="small", nsp=True, learning_rate=2e-4)
    assert budget.recipe == "budget" and budget.vocab_size == 16384 and budget.dropout == 0.0
    assert (bert.weight_decay, budget.weight_decay) == (0.01, 0.1)
    assert budget.nsp is True and budget.learning_rate == 2e-4  # what the user set wins
    # continuing a trained model: a rate that does not undo it, unless the user says otherwise
    assert PretrainSettings(model="some/model").learning_rate == 1e-4
    assert PretrainSettings(model="some/model", recipe="bert").learning_rate == 1e-4
    assert PretrainSettings(model="some/model", learning_rate=3e-4).learning_rate == 3e-4


def test_resume_continues_from_the_checkpoint_and_reuses_the_cache(pretrained, cli):
    run = pretrained["trained"]
    result = cli(
        "pretrain", CORPUS, "--output", run, *PRETRAIN_TINY, "--max-steps", "85", "--eval-every", "40", "--resume"
    )
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())  # rich wraps long lines
    assert "Reusing the tokenized corpus" in said and "Resuming from" in said and "step-00000080: step 80" in said
    assert json.loads((run / "metrics.json").read_text())["steps"] == 85


def test_continue_pretraining_from_a_model(pretrained, cli, tmp_path):
    result = cli(
        "pretrain",
        CORPUS,
        "--output",
        tmp_path / "more",
        "--model",
        pretrained["trained"] / "model",
        "--max-steps",
        "5",
        "--batch-size",
        "8",
        "--no-nsp",
        "--whole-word-masking",
        "--max-seq-length",
        "64",
    )
    assert result.exit_code == 0, result.output
    assert "Training a WordPiece" not in result.output
    assert json.loads((tmp_path / "more/metrics.json").read_text())["steps"] == 5


def test_dump_instances_only(cli, tmp_path):
    target = tmp_path / "instances.jsonl"
    result = cli(
        "pretrain",
        CORPUS,
        "--output",
        tmp_path / "peek",
        *PRETRAIN_TINY,
        "--recipe",
        "bert",
        "--dump-instances",
        "7",
        target,
        "--max-steps",
        "0",
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(records) == 7 and not (tmp_path / "peek/model").exists()
    for record in records:
        assert record["tokens"][0] == "[CLS]" and record["tokens"][-1] == "[SEP]"
        assert len(record["segment_ids"]) == len(record["tokens"])
        assert len(record["masked_positions"]) == len(record["masked_labels"]) >= 1
        assert isinstance(record["is_random_next"], bool)


def test_time_budget_stops_training(cli, tmp_path):
    result = cli(
        "pretrain",
        CORPUS,
        "--output",
        tmp_path / "timed",
        *PRETRAIN_TINY,
        "--time-budget",
        "3s",
        "--no-nsp",
        "--log-every",
        "1",
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "timed/metrics.json").read_text())
    assert metrics["steps"] > 0 and "mlm_accuracy" in metrics and metrics["train_seconds"] >= 3
    lrs = [json.loads(line)["lr"] for line in (tmp_path / "timed/log.jsonl").read_text().splitlines() if '"lr"' in line]
    assert lrs and lrs[-1] < 0.5 * 3e-3  # the schedule decays over the budget: near 0 once it is spent


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["missing.txt"], "missing.txt: file not found"),
        ([str(CORPUS), "--document-per-line", "--document-per-file"], "contradict"),
        ([str(CORPUS), "--time-budget", "soon"], "--time-budget is 'soon'"),
        ([str(CORPUS), "--size", "huge"], "--size"),
    ],
)
def test_mistakes_end_in_one_line(cli, tmp_path, arguments, message):
    result = cli("pretrain", *arguments, "--output", tmp_path / "bad")
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_one_document_with_nsp_says_what_to_do(cli, tmp_path):
    single = tmp_path / "one.txt"
    single.write_text("The boat left. The gulls followed. The sea was calm.\n")
    result = cli(
        "pretrain", single, "--output", tmp_path / "one", "--vocab-size", "100", "--validation-fraction", "0", "--nsp"
    )
    assert result.exit_code == 2 and "--no-nsp" in result.stderr
    assert not (tmp_path / "one").exists()  # nothing half-made is left behind


def test_duration_parsing_and_tuple_setting_from_config(tmp_path):
    from bertkit.settings import PretrainSettings, build_settings, parse_duration

    assert parse_duration("1h30m") == 5400 and parse_duration("90") == 90 and parse_duration("2.5m") == 150
    settings = build_settings(PretrainSettings, {"dump_instances": [3, "x.jsonl"]}, {})
    assert settings.dump_instances == (3, tmp_path.__class__("x.jsonl"))


def test_finetune_rate_defaults_higher_for_a_compact_model_pretrained_from_scratch(pretrained, tiny_model, tmp_path):
    from bertkit.settings.commands import FINETUNE_LEARNING_RATE, FinetuneSettings
    from bertkit.tasks import get_task
    from bertkit.tune.space import default_space

    scratch = pretrained["trained"] / "model"  # hidden 64, made by `bertkit pretrain` from nothing
    assert FinetuneSettings(model=str(scratch)).learning_rate == 2e-4 > FINETUNE_LEARNING_RATE
    assert FinetuneSettings(model=str(scratch), learning_rate=3e-5).learning_rate == 3e-5  # --lr always wins
    assert FinetuneSettings(model=str(tiny_model)).learning_rate == 5e-5  # no bertkit.json: a model from elsewhere
    continued = tmp_path / "continued"
    shutil.copytree(scratch, continued)
    info = json.loads((continued / "bertkit.json").read_text())
    (continued / "bertkit.json").write_text(json.dumps({**info, "base_model": "some/encoder"}))
    assert FinetuneSettings(model=str(continued)).learning_rate == 5e-5  # continued pretraining: the base's rate
    # tune still searches the rate when the user left it to the default
    assert "learning_rate" in default_space(get_task("classification"), FinetuneSettings(model=str(scratch)))
    assert "learning_rate" not in default_space(
        get_task("classification"), FinetuneSettings(model=str(scratch), learning_rate=3e-5)
    )
