"""Fine-tuning strategies: frozen, adapters, LoRA, weighted layer mix and mean pooling.

Protects: what each strategy trains and leaves bit-identical, the small saved models and their
base reference, identical predictions after a save/load round trip, the learned layer weights,
mask-aware pooling, and that each strategy learns a small data set of our own making.

The learning data: texts drawn from one of two word lists (a garden vocabulary or a harbour
vocabulary). The test base model is random, not pretrained, so the learning runs read the
mean of the token vectors (or use LoRA, which reshapes the encoder itself); the benchmark in
bench/strategies.py measures the strategies on a real pretrained model.
"""

from __future__ import annotations

import json
import random
from types import SimpleNamespace

import pytest
import torch

from bertkit.errors import BertkitError
from bertkit.modeling.build import WEIGHTS_FILE, build_model, load_model, save_model, strategy_spec, weights_checksum
from bertkit.modeling.heads import add_mean_pooling, layer_weights, masked_mean
from bertkit.modeling.loading import load_pretrained, load_tokenizer
from bertkit.modeling.strategies import count_parameters, unwrap
from bertkit.tasks import get_task

GARDEN = "garden green rain tomatoes wall robin gate wind roses water evening weeds".split()
HARBOUR = "harbour boats dawn nets fish gulls quay storm fleet lighthouse night silver".split()
CLASSIFICATION = get_task("classification")
TOKEN_TASK = get_task("tagging")


def two_vocabularies(count: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        label = rng.choice(["garden", "harbour"])
        words = GARDEN if label == "garden" else HARBOUR
        rows.append((" ".join(rng.choice(words) for _ in range(rng.randint(3, 8))), label))
    return rows


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("two-vocabularies")
    for name, count, seed in (("train", 200, 0), ("dev", 80, 1)):
        rows = ["text\tlabel"] + [f"{text}\t{label}" for text, label in two_vocabularies(count, seed)]
        (folder / f"{name}.tsv").write_text("\n".join(rows) + "\n")
    return folder


def finetune_run(tiny_model, data, output, *options):
    from typer.testing import CliRunner

    from bertkit.cli import app

    result = CliRunner().invoke(
        app,
        [
            str(a)
            for a in (
                "finetune",
                "--model",
                tiny_model,
                "--train",
                data / "train.tsv",
                "--eval",
                data / "dev.tsv",
                "--output",
                output,
                "--epochs",
                "2",
                "--batch-size",
                "16",
                "--seed",
                "1",
                *options,
            )
        ],
    )
    assert result.exit_code == 0, result.output
    return output, result.output


RUNS = {
    "frozen": ("--strategy", "frozen", "--pooling", "mean", "--lr", "1e-2"),
    "adapters": (
        "--strategy",
        "adapters",
        "--adapter-size",
        "16",
        "--pooling",
        "mean",
        "--layer-mix",
        "weighted",
        "--lr",
        "1e-2",
    ),
    "lora": ("--strategy", "lora", "--lora-rank", "4", "--lr", "1e-2"),
}


@pytest.fixture(scope="module")
def runs(tiny_model, data, tmp_path_factory):
    root = tmp_path_factory.mktemp("strategy-runs")
    return {name: finetune_run(tiny_model, data, root / name, *options) for name, options in RUNS.items()}


def spec_for(base, strategy="full", layer_mix="last", pooling="cls", merge=False):
    settings = SimpleNamespace(
        strategy=strategy,
        layer_mix=layer_mix,
        pooling=pooling,
        adapter_size=8,
        lora_rank=4,
        lora_alpha=8.0,
        lora_dropout=0.0,
        lora_targets="query,key,value,dense",
        merge=merge,
        reinit_pooler="no",
        reinit_layers=0,
    )
    return strategy_spec(settings, str(base))


def inputs(tiny_model, texts=("gulls over the quay at dawn", "roses")):
    return dict(load_tokenizer(str(tiny_model))(list(texts), padding=True, return_tensors="pt"))


# ---------------------------------------------------------------- learning, through the CLI
@pytest.mark.parametrize("name", list(RUNS))
def test_each_strategy_learns_well_above_chance(runs, name):
    output, log = runs[name]
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.8, metrics  # two balanced classes: chance is 0.5
    assert "parameters trainable" in log
    assert metrics["trainable_parameters"] < metrics["total_parameters"]


def test_frozen_run_leaves_every_encoder_weight_bit_identical(runs, tiny_model):
    from safetensors.torch import load_file

    base = load_file(str(tiny_model / "model.safetensors"))
    tuned = load_file(str(runs["frozen"][0] / "model" / "model.safetensors"))
    encoder = [name for name in tuned if name.startswith(("bert.embeddings.", "bert.encoder."))]
    assert len(encoder) > 20
    assert all(torch.equal(tuned[name], base[name]) for name in encoder)
    assert not torch.equal(tuned["bert.pooler.dense.weight"], base["bert.pooler.dense.weight"])


@pytest.mark.parametrize("name", ["adapters", "lora"])
def test_adapter_and_lora_models_are_small_and_reference_their_base(runs, tiny_model, name):
    model_dir = runs[name][0] / "model"
    full_size = (runs["frozen"][0] / "model" / "model.safetensors").stat().st_size
    saved = sum(path.stat().st_size for path in model_dir.glob("*.safetensors"))
    assert not (model_dir / "model.safetensors").exists()
    assert saved < 0.15 * full_size
    base = json.loads((model_dir / "bertkit.json").read_text())["strategy"]["base"]
    assert base["path"] == str(tiny_model.resolve()) and base["sha256"] == weights_checksum(tiny_model)


def test_predict_and_evaluate_load_base_plus_adapters(runs, cli, data, tmp_path):
    model_dir = runs["adapters"][0] / "model"
    output = tmp_path / "out.jsonl"
    result = cli("predict", "--model", model_dir, data / "dev.tsv", "--output", output)
    assert result.exit_code == 0, result.output
    assert len(output.read_text().splitlines()) == 80
    evaluated = cli("evaluate", "--model", model_dir, data / "dev.tsv", "--output", tmp_path / "metrics.json")
    assert evaluated.exit_code == 0, evaluated.output
    assert "learned layer weights" in evaluated.output
    weights = json.loads((tmp_path / "metrics.json").read_text())["layer_weights"]["weights"]
    assert len(weights) == 3 and abs(sum(weights) - 1) < 1e-6  # embeddings + 2 layers


def test_missing_or_changed_base_is_a_clear_error(tiny_model, tmp_path, cli):
    import shutil

    base = tmp_path / "base"
    shutil.copytree(tiny_model, base)
    target = tmp_path / "model"
    spec = spec_for(base, "adapters")
    tokenizer = load_tokenizer(str(base))
    save_model(
        build_model(CLASSIFICATION, str(base), ["a", "b"], spec),
        tokenizer,
        target,
        {"task": "classification", "labels": ["a", "b"], "strategy": spec},
        "card",
    )
    (tmp_path / "in.txt").write_text("roses in the rain\n")
    with open(base / "model.safetensors", "r+b") as stream:  # one changed byte in the tensor data
        stream.seek(-1, 2)
        last = stream.read(1)
        stream.seek(-1, 2)
        stream.write(bytes([last[0] ^ 1]))
    changed = cli("predict", "--model", target, tmp_path / "in.txt")
    assert changed.exit_code == 2 and "has changed since fine-tuning" in changed.stderr
    shutil.rmtree(base)
    missing = cli("predict", "--model", target, tmp_path / "in.txt")
    assert missing.exit_code == 2 and "is missing" in missing.stderr and len(missing.stderr.splitlines()) == 1


def test_nli_with_weighted_layers_and_mean_pooling_runs_end_to_end(tiny_model, cli, tmp_path):
    from conftest import EXAMPLES

    result = cli(
        "finetune",
        "--task",
        "nli",
        "--model",
        tiny_model,
        "--train",
        EXAMPLES / "nli/dev.tsv",
        "--output",
        tmp_path / "nli",
        "--max-steps",
        "4",
        "--layer-mix",
        "weighted",
        "--pooling",
        "mean",
    )
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "nli/model/bertkit.json").read_text())
    assert info["strategy"] == {
        "name": "full",
        "layer_mix": "weighted",
        "pooling": "mean",
        "reinit": {"pooler": False, "layers": 0},
    }  # a random model, not a pretraining run
    assert (tmp_path / "nli/model" / WEIGHTS_FILE).is_file()
    evaluated = cli("evaluate", "--model", tmp_path / "nli/model", EXAMPLES / "nli/dev.tsv")
    assert evaluated.exit_code == 0 and "learned layer weights" in evaluated.output


# ---------------------------------------------------------------- what trains, and round trips
@pytest.mark.parametrize("strategy", ["frozen", "adapters", "lora"])
def test_training_steps_change_only_the_trainable_parameters(tiny_model, strategy):
    from bertkit.engine.loop import make_optimizer

    model = build_model(CLASSIFICATION, str(tiny_model), ["a", "b"], spec_for(tiny_model, strategy, "weighted"))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = make_optimizer(model, 1e-2, weight_decay=0.1)
    batch = inputs(tiny_model)
    for _ in range(3):
        model(**batch, labels=torch.tensor([1, 0])).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    params = dict(model.named_parameters())
    frozen = [name for name, p in params.items() if not p.requires_grad]
    assert sum(params[name].numel() for name in frozen) > 0.5 * count_parameters(model)[1]
    assert all(torch.equal(params[name], before[name]) for name in frozen)
    assert all(
        not torch.equal(p, before[name]) for name, p in params.items() if p.requires_grad and "lora_A" not in name
    )


ROUND_TRIPS = [
    (CLASSIFICATION, "full", "last", "cls", False),
    (CLASSIFICATION, "frozen", "weighted", "cls", False),
    (CLASSIFICATION, "adapters", "weighted", "mean", False),
    (CLASSIFICATION, "lora", "last", "mean", False),
    (CLASSIFICATION, "lora", "weighted", "cls", True),
    (get_task("nli"), "adapters", "last", "cls", False),
    (TOKEN_TASK, "adapters", "weighted", "cls", False),
    (TOKEN_TASK, "lora", "weighted", "cls", False),
    (TOKEN_TASK, "frozen", "last", "cls", False),
]


@pytest.mark.parametrize("task, strategy, layer_mix, pooling, merge", ROUND_TRIPS)
def test_save_load_round_trip_gives_identical_predictions(
    tiny_model, tmp_path, task, strategy, layer_mix, pooling, merge
):
    labels = ["a", "b", "c"]
    spec = spec_for(tiny_model, strategy, layer_mix, pooling, merge)
    model = build_model(task, str(tiny_model), labels, spec)
    torch.manual_seed(0)
    with torch.no_grad():  # as if trained: move every trainable tensor (LoRA's B and the adapters start at zero)
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(0.05 * torch.randn_like(parameter))
    model.eval()
    batch = inputs(tiny_model)
    with torch.no_grad():
        expected = model(**batch).logits
    info = {"task": task.name, "labels": labels, "strategy": spec}
    save_model(model, load_tokenizer(str(tiny_model)), tmp_path / "model", info, "card")
    loaded = load_model(task, tmp_path / "model", info)
    with torch.no_grad():
        got = loaded(**batch).logits
    assert got.shape == expected.shape and (got.ndim == 3) == (task is TOKEN_TASK)
    if merge:  # merged weights round floating point differently
        assert (tmp_path / "model" / "model.safetensors").is_file()
        assert torch.allclose(got, expected, atol=1e-5)
    else:
        assert torch.equal(got, expected)


def test_adapters_are_the_identity_at_initialisation(tiny_model):
    batch = inputs(tiny_model)
    outputs = []
    for strategy in ("full", "adapters"):
        torch.manual_seed(3)
        model = build_model(CLASSIFICATION, str(tiny_model), ["a", "b"], spec_for(tiny_model, strategy)).eval()
        with torch.no_grad():
            outputs.append(model(**batch).logits)
    assert torch.equal(*outputs)


def test_layer_weights_are_softmax_normalised(tiny_model):
    model = build_model(CLASSIFICATION, str(tiny_model), ["a", "b"], spec_for(tiny_model, "full", "weighted"))
    with torch.no_grad():
        unwrap(model).bertkit_layer_mix.weights.copy_(torch.tensor([2.0, -1.0, 0.5]))
    mix = layer_weights(model)
    assert len(mix["weights"]) == 3 and abs(sum(mix["weights"]) - 1) < 1e-6 and mix["scale"] == 1.0


def test_mean_pooling_ignores_padding(tiny_model):
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    assert torch.equal(masked_mean(hidden, torch.tensor([[1, 1, 0]])), torch.tensor([[2.0, 3.0]]))
    model = build_model(
        CLASSIFICATION, str(tiny_model), ["a", "b"], spec_for(tiny_model, "full", pooling="mean")
    ).eval()
    with torch.no_grad():
        alone = model(**inputs(tiny_model, ["roses"])).logits
        padded = model(**inputs(tiny_model, ["gulls over the quay at dawn and night", "roses"])).logits[1:]
    assert torch.allclose(alone, padded, atol=1e-5)


# ---------------------------------------------------------------- mistakes
def test_mean_pooling_on_a_token_level_head_is_refused(tiny_model):
    model = load_pretrained("AutoModelForTokenClassification", str(tiny_model), num_labels=3)
    with pytest.raises(BertkitError, match="--pooling mean"):
        add_mean_pooling(model)


def test_mean_pooling_for_a_token_level_task_is_refused_by_the_settings(tmp_path):
    from bertkit.settings import FinetuneSettings

    settings = FinetuneSettings(task="tagging", model="m", train=tmp_path / "t.tsv", output=tmp_path, pooling="mean")
    with pytest.raises(BertkitError, match="--pooling mean applies to tasks with one label per text"):
        settings.validate()


@pytest.mark.parametrize(
    "options, message",
    [
        (("--merge",), "--merge folds LoRA updates"),
        (("--strategy", "partial"), "--strategy is 'partial'"),
        (("--strategy", "adapters", "--adapter-size", "0"), "--adapter-size is 0"),
        (("--layer-mix", "all"), "--layer-mix is 'all'"),
    ],
)
def test_invalid_options_are_one_line_errors(tiny_model, data, cli, tmp_path, options, message):
    result = cli("finetune", "--model", tiny_model, "--train", data / "train.tsv", "--output", tmp_path / "x", *options)
    assert result.exit_code == 2 and message in result.stderr and len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("task, data", [("regression", "regression"), ("multilabel", "multilabel")])
@pytest.mark.parametrize(
    "options",
    [
        ("--strategy", "frozen"),
        ("--strategy", "adapters", "--adapter-size", "8"),
        ("--strategy", "lora", "--lora-rank", "4"),
        ("--layer-mix", "weighted"),
        ("--pooling", "mean"),
    ],
)
def test_new_tasks_train_save_and_predict_under_every_strategy(word_model, cli, tmp_path, task, data, options):
    from conftest import EXAMPLES

    folder = EXAMPLES / data
    result = cli(
        "finetune",
        "--task",
        task,
        "--model",
        word_model,
        "--train",
        folder / "train.csv",
        "--eval",
        folder / "dev.csv",
        "--output",
        tmp_path / "run",
        "--max-steps",
        "3",
        "--batch-size",
        "8",
        *options,
    )
    assert result.exit_code == 0, result.output
    result = cli("predict", "--model", tmp_path / "run/model", folder / "dev.csv", "--output", tmp_path / "p.jsonl")
    assert result.exit_code == 0, result.output
    assert len((tmp_path / "p.jsonl").read_text().splitlines()) == 100
